//! HTTPS between relays with rustls (a private CA given with --upstream-ca), a certificate change
//! that does not interrupt syncing, and bad configurations that fail at once with one clear line.
use crate::common::*;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

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
            .push(rcgen::DnType::CommonName, "updraft test CA");
        Ca {
            cert: params.self_signed(&key).unwrap(),
            key,
        }
    }

    /// A fresh key and certificate for 127.0.0.1, written as PEM files.
    fn issue(&self, dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

#[test]
fn relays_sync_over_https_and_survive_a_certificate_change() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let origin = Server::start(&repo.dir);
    let ca = Ca::new();
    let ca_pem = tmp.path().join("ca.pem");
    std::fs::write(&ca_pem, ca.cert.pem()).unwrap();
    let (cert1, key1) = ca.issue(tmp.path(), "one");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let parent_cache = tmp.path().join("parent");
    let parent_args = |cert: &Path, key: &Path| {
        vec![
            "relay".to_string(),
            "--upstream".into(),
            origin.base.clone(),
            "--trusted-root".into(),
            s(&repo.root_v1).into(),
            "--cache".into(),
            s(&parent_cache).into(),
            "--listen".into(),
            listen.clone(),
            "--poll-interval".into(),
            "1".into(),
            "--tls-cert".into(),
            s(cert).into(),
            "--tls-key".into(),
            s(key).into(),
        ]
    };
    let args1 = parent_args(&cert1, &key1);
    let parent = Server::spawn(&args1.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(parent.base.starts_with("https://"), "{}", parent.base);
    let https = format!("https://{listen}");

    // Without the CA the certificate is not trusted: the sync fails and says so.
    let child_cache = tmp.path().join("child");
    let err = relay_once(&[&https], &repo.root_v1, &child_cache).unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // With --upstream-ca it syncs over HTTPS (waiting for the parent's first sync).
    let first = eventually("the child's first sync over HTTPS", || {
        let r = relay_once_with(
            &[&https],
            &repo.root_v1,
            &child_cache,
            &["--upstream-ca", s(&ca_pem)],
            &[],
        );
        // Until the parent has synced, it has nothing to serve; any other error is a failure.
        if let Err(e) = &r {
            assert!(e.contains("404") || e.contains("not found"), "{e}");
        }
        r
    });
    assert_eq!(first["source"], https.as_str());

    // The parent gets a new key and certificate (same CA); the content changes too.
    parent.kill();
    let (cert2, key2) = ca.issue(tmp.path(), "two");
    let newer = repo.add("ips.rules", "2026.12.1", "rules", b"rules 2026.12.1");
    repo.publish();
    let args2 = parent_args(&cert2, &key2);
    let _parent = Server::spawn(&args2.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    eventually("the child to see the new publication", || {
        let out = relay_once_with(
            &[&https],
            &repo.root_v1,
            &child_cache,
            &["--upstream-ca", s(&ca_pem)],
            &[],
        )
        .unwrap();
        if out["changed"] == true {
            Ok(())
        } else {
            Err(out)
        }
    });
    let relay = relay_offline(&repo.root_v1, &child_cache);
    let body = client_download(
        &tmp.path().join("md"),
        &repo.root_v1,
        &relay.base,
        &newer,
        &tmp.path().join("dl"),
    )
    .unwrap();
    assert_eq!(body, b"rules 2026.12.1");
}

fn one_line_error(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    lines[0].to_string()
}

#[test]
fn bad_configuration_fails_at_once_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let (root, cache) = (s(&repo.root_v1).to_string(), tmp.path().join("cache"));
    let c = s(&cache);
    let e = one_line_error(&["relay", "--trusted-root", &root, "--cache", c]);
    assert!(e.contains("no upstream"), "{e}");
    let e = one_line_error(&[
        "relay",
        "--upstream",
        "http://127.0.0.1:9",
        "--trusted-root",
        "/no/root.json",
        "--cache",
        c,
    ]);
    assert!(e.contains("/no/root.json"), "{e}");
    let e = one_line_error(&[
        "relay",
        "--upstream",
        "ftp://x",
        "--trusted-root",
        &root,
        "--cache",
        c,
    ]);
    assert!(e.contains("ftp://x"), "{e}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let e = one_line_error(&[
        "relay",
        "--upstream",
        "http://127.0.0.1:9",
        "--trusted-root",
        &root,
        "--cache",
        c,
        "--listen",
        &addr,
    ]);
    assert!(e.contains("cannot listen") && e.contains(&addr), "{e}");
    // A cache that cannot be created or written (below a file; below read-only /sys).
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    for bad in [
        file.join("cache"),
        Path::new("/sys/updraft-cache").to_path_buf(),
    ] {
        let e = one_line_error(&[
            "relay",
            "--upstream",
            "http://127.0.0.1:9",
            "--trusted-root",
            &root,
            "--cache",
            s(&bad),
        ]);
        assert!(e.contains(s(&bad)), "{e}");
    }
    // A configuration file with an unknown key.
    let toml = tmp.path().join("relay.toml");
    std::fs::write(&toml, format!("upstream = [\"http://127.0.0.1:9\"]\ntrusted_root = \"{root}\"\ncache = \"{c}\"\npoll_intervall = 5\n")).unwrap();
    let e = one_line_error(&["relay", "--config", s(&toml)]);
    assert!(e.contains("poll_intervall"), "{e}");
    // A good configuration file works (one sync against a real origin).
    let origin = Server::start(&repo.dir);
    std::fs::write(
        &toml,
        format!(
            "upstream = [\"{}\"]\ntrusted_root = \"{root}\"\ncache = \"{c}\"\nkeep_views = 2\n",
            origin.base
        ),
    )
    .unwrap();
    let out = ok(&["relay", "--config", s(&toml), "--once"]);
    assert!(out.contains("\"changed\": true"), "{out}");
}
