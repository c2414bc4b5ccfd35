//! The publisher's commands, the origin and the conformance client as real processes over
//! 127.0.0.1: publishing, key rotation the client follows, clear errors that change nothing,
//! and a server sending endless data.
use crate::common::*;
use std::io::{Read, Write};
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `updraft repo add REPO FILE --component C --version V --kind K EXTRA…`
fn add_args<'a>(
    repo: &'a Path,
    file: &'a Path,
    component: &'a str,
    version: &'a str,
    kind: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut v = vec![
        "repo",
        "add",
        s(repo),
        s(file),
        "--component",
        component,
        "--version",
        version,
        "--kind",
        kind,
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn publish_serve_rotate_and_download_with_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let out = ok(&["repo", "init", s(&repo)]);
    assert!(out.contains("1.root.json"), "{out}");
    // Keys are private.
    #[cfg(unix)]
    for e in std::fs::read_dir(repo.join("keys")).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let mode = e.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Refuses to overwrite.
    assert!(fails(&["repo", "init", s(&repo)]).contains("refusing to overwrite"));

    let file = tmp.path().join("pattern.dat");
    std::fs::write(&file, b"signatures v1").unwrap();
    let before = std::fs::read(repo.join("metadata/timestamp.json")).unwrap();
    // Bad input: clear errors, nothing changed.
    assert!(fails(&add_args(
        &repo,
        &file,
        "antimalware.pattern",
        "1.x",
        "pattern",
        &[]
    ))
    .contains("version"));
    assert!(fails(&add_args(
        &repo,
        &file,
        "antimalware.pattern",
        "1.0",
        "virus",
        &[]
    ))
    .contains("kind"));
    assert!(fails(&add_args(
        &repo,
        Path::new("/no/such/file"),
        "antimalware.pattern",
        "1.0",
        "pattern",
        &[]
    ))
    .contains("/no/such/file"));
    assert!(
        fails(&add_args(&repo, &file, "scanner", "9.5.1519", "patch", &[])).contains("--product")
    );
    assert!(!repo.join("staged.json").exists());
    assert_eq!(
        std::fs::read(repo.join("metadata/timestamp.json")).unwrap(),
        before
    );

    ok(&add_args(
        &repo,
        &file,
        "antimalware.pattern",
        "18.523.00",
        "pattern",
        &[],
    ));
    ok(&add_args(
        &repo,
        &file,
        "scanner",
        "9.5.1519",
        "patch",
        &[
            "--product",
            "scanner",
            "--requires-build",
            ">=9.5.1514",
            "--build",
            "9.5.1519",
            "--patch-id",
            "CP-1519",
        ],
    ));
    assert!(ok(&["repo", "status", s(&repo)]).contains("staged"));
    ok(&["repo", "publish", s(&repo)]);
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["repo", "status", s(&repo), "--json"])).unwrap();
    assert_eq!(status["targets"].as_array().unwrap().len(), 2);

    let server = Server::start(&repo);
    let md = tmp.path().join("client-md");
    let dl = tmp.path().join("client-dl");
    ok(&[
        "tuf-client",
        "--metadata-dir",
        s(&md),
        "init",
        s(&repo.join("metadata/1.root.json")),
    ]);
    let meta_url = format!("{}/metadata", server.base);
    let target_url = format!("{}/targets", server.base);
    let target = "content/antimalware.pattern/18.523.00/pattern.dat";
    ok(&download_args(&md, &meta_url, &target_url, &dl, target));
    let downloaded = std::fs::read_dir(&dl)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(std::fs::read(&downloaded).unwrap(), b"signatures v1");
    let custom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(md.join("targets.json")).unwrap()).unwrap();
    assert_eq!(
        custom["signed"]["targets"]["content/scanner/9.5.1519/pattern.dat"]["custom"]["updraft"]
            ["patch_id"],
        "CP-1519"
    );

    // Rotations and a new version: the client (still the same metadata dir) follows.
    ok(&[
        "repo",
        "rotate",
        s(&repo),
        "--role",
        "root",
        "--keys",
        "3",
        "--threshold",
        "2",
    ]);
    ok(&["repo", "rotate", s(&repo), "--role", "timestamp"]);
    ok(&[
        "repo",
        "rotate",
        s(&repo),
        "--role",
        "targets",
        "--keys",
        "2",
        "--threshold",
        "2",
    ]);
    std::fs::write(&file, b"signatures v2").unwrap();
    ok(&add_args(
        &repo,
        &file,
        "antimalware.pattern",
        "18.525.00",
        "pattern",
        &[],
    ));
    ok(&["repo", "remove", s(&repo), target]);
    ok(&["repo", "publish", s(&repo)]);
    ok(&["repo", "refresh", s(&repo)]);
    let t2 = "content/antimalware.pattern/18.525.00/pattern.dat";
    ok(&download_args(&md, &meta_url, &target_url, &dl, t2));
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(md.join("root.json")).unwrap()).unwrap();
    assert_eq!(
        root["signed"]["version"], 4,
        "three rotations of top-level roles: root v4"
    );
    // A delegated role for IPS rules, signed by its own key.
    ok(&[
        "repo",
        "delegate",
        s(&repo),
        "--name",
        "ips-team",
        "--path",
        "content/ips.rules/*/*",
        "--terminating",
    ]);
    std::fs::write(&file, b"rules").unwrap();
    ok(&add_args(
        &repo,
        &file,
        "ips.rules",
        "2026.11.1",
        "rules",
        &["--role", "ips-team"],
    ));
    ok(&["repo", "publish", s(&repo)]);
    let t3 = "content/ips.rules/2026.11.1/pattern.dat";
    ok(&download_args(&md, &meta_url, &target_url, &dl, t3));
    assert!(md.join("ips-team.json").exists());
    // The removed target is no longer downloadable.
    let err = fails(&download_args(&md, &meta_url, &target_url, &dl, target));
    assert!(err.contains("not listed"), "{err}");
}

/// A server that answers every request with an endless body.
fn endless_server() -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        // Serve a bounded number of connections, then stop.
        for stream in listener.incoming().take(1) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"signed\":\"",
            );
            let chunk = vec![b'a'; 64 * 1024];
            // Up to 1 GiB, until the client hangs up.
            for _ in 0..16 * 1024 {
                if stream.write_all(&chunk).is_err() {
                    break;
                }
            }
        }
    });
    (format!("http://{addr}"), handle)
}

#[test]
fn endless_timestamp_over_http_is_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&["repo", "init", s(&repo)]);
    let md = tmp.path().join("md");
    ok(&[
        "tuf-client",
        "--metadata-dir",
        s(&md),
        "init",
        s(&repo.join("metadata/1.root.json")),
    ]);
    let (base, handle) = endless_server();
    // The root probe gets the endless body first: it must be cut off at the root bound.
    let err = fails(&[
        "tuf-client",
        "--metadata-dir",
        s(&md),
        "--metadata-url",
        &base,
        "refresh",
    ]);
    assert!(err.contains("more than the allowed 524288 bytes"), "{err}");
    handle.join().unwrap();
}

#[test]
fn unreachable_repository_and_missing_init_fail_with_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let md = tmp.path().join("md");
    let err = fails(&[
        "tuf-client",
        "--metadata-dir",
        s(&md),
        "--metadata-url",
        "http://127.0.0.1:9/metadata",
        "refresh",
    ]);
    assert!(err.contains("root.json"), "{err}");
    let repo = tmp.path().join("repo");
    ok(&["repo", "init", s(&repo)]);
    ok(&[
        "tuf-client",
        "--metadata-dir",
        s(&md),
        "init",
        s(&repo.join("metadata/1.root.json")),
    ]);
    let err = fails(&[
        "tuf-client",
        "--metadata-dir",
        s(&md),
        "--metadata-url",
        "http://127.0.0.1:9/metadata",
        "refresh",
    ]);
    assert!(err.contains("127.0.0.1:9"), "{err}");
    assert!(fails(&[
        "serve",
        s(&tmp.path().join("nothing")),
        "--listen",
        "127.0.0.1:0"
    ])
    .contains("not a directory"));
}
