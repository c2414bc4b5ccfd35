//! Shared helpers: a real repository made by the engine in a temporary directory, a client over
//! the file fetcher, and functions that break the repository in precise ways (re-signing with
//! the right keys so that only the property under test is wrong).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tuf::crypto::sha256_hex;
use tuf::repo::{InitOptions, Repository};
use tuf::{FileFetcher, Updater, UpdaterConfig};

pub const TARGET: &str = "content/antimalware.pattern/1.0/pattern.dat";
pub const BODY: &[u8] = b"pattern file body";

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub repo: Repository,
    pub root_v1: Vec<u8>,
}

impl Env {
    pub fn new() -> Self {
        Self::with_options(&InitOptions::default())
    }

    pub fn with_options(opts: &InitOptions) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut repo = Repository::init(&tmp.path().join("repo"), opts).unwrap();
        repo.add_target_bytes("targets", TARGET, BODY, None)
            .unwrap();
        repo.publish().unwrap();
        let root_v1 = fs::read(repo.metadata_dir().join("1.root.json")).unwrap();
        Env { tmp, repo, root_v1 }
    }

    pub fn meta_url(&self) -> String {
        self.repo.metadata_dir().to_string_lossy().into_owned()
    }
    pub fn target_url(&self) -> String {
        self.repo.targets_dir().to_string_lossy().into_owned()
    }
    pub fn client_dir(&self) -> PathBuf {
        self.tmp.path().join("client")
    }
    pub fn download_dir(&self) -> PathBuf {
        self.tmp.path().join("downloads")
    }

    pub fn updater(&self) -> Updater<FileFetcher> {
        self.updater_with(UpdaterConfig::default())
    }

    pub fn updater_with(&self, config: UpdaterConfig) -> Updater<FileFetcher> {
        Updater::new(
            self.client_dir(),
            &self.meta_url(),
            self.root_v1.clone(),
            FileFetcher,
            config,
        )
        .unwrap()
    }

    /// A client in a new directory of its own, refreshed.
    pub fn updater_refreshed(&self) -> Updater<FileFetcher> {
        let dir = tempfile::tempdir_in(self.tmp.path()).unwrap().keep();
        let mut up = Updater::new(
            dir,
            &self.meta_url(),
            self.root_v1.clone(),
            FileFetcher,
            UpdaterConfig::default(),
        )
        .unwrap();
        up.refresh().unwrap();
        up
    }

    pub fn meta_path(&self, name: &str) -> PathBuf {
        self.repo.metadata_dir().join(name)
    }

    /// The `signed` object of a metadata file of the repository.
    pub fn signed(&self, name: &str) -> Value {
        self.envelope(name)["signed"].clone()
    }

    /// A whole metadata file of the repository as JSON (signatures included).
    pub fn envelope(&self, name: &str) -> Value {
        serde_json::from_slice(&fs::read(self.meta_path(name)).unwrap()).unwrap()
    }

    /// Write a whole metadata file as given (signatures are not recomputed).
    pub fn write_envelope(&self, name: &str, v: &Value) {
        fs::write(self.meta_path(name), serde_json::to_vec(v).unwrap()).unwrap();
    }

    /// Sign `signed` with every key of `role` and write it as `name`.
    pub fn write_signed(&self, name: &str, role: &str, signed: &Value) {
        let bytes = self.repo.sign_role(role, signed).unwrap();
        fs::write(self.meta_path(name), bytes).unwrap();
    }

    /// Load `name`, change its signed object, re-sign with `role`'s keys.
    pub fn resign(&self, name: &str, role: &str, f: impl FnOnce(&mut Value)) {
        let mut s = self.signed(name);
        f(&mut s);
        self.write_signed(name, role, &s);
    }

    pub fn version(&self, role: &str) -> u64 {
        match role {
            "timestamp" => self.repo.timestamp().version,
            "snapshot" => self.repo.snapshot().version,
            "root" => self.repo.root().version,
            r => self.repo.targets(r).unwrap().version,
        }
    }

    /// Make the current timestamp list `N.snapshot.json` as it is now on disk (version, length,
    /// hash) and bump the timestamp version, re-signed.
    pub fn rechain_timestamp(&self, snapshot_version: u64) {
        let bytes = fs::read(self.meta_path(&format!("{snapshot_version}.snapshot.json"))).unwrap();
        self.resign("timestamp.json", "timestamp", |s| {
            s["version"] = json!(s["version"].as_u64().unwrap() + 1);
            s["meta"]["snapshot.json"] =
                json!({"version": snapshot_version, "length": bytes.len(), "hashes": {"sha256": sha256_hex(&bytes)}});
        });
    }

    /// Make the current snapshot list `N.<role>.json` as it is on disk, re-signed in place, and
    /// the timestamp follow.
    pub fn rechain_snapshot(&self, role: &str, role_version: u64) {
        let snap_v = self.version("snapshot");
        let bytes = fs::read(self.meta_path(&format!("{role_version}.{role}.json"))).unwrap();
        self.resign(&format!("{snap_v}.snapshot.json"), "snapshot", |s| {
            s["meta"][format!("{role}.json")] =
                json!({"version": role_version, "length": bytes.len(), "hashes": {"sha256": sha256_hex(&bytes)}});
        });
        self.rechain_timestamp(snap_v);
    }
}

pub fn assert_err<T: std::fmt::Debug>(
    r: tuf::Result<T>,
    pred: impl Fn(&tuf::Error) -> bool,
    what: &str,
) {
    match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => assert!(pred(&e), "{what}: unexpected error {e}"),
    }
}

pub fn file_version(path: &Path) -> u64 {
    let v: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    v["signed"]["version"].as_u64().unwrap()
}
