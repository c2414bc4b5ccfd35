//! The hosts' link to the manager (node): a relay enrols with a manager served over HTTPS with a
//! certificate from a private CA, trusting it only through its one `--ca` setting (the same
//! setting as for its upstreams), and keeps reporting; without the setting the enrolment fails,
//! names the TLS problem in `/status`, and never reaches the manager.

use crate::common::*;
use serde_json::json;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A private CA issuing certificates for 127.0.0.1.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "updraft node_link test CA");
        Ca {
            cert: params.self_signed(&key).unwrap(),
            key,
        }
    }

    /// The CA certificate, a server certificate and its key, as PEM files in `dir`.
    fn files(&self, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let paths = (dir.join("ca.pem"), dir.join("mgr.crt"), dir.join("mgr.key"));
        std::fs::write(&paths.0, self.cert.pem()).unwrap();
        std::fs::write(&paths.1, cert.pem()).unwrap();
        std::fs::write(&paths.2, key.serialize_pem()).unwrap();
        paths
    }
}

/// A manager on HTTPS (certificate from `ca`), an admin API client trusting `ca_pem`, and a
/// one-use enrolment token for relay group `site`.
struct Manager {
    server: Server,
    api: reqwest::blocking::Client,
    admin: String,
    token_file: PathBuf,
}

impl Manager {
    fn start(dir: &Path, ca: &Ca) -> Manager {
        let (ca_pem, cert, key) = ca.files(dir);
        let db = format!("sqlite://{}", dir.join("manager.db").display());
        let admin = ok(&["admin", "--db", &db, "token", "create"])
            .trim()
            .to_string();
        let server = Server::spawn(
            &[
                "manager",
                "--db",
                &db,
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                s(&cert),
                "--tls-key",
                s(&key),
            ],
            &[],
        );
        assert!(server.base.starts_with("https://"), "{}", server.base);
        let root = reqwest::Certificate::from_pem(&std::fs::read(&ca_pem).unwrap()).unwrap();
        let api = reqwest::blocking::Client::builder()
            .add_root_certificate(root)
            .build()
            .unwrap();
        let r = api
            .put(format!("{}/api/v1/groups/site", server.base))
            .bearer_auth(&admin)
            .json(&json!({"role": "relay", "poll_interval": 1}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let token = enroll_token(&db, "site", Some(1));
        let token_file = dir.join("relay.token");
        std::fs::write(&token_file, token.trim()).unwrap();
        Manager {
            server,
            api,
            admin,
            token_file,
        }
    }

    /// The relays the manager knows.
    fn relays(&self) -> Vec<serde_json::Value> {
        let v: serde_json::Value = self
            .api
            .get(format!("{}/api/v1/hosts?role=relay", self.server.base))
            .bearer_auth(&self.admin)
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["hosts"].as_array().cloned().unwrap_or_default()
    }
}

/// A relay syncing from `origin`, reporting to the manager as `hostname`, with `extra` flags.
fn relay(
    repo: &Repo,
    origin: &str,
    cache: &Path,
    m: &Manager,
    hostname: &str,
    extra: &[&str],
) -> Server {
    let mut args = vec![
        "relay",
        "--upstream",
        origin,
        "--trusted-root",
        s(&repo.root_v1),
        "--cache",
        s(cache),
        "--listen",
        "127.0.0.1:0",
        "--poll-interval",
        "1",
        "--manager",
        &m.server.base,
        "--enroll-token-file",
        s(&m.token_file),
        "--hostname",
        hostname,
    ];
    args.extend_from_slice(extra);
    Server::spawn(&args, &[])
}

#[test]
fn a_relay_enrols_with_a_manager_behind_a_private_ca_through_its_one_ca_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let origin = Server::start(&repo.dir);
    let ca = Ca::new();
    let m = Manager::start(tmp.path(), &ca);
    let ca_pem = tmp.path().join("ca.pem");

    // Without the CA: the relay syncs (its upstream is plain HTTP), but the enrolment fails on
    // the manager's certificate, and /status says so.
    let no_ca_cache = tmp.path().join("no-ca");
    let no_ca = relay(&repo, &origin.base, &no_ca_cache, &m, "relay-no-ca", &[]);
    let st = wait_status(&no_ca.base, "the enrolment error", |v| {
        v["manager"]["error"].is_string() && v["view"]["id"].is_u64()
    });
    let err = st["manager"]["error"].as_str().unwrap().to_lowercase();
    assert!(err.contains("certificate"), "{err}");
    assert!(
        err.contains(&m.server.base),
        "the error names the manager: {err}"
    );
    assert!(!no_ca_cache.join("manager.json").exists());
    no_ca.kill();

    // With --ca only: the one-use token was not spent above; the relay enrols and reports.
    let cache = tmp.path().join("with-ca");
    let with_ca = relay(
        &repo,
        &origin.base,
        &cache,
        &m,
        "relay-ca",
        &["--ca", s(&ca_pem)],
    );
    let st = wait_status(&with_ca.base, "an accepted heartbeat", |v| {
        v["manager"]["last_heartbeat"].is_string()
    });
    assert!(st["manager"]["error"].is_null(), "{st:#}");
    let first = eventually("the relay in the manager", || match m.relays().as_slice() {
        [h] if h["last_seen"].is_string() => Ok(h.clone()),
        other => Err(format!("{other:?}")),
    });
    assert_eq!(first["hostname"], "relay-ca");
    assert_eq!(first["role"], "relay");
    assert_eq!(first["builds"]["updraft"], env!("CARGO_PKG_VERSION"));
    assert_eq!(first["upstream"], origin.base.as_str());
    let result = first["last_result"].as_str().unwrap();
    assert!(result == "ok" || result == "unchanged", "{result}");
    // Heartbeats keep coming (one per sync): the manager sees the relay again later.
    eventually("a later heartbeat", || match m.relays().as_slice() {
        [h] if h["last_seen"] != first["last_seen"] => Ok(()),
        other => Err(format!("{other:?}")),
    });
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(cache.join("manager.json")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
}
