//! Makes the fixture repository (`fixtures/repo`, once: `--fresh` makes a new one) and the seed
//! corpora (`seeds/<target>/`, rewritten every time) of the fuzz targets:
//! `cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::sync::Arc;

use relay::sync::{sync_from, Cache, Source, SyncSettings};
use serde_json::{json, Value};
use tuf::repo::{Expiry, InitOptions, Repository};
use updraft_fuzz::{fixture, fixture_dir, DELEGATED};

fn make_fixture(dir: &Path) {
    let days = 36_500; // until 2125: the fuzz targets use a fixed start time
    let opts = InitOptions {
        expiry: Expiry {
            root_days: days,
            targets_days: days,
            snapshot_days: days,
            timestamp_days: days,
        },
        ..InitOptions::default()
    };
    let mut repo = Repository::init(dir, &opts).unwrap();
    let custom = json!({"updraft": {"kind": "pattern", "component": "antimalware.pattern", "version": "1.0"}});
    repo.add_target_bytes(
        "targets",
        "content/antimalware.pattern/1.0/pattern.dat",
        b"pattern body",
        Some(custom),
    )
    .unwrap();
    repo.add_delegation(
        "targets",
        DELEGATED,
        Some(vec![
            "content/delegated/*".into(),
            "content/d?l[a-z]*/*/*".into(),
        ]),
        None,
        true,
        1,
        1,
    )
    .unwrap();
    repo.add_target_bytes(DELEGATED, "content/delegated/1.0/x.dat", b"delegated", None)
        .unwrap();
    repo.publish().unwrap();
}

fn seeds(target: &str, items: &[(&str, Vec<u8>)]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in items {
        fs::write(dir.join(name), bytes).unwrap();
    }
}

fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(bytes);
    v
}

fn signed_part(file: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(file).unwrap();
    serde_json::to_vec(&v["signed"]).unwrap()
}

fn metadata_seeds() {
    let f = fixture();
    let mut root2: Value = serde_json::from_slice(&f.root).unwrap();
    root2["signed"]["version"] = json!(2);
    let root2 = serde_json::to_vec(&root2["signed"]).unwrap();
    // Targets delegating through TAP 15 hash bins and through path hash prefixes.
    let mut succinct: Value = serde_json::from_slice(&f.targets).unwrap();
    let d = &mut succinct["signed"]["delegations"];
    let keyid = d["roles"][0]["keyids"][0].clone();
    d["succinct_roles"] =
        json!({"keyids": [keyid], "threshold": 1, "bit_length": 4, "name_prefix": "bin"});
    d.as_object_mut().unwrap().remove("roles");
    let succinct = serde_json::to_vec(&succinct["signed"]).unwrap();
    let mut prefixes: Value = serde_json::from_slice(&f.targets).unwrap();
    let r = &mut prefixes["signed"]["delegations"]["roles"][0];
    r.as_object_mut().unwrap().remove("paths");
    r["path_hash_prefixes"] = json!(["8", "a1", ""]);
    let prefixes = serde_json::to_vec(&prefixes["signed"]).unwrap();
    seeds(
        "metadata",
        &[
            ("10-signed-targets-succinct", with_mode(10, &succinct)),
            ("10-signed-targets-hash-prefixes", with_mode(10, &prefixes)),
            ("0-root", with_mode(0, &f.root)),
            ("1-root-update", with_mode(1, &f.root)),
            ("2-timestamp", with_mode(2, &f.timestamp)),
            ("3-snapshot", with_mode(3, &f.snapshot)),
            ("4-snapshot-local", with_mode(4, &f.snapshot)),
            ("5-targets", with_mode(5, &f.targets)),
            ("6-delegated", with_mode(6, &f.delegated)),
            ("7-signed-root", with_mode(7, &root2)),
            (
                "8-signed-timestamp",
                with_mode(8, &signed_part(&f.timestamp)),
            ),
            ("9-signed-snapshot", with_mode(9, &signed_part(&f.snapshot))),
            ("10-signed-targets", with_mode(10, &signed_part(&f.targets))),
            (
                "11-signed-delegated",
                with_mode(11, &signed_part(&f.delegated)),
            ),
        ],
    );
}

fn canonical_seeds() {
    seeds(
        "canonical_json",
        &[
            (
                "object",
                br#"{"b":1,"a":[true,null,"x\"y\\z"],"\u00e9":-3,"B":{}}"#.to_vec(),
            ),
            (
                "numbers",
                br#"[0,-0,18446744073709551615,-9223372036854775808,1e2]"#.to_vec(),
            ),
            ("control", br#"{"k\n":"\u0001\t"}"#.to_vec()),
            ("root", signed_part(&fixture().root)),
        ],
    );
}

fn path_seeds() {
    seeds(
        "path_pattern",
        &[
            ("star", b"content/*/*.dat\0content/a/b.dat".to_vec()),
            ("sets", b"f[!0-9][]a-]?\0fx]b".to_vec()),
            (
                "pathological",
                format!("{}b\0{}", "*a".repeat(12), "a".repeat(46)).into_bytes(),
            ),
            ("brackets", b"[a\0[a".to_vec()),
        ],
    );
}

fn tar_of(members: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(0);
        // Names are set raw so that seeds may hold what `append_data` refuses (`..`, `/`).
        let name_field = &mut h.as_old_mut().name;
        name_field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn zst(bytes: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
}

fn patch_seeds() {
    use tar::EntryType::{Directory, Regular, Symlink};
    let good = tar_of(&[
        ("bin/", Directory, b""),
        ("bin/tool", Regular, b"#!/bin/sh\necho patched\n"),
        ("./lib/x.so", Regular, b"ELF"),
    ]);
    let escape = tar_of(&[("../escape", Regular, b"x")]);
    let absolute = tar_of(&[("/tmp/abs", Regular, b"x")]);
    let link = tar_of(&[("link", Symlink, b"")]);
    let twice = tar_of(&[("a", Regular, b"1"), ("a", Regular, b"2")]);
    seeds(
        "patch_unpack",
        &[
            ("tar", with_mode(0, &good)),
            ("tar-zst", with_mode(1, &zst(&good))),
            ("escape", with_mode(0, &escape)),
            ("absolute", with_mode(0, &absolute)),
            ("symlink", with_mode(0, &link)),
            ("twice-zst", with_mode(1, &zst(&twice))),
        ],
    );
}

fn bundle_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = tmp.path().join("cache");
    let cache = Cache::open(&cache_dir).unwrap();
    let settings = SyncSettings {
        trusted_root: fixture().root.clone(),
        keep_views: 2,
        offline_grace: time::Duration::ZERO,
        max_roles: 64,
        progress: false,
    };
    let repo = fixture_dir();
    let source = Source {
        label: "fixture".into(),
        metadata_url: repo.join("metadata").to_string_lossy().into_owned(),
        targets_url: repo.join("targets").to_string_lossy().into_owned(),
        allow_missing_targets: false,
    };
    sync_from(&cache, &settings, Arc::new(tuf::FileFetcher), &source).unwrap();
    let out = tmp.path().join("bundle.tar");
    relay::bundle::export(&cache_dir, &out, &Default::default(), false).unwrap();
    let full = fs::read(&out).unwrap();
    let manifest = json!({"format": 1, "created": "2030-01-01T00:00:00Z", "producer": "fuzz",
        "versions": {}, "components": [], "metadata": [], "targets": []});
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let escape = tar_of(&[
        ("manifest.json", tar::EntryType::Regular, &manifest),
        ("metadata/../../x", tar::EntryType::Regular, b"x"),
    ]);
    seeds("bundle", &[("full", full), ("escape", escape)]);
}

fn delta_seeds() {
    let base = b"pattern 18.1: sig-1 sig-2 sig-3 sig-4 sig-5 sig-6 sig-7".to_vec();
    let target = b"pattern 18.2: sig-1 sig-2 sig-3 sig-4 sig-5 sig-6 sig-7 sig-8".to_vec();
    let item = |algorithm: delta::Algorithm| {
        let made = delta::make(delta::Choice::Only(algorithm), &base, &target).unwrap();
        let kind = u8::from(algorithm == delta::Algorithm::Bsdiff);
        let mut v = vec![kind];
        v.extend_from_slice(&(target.len() as u16).to_le_bytes());
        v.push(base.len() as u8);
        v.extend_from_slice(&base);
        v.extend_from_slice(&made.bytes);
        v
    };
    seeds(
        "delta_apply",
        &[
            ("zstd", item(delta::Algorithm::Zstd)),
            ("bsdiff", item(delta::Algorithm::Bsdiff)),
        ],
    );
}

fn main() {
    let dir = fixture_dir();
    if std::env::args().any(|a| a == "--fresh") {
        let _ = fs::remove_dir_all(&dir);
    }
    if !dir.join("metadata/root.json").exists() {
        make_fixture(&dir);
    }
    metadata_seeds();
    canonical_seeds();
    path_seeds();
    patch_seeds();
    bundle_seeds();
    delta_seeds();
}
