//! System scenarios with real processes:
//! 1. Key and certificate rotation: the origin rotates root three times (with a threshold change)
//!    and the targets, snapshot and timestamp keys, and the HTTPS relay in front of it gets a new
//!    certificate; a relay daemon and an agent configured with root v1 keep updating with no
//!    restart and no reconfiguration.
//! 2. Malicious relay: a relay answering with tampered content; the agent rejects it, fails over,
//!    installs nothing from it, and the manager shows why.
use crate::common::*;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn issue(
    ca: &(rcgen::Certificate, rcgen::KeyPair),
    dir: &Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca.0, &ca.1)
        .unwrap();
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

#[test]
fn relays_and_agents_on_root_v1_survive_key_and_certificate_rotation() {
    let bed = AgentBed::new();
    let tmp = bed.tmp.path();
    // A private CA and the front relay's first certificate.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = (params.self_signed(&ca_key).unwrap(), ca_key);
    let ca_pem = tmp.join("ca.pem");
    std::fs::write(&ca_pem, ca.0.pem()).unwrap();
    let (c1, k1) = issue(&ca, tmp, "front1");
    let front_port = free_port();
    let front_listen = format!("127.0.0.1:{front_port}");
    let front_cache = tmp.join("front");
    let front = |c: &Path, k: &Path| {
        Server::spawn(
            &[
                "relay",
                "--upstream",
                &bed.origin.base,
                "--trusted-root",
                s(&bed.repo.root_v1),
                "--cache",
                s(&front_cache),
                "--listen",
                &front_listen,
                "--poll-interval",
                "1",
                "--tls-cert",
                s(c),
                "--tls-key",
                s(k),
            ],
            &[],
        )
    };
    let mut front_relay = Some(front(&c1, &k1));
    // The site relay: HTTPS upstream (the front relay), trusting the CA; never restarted.
    let site = Server::spawn(
        &[
            "relay",
            "--upstream",
            &format!("https://{front_listen}"),
            "--upstream-ca",
            s(&ca_pem),
            "--trusted-root",
            s(&bed.repo.root_v1),
            "--cache",
            s(&tmp.join("site")),
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "1",
        ],
        &[],
    );
    let mut o = bed.opts();
    o.relays = vec![site.base.clone()];
    let cfg = bed.config(&o);
    let ts = || -> u64 {
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(bed.repo.dir.join("metadata/timestamp.json")).unwrap(),
        )
        .unwrap();
        v["signed"]["version"].as_u64().unwrap()
    };
    let synced = |t: u64| {
        wait_status(&site.base, "site relay synced", |v| {
            v["trusted_versions"]["timestamp"].as_u64() == Some(t)
        })
    };
    synced(ts());
    bed.once(&cfg).unwrap();
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.523.00"
    );

    for (i, (role, keys, threshold)) in [
        ("root", "3", "2"),
        ("targets", "1", "1"),
        ("root", "2", "1"),
        ("snapshot", "1", "1"),
        ("timestamp", "1", "1"),
        ("root", "1", "1"),
    ]
    .into_iter()
    .enumerate()
    {
        bed.repo.rotate(role, keys, threshold);
        if i == 3 {
            // Half way through, the front relay gets a new key and certificate from the same CA.
            front_relay.take().unwrap().kill();
            let (c2, k2) = issue(&ca, tmp, "front2");
            front_relay = Some(front(&c2, &k2));
        }
        let version = format!("19.{i}.00");
        bed.repo.add(
            "antimalware.pattern",
            &version,
            "pattern",
            format!("pattern {version}").as_bytes(),
        );
        bed.repo.publish();
        synced(ts());
        let r = bed.once(&cfg).unwrap();
        assert_eq!(
            r["installed"][0],
            serde_json::json!(["antimalware.pattern", version]),
            "after rotating {role}: {r:#}"
        );
    }
    // Root v7 now, trusted by the agent and both relays, which all started from root v1.
    assert_eq!(
        get_json(&format!("{}/status", site.base))["trusted_versions"]["root"],
        7
    );
    drop(front_relay);
}

#[test]
fn a_malicious_relay_is_rejected_and_the_manager_shows_why() {
    let bed = AgentBed::new();
    let db = format!("sqlite://{}", s(&bed.path("manager.db")));
    let admin = ok(&["admin", "--db", &db, "token", "create"])
        .trim()
        .to_string();
    ok(&["admin", "--db", &db, "group", "put", "lab"]);
    let token = enroll_token(&db, "lab", None);
    std::fs::write(bed.path("enroll.token"), token.trim()).unwrap();
    let mgr = Server::spawn(&["manager", "--db", &db, "--listen", "127.0.0.1:0"], &[]);
    let mut o = bed.opts();
    o.manager = Some((mgr.base.clone(), bed.path("enroll.token"), "victim".into()));
    // A relay stuck on an old repository state; the publisher then refreshes the timestamp and
    // the agent, on a clean first cycle from the origin, trusts that newer one.
    let old_dir = bed.path("old");
    copy_dir(&bed.repo.dir, &old_dir);
    let stale = Server::start(&old_dir);
    ok(&["repo", "refresh", s(&bed.repo.dir)]);
    bed.once(&bed.config(&o)).unwrap();
    // The publisher moves on. A relay with the new metadata but a tampered new pattern file.
    bed.repo.add(
        "antimalware.pattern",
        "18.524.00",
        "pattern",
        b"pattern 18.524.00",
    );
    bed.repo.publish();
    let evil_dir = bed.path("evil");
    copy_dir(&bed.repo.dir, &evil_dir);
    let hash = tuf::crypto::sha256_hex(b"pattern 18.524.00");
    std::fs::write(
        evil_dir.join(format!(
            "targets/content/antimalware.pattern/18.524.00/{hash}.antimalware.pattern.dat"
        )),
        b"pattern 66.666.66",
    )
    .unwrap();
    let evil = Server::start(&evil_dir);
    // A relay whose every answer is endless.
    let endless = endless_server();
    o.relays = vec![
        stale.base.clone(),
        endless.clone(),
        evil.base.clone(),
        bed.origin.base.clone(),
    ];
    let cfg = bed.config(&o);
    bed.once(&cfg).unwrap();
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.524.00",
        "the verified file, from the origin; nothing from the bad relays"
    );
    let v: serde_json::Value = serde_json::from_slice(
        &http()
            .get(format!("{}/api/v1/hosts", mgr.base))
            .bearer_auth(&admin)
            .send()
            .unwrap()
            .bytes()
            .unwrap(),
    )
    .unwrap();
    let last = v["hosts"][0]["last_result"].as_str().unwrap().to_string();
    assert!(
        last.contains(&stale.base) && last.contains("rollback"),
        "the manager shows why: {last}"
    );
    assert!(
        last.contains(&endless) && last.contains("more than the allowed"),
        "{last}"
    );
    assert!(last.contains(&evil.base) && last.contains("hash"), "{last}");
}

/// A server answering every request with an endless body (a bounded number of connections).
fn endless_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
                let chunk = vec![b'{'; 64 * 1024];
                for _ in 0..16 * 1024 {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}
