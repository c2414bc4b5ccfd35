//! Offline bundles: export from a connected relay, import into an isolated one (verified with the
//! TUF client workflow), component filters, tampered and foreign-format bundles refused, expiry
//! only under an explicit grace, and a committed bundle of format 1 that every later build imports.
use crate::common::*;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn import(cache: &Path, root: &Path, bundle: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "relay",
        "import",
        "--cache",
        s(cache),
        "--trusted-root",
        s(root),
    ];
    args.extend_from_slice(extra);
    args.push(s(bundle));
    run(&args)
}

fn connected(tmp: &Path) -> (Repo, PathBuf) {
    let repo = Repo::new(tmp);
    let origin = Server::start(&repo.dir);
    let cache = tmp.join("connected");
    relay_once(&[&origin.base], &repo.root_v1, &cache).unwrap();
    (repo, cache)
}

const PATTERN: &str = "content/antimalware.pattern/18.523.00/antimalware.pattern.dat";
const RULES: &str = "content/ips.rules/2026.11.1/ips.rules.dat";

#[test]
fn export_then_import_into_an_isolated_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, connected) = connected(tmp.path());
    let bundle = tmp.path().join("site.tar");
    let out = ok(&[
        "relay",
        "export",
        "--cache",
        s(&connected),
        "--out",
        s(&bundle),
    ]);
    assert!(out.contains("bundle format 1"), "{out}");
    let isolated = tmp.path().join("isolated");
    let out = import(&isolated, &repo.root_v1, &bundle, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let relay = relay_offline(&repo.root_v1, &isolated);
    let (md, dl) = (tmp.path().join("md"), tmp.path().join("dl"));
    assert_eq!(
        client_download(&md, &repo.root_v1, &relay.base, PATTERN, &dl).unwrap(),
        b"pattern 18.523.00"
    );
    assert_eq!(
        client_download(&md, &repo.root_v1, &relay.base, RULES, &dl).unwrap(),
        b"rules 2026.11.1"
    );
    let status = get_json(&format!("{}/status", relay.base));
    assert!(status["view"]["source"]
        .as_str()
        .unwrap()
        .starts_with("bundle "));
}

#[test]
fn component_filter_carries_only_those_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, connected) = connected(tmp.path());
    let bundle = tmp.path().join("rules-only.tar");
    ok(&[
        "relay",
        "export",
        "--cache",
        s(&connected),
        "--out",
        s(&bundle),
        "--component",
        "ips.rules",
    ]);
    let isolated = tmp.path().join("isolated");
    let out = import(&isolated, &repo.root_v1, &bundle, &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 not in the bundle"),
        "{out:?}"
    );
    let relay = relay_offline(&repo.root_v1, &isolated);
    let (md, dl) = (tmp.path().join("md"), tmp.path().join("dl"));
    assert_eq!(
        client_download(&md, &repo.root_v1, &relay.base, RULES, &dl).unwrap(),
        b"rules 2026.11.1"
    );
    assert!(client_download(&md, &repo.root_v1, &relay.base, PATTERN, &dl).is_err());
}

/// Rewrite one member of a tar archive.
fn rewrite_member(bundle: &Path, out: &Path, f: impl Fn(&str, Vec<u8>) -> Vec<u8>) {
    let mut archive = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    let mut builder = tar::Builder::new(std::fs::File::create(out).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        let data = f(&name, data);
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, &name, data.as_slice()).unwrap();
    }
    builder.finish().unwrap();
}

#[test]
fn tampered_and_foreign_bundles_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, connected) = connected(tmp.path());
    let bundle = tmp.path().join("good.tar");
    ok(&[
        "relay",
        "export",
        "--cache",
        s(&connected),
        "--out",
        s(&bundle),
    ]);
    let isolated = tmp.path().join("isolated");
    assert!(import(&isolated, &repo.root_v1, &bundle, &[])
        .status
        .success());
    let before = std::fs::read_to_string(isolated.join("current")).unwrap();

    let tampered = tmp.path().join("tampered.tar");
    rewrite_member(&bundle, &tampered, |name, data| {
        if name.ends_with("ips.rules.dat") && name.starts_with("targets/") {
            b"rules 6666.66.6".to_vec()
        } else {
            data
        }
    });
    // Fresh cache: nothing verified yet, so the tampered file must be downloaded and is refused.
    let fresh = tmp.path().join("fresh");
    let out = import(&fresh, &repo.root_v1, &tampered, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hash"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!fresh.join("current").exists());

    let foreign = tmp.path().join("foreign.tar");
    rewrite_member(&bundle, &foreign, |name, data| {
        if name == "manifest.json" {
            let mut v: serde_json::Value = serde_json::from_slice(&data).unwrap();
            v["format"] = serde_json::json!(99);
            serde_json::to_vec(&v).unwrap()
        } else {
            data
        }
    });
    let out = import(&isolated, &repo.root_v1, &foreign, &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bundle format 99 is not supported"));
    assert_eq!(
        std::fs::read_to_string(isolated.join("current")).unwrap(),
        before
    );

    let escaping = tmp.path().join("escaping.tar");
    rewrite_member(&bundle, &escaping, |_, d| d);
    {
        // Append a member that climbs out of the staging directory.
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&escaping)
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len - 1024).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).unwrap();
        let mut b = tar::Builder::new(f);
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.as_gnu_mut().unwrap().name[..20].copy_from_slice(b"targets/../../evil\0\0");
        h.set_cksum();
        b.append(&h, &b"hi"[..]).unwrap();
        b.finish().unwrap();
    }
    let out = import(&isolated, &repo.root_v1, &escaping, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("escapes the bundle"),
        "{out:?}"
    );
    assert!(!isolated.join("evil").exists() && !tmp.path().join("evil").exists());
}

#[test]
fn expired_bundles_import_only_under_an_explicit_visible_grace() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    // The publisher's timestamp expired a day ago (an air-gapped site gets it late).
    let settings = repo.dir.join("repository.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    v["expiry"]["timestamp_days"] = serde_json::json!(-1);
    std::fs::write(&settings, serde_json::to_vec(&v).unwrap()).unwrap();
    ok(&["repo", "refresh", s(&repo.dir)]);
    let origin = Server::start(&repo.dir);
    let connected = tmp.path().join("connected");
    let err = relay_once(&[&origin.base], &repo.root_v1, &connected).unwrap_err();
    assert!(err.contains("expired"), "{err}");
    relay_once_with(
        &[&origin.base],
        &repo.root_v1,
        &connected,
        &["--offline-grace", "3"],
        &[],
    )
    .unwrap();
    let bundle = tmp.path().join("late.tar");
    ok(&[
        "relay",
        "export",
        "--cache",
        s(&connected),
        "--out",
        s(&bundle),
    ]);

    let isolated = tmp.path().join("isolated");
    let out = import(&isolated, &repo.root_v1, &bundle, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timestamp: expired"),
        "{out:?}"
    );
    let out = import(&isolated, &repo.root_v1, &bundle, &["--offline-grace", "3"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("offline grace"));
    let relay = Server::spawn(
        &[
            "relay",
            "--offline",
            "--offline-grace",
            "3",
            "--trusted-root",
            s(&repo.root_v1),
            "--cache",
            s(&isolated),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let status = get_json(&format!("{}/status", relay.base));
    let warnings = status["warnings"].to_string();
    assert!(
        warnings.contains("offline grace") && warnings.contains("timestamp"),
        "{warnings}"
    );
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Writes the committed fixture (run with UPDRAFT_WRITE_FIXTURES=1 when the format changes).
fn write_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    ok(&["repo", "init", s(&dir)]);
    let settings = dir.join("repository.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    for k in [
        "root_days",
        "targets_days",
        "snapshot_days",
        "timestamp_days",
    ] {
        v["expiry"][k] = serde_json::json!(36500);
    }
    std::fs::write(&settings, serde_json::to_vec(&v).unwrap()).unwrap();
    // Root v2 carries the long expiry (the anchor v1 is only walked through).
    ok(&["repo", "rotate", s(&dir), "--role", "root"]);
    let repo = Repo {
        root_v1: dir.join("metadata/1.root.json"),
        dir,
    };
    repo.add("antimalware.pattern", "1.0", "pattern", b"fixture pattern");
    repo.add("ips.rules", "1.0", "rules", b"fixture rules");
    repo.publish();
    let cache = tmp.path().join("cache");
    relay_once(
        &[&format!("file://{}", s(&repo.dir))],
        &repo.root_v1,
        &cache,
    )
    .unwrap();
    ok(&[
        "relay",
        "export",
        "--cache",
        s(&cache),
        "--out",
        s(&fixture("bundle-v1.tar")),
    ]);
    std::fs::copy(&repo.root_v1, fixture("bundle-v1-root.json")).unwrap();
}

#[test]
fn committed_format_1_bundle_still_imports() {
    if std::env::var_os("UPDRAFT_WRITE_FIXTURES").is_some() {
        write_fixture();
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let root = fixture("bundle-v1-root.json");
    let out = import(&cache, &root, &fixture("bundle-v1.tar"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let relay = relay_offline(&root, &cache);
    let body = client_download(
        &tmp.path().join("md"),
        &root,
        &relay.base,
        "content/ips.rules/1.0/ips.rules.dat",
        &tmp.path().join("dl"),
    )
    .unwrap();
    assert_eq!(body, b"fixture rules");
}
