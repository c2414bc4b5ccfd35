//! Shared setup of the fuzz targets: a small fixed repository (committed under
//! `fixtures/repo`, made by `examples/gen_seeds.rs`, keys included: they sign nothing but fuzz
//! inputs) and helpers that sign fuzzed `signed` objects with its keys, so that inputs reach the
//! checks that come after signature verification.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Value};
use time::OffsetDateTime;
use tuf::crypto::sha256_hex;
use tuf::repo::Repository;

/// The delegated role of the fixture (delegated by `targets` for `content/delegated/*`).
pub const DELEGATED: &str = "role1";

/// The fixed start time of every fuzzed cycle (the fixture's metadata expires in 2125).
pub fn now() -> OffsetDateTime {
    time::macros::datetime!(2030-01-01 00:00 UTC)
}

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/repo")
}

/// The fixture repository and the exact bytes of its current metadata.
pub struct Fixture {
    pub repo: Repository,
    pub root: Vec<u8>,
    pub timestamp: Vec<u8>,
    pub snapshot: Vec<u8>,
    pub targets: Vec<u8>,
    pub delegated: Vec<u8>,
    /// Versions of `targets` and `delegated`.
    pub targets_version: u64,
    pub delegated_version: u64,
}

fn file_version(bytes: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(bytes).expect("fixture metadata");
    version_of(&v["signed"])
}

fn read(name: &str) -> Vec<u8> {
    let p = fixture_dir().join("metadata").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let repo = Repository::open(&fixture_dir()).expect("fixture repository");
        let targets = read("targets.json");
        let delegated = read(&format!("{DELEGATED}.json"));
        Fixture {
            targets_version: file_version(&targets),
            delegated_version: file_version(&delegated),
            targets,
            delegated,
            root: read("1.root.json"),
            timestamp: read("timestamp.json"),
            snapshot: read("snapshot.json"),
            repo,
        }
    })
}

/// Sign `signed` with the fixture's keys for `role` (`None` when it has no canonical form).
pub fn sign(role: &str, signed: &Value) -> Option<Vec<u8>> {
    let f = fixture();
    let keys = f.repo.signing_keys(role).expect("fixture keys");
    Repository::sign_with(&keys, signed).ok()
}

/// The `version` of a fuzzed object, or 1.
pub fn version_of(signed: &Value) -> u64 {
    signed.get("version").and_then(Value::as_u64).unwrap_or(1)
}

/// A meta entry listing `bytes` (length and sha256).
pub fn meta_entry(bytes: &[u8], version: u64) -> Value {
    json!({"version": version, "length": bytes.len(), "hashes": {"sha256": sha256_hex(bytes)}})
}

/// A signed timestamp listing the snapshot `snapshot` with `version`.
pub fn timestamp_for(snapshot: &[u8], version: u64) -> Vec<u8> {
    let signed = json!({
        "_type": "timestamp",
        "spec_version": "1.0.31",
        "version": 1_000_000,
        "expires": "2125-01-01T00:00:00Z",
        "meta": {"snapshot.json": meta_entry(snapshot, version)},
    });
    sign("timestamp", &signed).expect("timestamp")
}

/// A signed snapshot (version 1_000_000) listing `roles` (name without `.json`, bytes, version).
pub fn snapshot_for(roles: &[(&str, &[u8], u64)]) -> Vec<u8> {
    let meta: serde_json::Map<String, Value> = roles
        .iter()
        .map(|(r, b, v)| (format!("{r}.json"), meta_entry(b, *v)))
        .collect();
    let signed = json!({
        "_type": "snapshot",
        "spec_version": "1.0.31",
        "version": 1_000_000,
        "expires": "2125-01-01T00:00:00Z",
        "meta": meta,
    });
    sign("snapshot", &signed).expect("snapshot")
}

/// Every path below `dir`, relative, sorted.
pub fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if let Ok(rel) = p.strip_prefix(base) {
                out.insert(rel.to_path_buf());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// A scratch directory on tmpfs when there is one (fuzzing writes many small files).
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::Builder::new()
            .prefix("updraft-fuzz-")
            .tempdir_in(shm)
        {
            return t;
        }
    }
    tempfile::Builder::new()
        .prefix("updraft-fuzz-")
        .tempdir()
        .expect("temporary directory")
}
