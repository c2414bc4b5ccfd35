//! Interoperability with python-tuf (PyPI `tuf`, in the venv made by scripts/setup-python.sh):
//! its ngclient reads what `updraft repo` publishes, and `updraft tuf-client` reads what its
//! Metadata API writes (ed25519, ECDSA and RSA-PSS keys, a root rotation).
use crate::common::*;
use std::path::Path;
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn script(name: &str) -> String {
    format!("{}/tests/python/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn python_tuf_ngclient_downloads_from_an_updraft_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&["repo", "init", s(&repo), "--key-type", "ecdsa"]);
    let file = tmp.path().join("rules.bin");
    std::fs::write(&file, b"ips rules 2026.11").unwrap();
    ok(&[
        "repo",
        "add",
        s(&repo),
        s(&file),
        "--component",
        "ips.rules",
        "--version",
        "2026.11.1",
        "--kind",
        "rules",
    ]);
    ok(&["repo", "publish", s(&repo)]);
    ok(&["repo", "rotate", s(&repo), "--role", "root"]);
    ok(&[
        "repo",
        "rotate",
        s(&repo),
        "--role",
        "snapshot",
        "--keys",
        "2",
        "--threshold",
        "2",
    ]);
    let server = Server::start(&repo);
    let md = tmp.path().join("py-md");
    let dl = tmp.path().join("py-dl");
    std::fs::create_dir_all(&md).unwrap();
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::copy(repo.join("metadata/1.root.json"), md.join("root.json")).unwrap();
    let out = Command::new(python())
        .args([
            &script("ngclient_download.py"),
            s(&md),
            &server.base,
            s(&dl),
            "content/ips.rules/2026.11.1/rules.bin",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ngclient failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(std::fs::read(path).unwrap(), b"ips rules 2026.11");
}

#[test]
fn updraft_client_downloads_from_a_python_tuf_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("pyrepo");
    let out = Command::new(python())
        .args([&script("make_repo.py"), s(&repo)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make_repo.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start(&repo);
    let md = tmp.path().join("md");
    let dl = tmp.path().join("dl");
    ok(&[
        "tuf-client",
        "--metadata-dir",
        s(&md),
        "init",
        s(&repo.join("metadata/1.root.json")),
    ]);
    let (meta_url, target_url) = (
        format!("{}/metadata", server.base),
        format!("{}/targets", server.base),
    );
    ok(&download_args(
        &md,
        &meta_url,
        &target_url,
        &dl,
        "content/hello.txt",
    ));
    assert_eq!(
        std::fs::read(dl.join("content%2Fhello.txt")).unwrap(),
        b"hello from python-tuf\n"
    );
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(md.join("root.json")).unwrap()).unwrap();
    assert_eq!(root["signed"]["version"], 2);
}
