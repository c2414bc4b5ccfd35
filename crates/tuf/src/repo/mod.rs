//! The repository engine: creates keys and a TUF repository on disk, adds and removes targets,
//! delegates, rotates keys and signs new versions with consistent snapshots.
//!
//! Layout of a repository directory:
//! - `keys/<keyid>.json`: private keys (mode 0600); `keys/retired/` keeps rotated-out keys.
//! - `metadata/N.root.json` for every root version ever published (kept forever), `N.targets.json`,
//!   `N.snapshot.json`, `N.<role>.json`, `timestamp.json`, plus unversioned copies of the newest
//!   version of every role (`root.json`, `targets.json`, …) from which the engine reloads its state.
//! - `targets/<dir>/<sha256>.<name>`: target files (consistent snapshots).
//! - `staged.json`: signed-object drafts of roles changed since the last publish.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::crypto::{sha256_hex, KeyKind, PrivateKey};
use crate::delegation::succinct_bin_name;
use crate::error::{Error, Result};
use crate::fsutil::{safe_file_name, write_atomic};
use crate::metadata::{
    envelope_bytes, format_expires, DelegatedRole, Delegations, Envelope, Key, MetaFile, RoleKeys,
    Root, Signature, Snapshot, SuccinctRoles, TargetFile, Targets, Timestamp, TOP_LEVEL_ROLES,
};

/// The TUF specification version Updraft writes.
pub const SPEC_VERSION: &str = "1.0.31";

/// How long newly signed metadata stays valid, per role.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Expiry {
    pub root_days: i64,
    pub targets_days: i64,
    pub snapshot_days: i64,
    pub timestamp_days: i64,
}

impl Default for Expiry {
    fn default() -> Self {
        Expiry {
            root_days: 365,
            targets_days: 90,
            snapshot_days: 30,
            timestamp_days: 1,
        }
    }
}

/// Options for a new repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub key_kind: KeyKind,
    /// Number of keys created per top-level role, and the threshold of each role.
    pub keys_per_role: usize,
    pub threshold: u64,
    pub consistent_snapshot: bool,
    pub expiry: Expiry,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            key_kind: KeyKind::Ed25519,
            keys_per_role: 1,
            threshold: 1,
            consistent_snapshot: true,
            expiry: Expiry::default(),
        }
    }
}

/// What a key rotation makes of a role. A count left out keeps the role's current one, so that
/// rotating keys never weakens a role by accident: "rotate the timestamp keys" of a 2-of-3 role
/// gives a 2-of-3 role with three new keys.
#[derive(Debug, Clone, Default)]
pub struct RotateOptions {
    /// Number of new keys; `None` keeps the role's current number of keys.
    pub keys: Option<usize>,
    /// Threshold after the rotation; `None` keeps the role's current threshold.
    pub threshold: Option<u64>,
    /// Allow a threshold below the current one (a weaker role). Without it such a rotation is
    /// refused with [`Error::ThresholdLowered`].
    pub allow_lower_threshold: bool,
}

/// The outcome of a key rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Ids of the new keys, now the role's only keys.
    pub new_keyids: Vec<String>,
    /// Number of keys and threshold before the rotation.
    pub previous_keys: usize,
    pub previous_threshold: u64,
    /// Threshold after the rotation.
    pub threshold: u64,
}

impl Rotation {
    /// Whether the rotation lowered the role's threshold (only with `allow_lower_threshold`).
    pub fn lowered_threshold(&self) -> bool {
        self.threshold < self.previous_threshold
    }
}

/// Settings stored in `DIR/repository.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Settings {
    key_kind: KeyKind,
    expiry: Expiry,
}

/// Roles changed since the last publish, persisted in `staged.json` so that `add` and `publish`
/// can be separate commands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Staged {
    #[serde(default)]
    targets: BTreeMap<String, Targets>,
    #[serde(default)]
    delegators: BTreeMap<String, String>,
}

/// A summary of the repository for `updraft repo status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub roles: Vec<RoleStatus>,
    pub targets: Vec<(String, u64, String)>,
    pub staged: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoleStatus {
    pub role: String,
    pub version: u64,
    pub expires: String,
    pub threshold: u64,
    pub keyids: Vec<String>,
}

/// A repository on disk.
#[derive(Debug)]
pub struct Repository {
    dir: PathBuf,
    settings: Settings,
    root: Root,
    /// Root keys of the last published root: they must sign the next root version.
    published_root_keys: (Vec<String>, u64),
    root_dirty: bool,
    timestamp: Timestamp,
    snapshot: Snapshot,
    /// Top-level and delegated targets roles.
    targets: BTreeMap<String, Targets>,
    /// Which role delegates each delegated role.
    delegators: BTreeMap<String, String>,
    dirty: BTreeSet<String>,
    keys: BTreeMap<String, PrivateKey>,
}

fn expires_in(days: i64) -> String {
    format_expires(OffsetDateTime::now_utc() + Duration::days(days))
}

fn new_targets() -> Targets {
    Targets {
        type_: "targets".into(),
        spec_version: SPEC_VERSION.into(),
        version: 0,
        expires: expires_in(0),
        targets: Default::default(),
        delegations: None,
        unknown: Map::new(),
    }
}

fn to_value<T: Serialize>(t: &T) -> Result<Value> {
    serde_json::to_value(t).map_err(|e| Error::Repository(e.to_string()))
}

fn write_private_key(path: &Path, key: &PrivateKey) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(key).map_err(|e| Error::Repository(e.to_string()))?;
    crate::fsutil::write_atomic_private(path, &bytes)
}

fn read_signed<T: serde::de::DeserializeOwned + crate::metadata::Common>(
    path: &Path,
    role: &str,
) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    Envelope::parse(role, &bytes)?.typed::<T>(role)
}

/// Check a target path can be stored on disk below `targets/` (segments that are not empty,
/// `.`, `..`, and contain no NUL or backslash).
pub fn check_storable_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains(['\0', '\\']));
    if ok {
        Ok(())
    } else {
        Err(Error::Repository(format!(
            "target path {path:?} cannot be stored: use non-empty segments without '.', '..', NUL or backslash"
        )))
    }
}

impl Repository {
    /// Create a new repository in `dir`. Refuses if `dir` already holds one.
    pub fn init(dir: &Path, opts: &InitOptions) -> Result<Self> {
        for sub in ["metadata", "keys"] {
            let p = dir.join(sub);
            if p.exists()
                && fs::read_dir(&p)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(true)
            {
                return Err(Error::Repository(format!(
                    "{} already exists: refusing to overwrite a repository",
                    p.display()
                )));
            }
        }
        if opts.threshold < 1 || opts.threshold as usize > opts.keys_per_role {
            return Err(Error::Repository(format!(
                "threshold {} must be between 1 and the number of keys ({})",
                opts.threshold, opts.keys_per_role
            )));
        }
        for sub in ["metadata", "keys", "targets"] {
            fs::create_dir_all(dir.join(sub)).map_err(|e| Error::io(dir.join(sub), e))?;
        }
        let settings = Settings {
            key_kind: opts.key_kind,
            expiry: opts.expiry,
        };
        write_atomic(
            &dir.join("repository.json"),
            &serde_json::to_vec_pretty(&settings).map_err(|e| Error::Repository(e.to_string()))?,
        )?;
        let mut repo = Repository {
            dir: dir.to_path_buf(),
            settings,
            root: Root {
                type_: "root".into(),
                spec_version: SPEC_VERSION.into(),
                version: 0,
                expires: expires_in(0),
                consistent_snapshot: Some(opts.consistent_snapshot),
                keys: BTreeMap::new(),
                roles: BTreeMap::new(),
                unknown: Map::new(),
            },
            published_root_keys: (Vec::new(), 1),
            root_dirty: true,
            timestamp: Timestamp {
                type_: "timestamp".into(),
                spec_version: SPEC_VERSION.into(),
                version: 0,
                expires: expires_in(0),
                meta: BTreeMap::new(),
                unknown: Map::new(),
            },
            snapshot: Snapshot {
                type_: "snapshot".into(),
                spec_version: SPEC_VERSION.into(),
                version: 0,
                expires: expires_in(0),
                meta: BTreeMap::new(),
                unknown: Map::new(),
            },
            targets: BTreeMap::from([("targets".to_string(), new_targets())]),
            delegators: BTreeMap::new(),
            dirty: BTreeSet::from(["targets".to_string()]),
            keys: BTreeMap::new(),
        };
        for role in TOP_LEVEL_ROLES {
            let ids = repo.new_keys(opts.keys_per_role)?;
            for id in &ids {
                let key = repo.keys[id].public.clone();
                repo.root.keys.insert(id.clone(), key);
            }
            repo.root.roles.insert(
                role.to_string(),
                RoleKeys {
                    keyids: ids,
                    threshold: opts.threshold,
                    unknown: Map::new(),
                },
            );
        }
        repo.published_root_keys = repo.root_role_keys();
        repo.publish()?;
        Ok(repo)
    }

    /// Open an existing repository.
    pub fn open(dir: &Path) -> Result<Self> {
        let meta = dir.join("metadata");
        if !meta.join("root.json").is_file() {
            return Err(Error::Repository(format!(
                "{} is not an Updraft repository (no metadata/root.json); create one with `updraft repo init`",
                dir.display()
            )));
        }
        let settings: Settings = fs::read(dir.join("repository.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Settings {
                key_kind: KeyKind::Ed25519,
                expiry: Expiry::default(),
            });
        let root: Root = read_signed(&meta.join("root.json"), "root")?;
        let timestamp: Timestamp = read_signed(&meta.join("timestamp.json"), "timestamp")?;
        let snapshot: Snapshot = read_signed(&meta.join("snapshot.json"), "snapshot")?;
        let mut targets = BTreeMap::new();
        for name in snapshot.meta.keys() {
            let role = name.strip_suffix(".json").unwrap_or(name);
            let t: Targets =
                read_signed(&meta.join(format!("{}.json", safe_file_name(role))), role)?;
            targets.insert(role.to_string(), t);
        }
        let mut delegators = BTreeMap::new();
        for (parent, t) in &targets {
            if let Some(d) = &t.delegations {
                for r in d.roles.iter().flatten() {
                    delegators.insert(r.name.clone(), parent.clone());
                }
                if let Some(s) = &d.succinct_roles {
                    for bin in 0..(1u64 << s.bit_length) {
                        delegators.insert(succinct_bin_name(s, bin as u32), parent.clone());
                    }
                }
            }
        }
        let mut keys = BTreeMap::new();
        let key_dir = dir.join("keys");
        let entries = fs::read_dir(&key_dir).map_err(|e| Error::io(&key_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&key_dir, e))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let key: PrivateKey = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Repository(format!("{}: {e}", path.display())))?;
            keys.insert(key.key_id()?, key);
        }
        let published_root_keys = root
            .roles
            .get("root")
            .map(|r| (r.keyids.clone(), r.threshold))
            .unwrap_or_default();
        let mut repo = Repository {
            dir: dir.to_path_buf(),
            settings,
            root,
            published_root_keys,
            root_dirty: false,
            timestamp,
            snapshot,
            targets,
            delegators,
            dirty: BTreeSet::new(),
            keys,
        };
        let staged_path = dir.join("staged.json");
        if staged_path.exists() {
            let bytes = fs::read(&staged_path).map_err(|e| Error::io(&staged_path, e))?;
            let staged: Staged = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Repository(format!("{}: {e}", staged_path.display())))?;
            for (role, t) in staged.targets {
                repo.dirty.insert(role.clone());
                repo.targets.insert(role, t);
            }
            repo.delegators.extend(staged.delegators);
        }
        Ok(repo)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join("metadata")
    }
    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join("targets")
    }
    pub fn root(&self) -> &Root {
        &self.root
    }
    pub fn timestamp(&self) -> &Timestamp {
        &self.timestamp
    }
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
    pub fn targets(&self, role: &str) -> Option<&Targets> {
        self.targets.get(role)
    }
    pub fn expiry_mut(&mut self) -> &mut Expiry {
        &mut self.settings.expiry
    }
    /// Roles with changes not yet published.
    pub fn staged(&self) -> Vec<String> {
        let mut v: Vec<String> = self.dirty.iter().cloned().collect();
        if self.root_dirty {
            v.insert(0, "root".into());
        }
        v
    }

    fn new_keys(&mut self, n: usize) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for _ in 0..n {
            let key = PrivateKey::generate(self.settings.key_kind)?;
            let id = key.key_id()?;
            write_private_key(&self.dir.join("keys").join(format!("{id}.json")), &key)?;
            self.keys.insert(id.clone(), key);
            ids.push(id);
        }
        Ok(ids)
    }

    fn root_role_keys(&self) -> (Vec<String>, u64) {
        self.root
            .roles
            .get("root")
            .map(|r| (r.keyids.clone(), r.threshold))
            .unwrap_or_default()
    }

    /// Private keys available for a role (top-level or delegated).
    pub fn signing_keys(&self, role: &str) -> Result<Vec<&PrivateKey>> {
        let (ids, threshold) = self.role_keyids(role)?;
        let keys: Vec<&PrivateKey> = ids.iter().filter_map(|id| self.keys.get(id)).collect();
        if (keys.len() as u64) < threshold {
            return Err(Error::Repository(format!(
                "role {role}: only {} of the threshold {threshold} private keys are in {}",
                keys.len(),
                self.dir.join("keys").display()
            )));
        }
        Ok(keys)
    }

    /// Key ids and threshold of a role, from root or from the delegating role.
    pub fn role_keyids(&self, role: &str) -> Result<(Vec<String>, u64)> {
        if let Some(r) = self.root.roles.get(role) {
            return Ok((r.keyids.clone(), r.threshold));
        }
        let parent = self
            .delegators
            .get(role)
            .and_then(|p| self.targets.get(p))
            .ok_or_else(|| Error::Repository(format!("unknown role {role:?}")))?;
        crate::trusted::delegated_keys(parent, role)
            .map(|(ids, t, _)| (ids, t))
            .ok_or_else(|| Error::Repository(format!("unknown role {role:?}")))
    }

    /// Sign a signed object with the given keys and serialize the metadata file. A key given
    /// twice signs once: "The keyid MUST be unique in the "signatures" array: multiple
    /// signatures with the same keyid are not allowed."
    pub fn sign_with(keys: &[&PrivateKey], signed: &Value) -> Result<Vec<u8>> {
        let mut sigs: Vec<Signature> = Vec::with_capacity(keys.len());
        let mut ids = BTreeSet::new();
        for key in keys {
            if ids.insert(key.key_id()?) {
                sigs.push(key.sign_value(signed)?);
            }
        }
        Ok(envelope_bytes(signed, &sigs))
    }

    /// Sign a signed object with every available key of `role`.
    pub fn sign_role(&self, role: &str, signed: &Value) -> Result<Vec<u8>> {
        Self::sign_with(&self.signing_keys(role)?, signed)
    }

    fn write_meta(&self, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.metadata_dir().join(name), bytes)
    }

    /// Persist staged (unpublished) changes to `staged.json`, so that a later `open` sees them.
    /// Mutations change only the in-memory state until this or [`Repository::publish`] runs.
    pub fn save(&self) -> Result<()> {
        self.save_staged()
    }

    fn save_staged(&self) -> Result<()> {
        let staged = Staged {
            targets: self
                .dirty
                .iter()
                .filter_map(|r| self.targets.get(r).map(|t| (r.clone(), t.clone())))
                .collect(),
            delegators: self.delegators.clone(),
        };
        let path = self.dir.join("staged.json");
        if staged.targets.is_empty() {
            return crate::fsutil::remove_if_exists(&path);
        }
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(&staged).map_err(|e| Error::Repository(e.to_string()))?,
        )
    }

    /// Add a target file to a targets role (staged until [`Repository::publish`]). The file is
    /// copied into `targets/` under its hash-prefixed name.
    pub fn add_target(
        &mut self,
        role: &str,
        target_path: &str,
        file: &Path,
        custom: Option<Value>,
    ) -> Result<TargetFile> {
        let bytes = fs::read(file).map_err(|e| Error::io(file, e))?;
        self.add_target_bytes(role, target_path, &bytes, custom)
    }

    /// As [`Repository::add_target`] with the content in memory.
    pub fn add_target_bytes(
        &mut self,
        role: &str,
        target_path: &str,
        bytes: &[u8],
        custom: Option<Value>,
    ) -> Result<TargetFile> {
        check_storable_path(target_path)?;
        if !self.targets.contains_key(role) {
            return Err(Error::Repository(format!("unknown targets role {role:?}")));
        }
        let hash = sha256_hex(bytes);
        let (dir, name) = match target_path.rsplit_once('/') {
            Some((d, n)) => (self.targets_dir().join(d), n),
            None => (self.targets_dir(), target_path),
        };
        write_atomic(&dir.join(format!("{hash}.{name}")), bytes)?;
        let tf = TargetFile {
            length: bytes.len() as u64,
            hashes: BTreeMap::from([("sha256".to_string(), hash)]),
            custom,
            unknown: Map::new(),
        };
        self.add_target_meta(role, target_path, tf.clone())?;
        Ok(tf)
    }

    /// Record target metadata without storing a file (for targets stored elsewhere).
    pub fn add_target_meta(&mut self, role: &str, target_path: &str, tf: TargetFile) -> Result<()> {
        let t = self
            .targets
            .get_mut(role)
            .ok_or_else(|| Error::Repository(format!("unknown targets role {role:?}")))?;
        t.targets
            .map_mut()
            .map_err(|e| Error::Repository(format!("{role}: {e}")))?
            .insert(target_path.to_string(), tf);
        self.dirty.insert(role.to_string());
        Ok(())
    }

    /// Remove a target from whichever role lists it (staged). The file stays in `targets/` so that
    /// clients still on an older snapshot can finish downloading it.
    pub fn remove_target(&mut self, target_path: &str) -> Result<String> {
        let role = self
            .targets
            .iter()
            .find(|(_, t)| t.targets.get(target_path).ok().flatten().is_some())
            .map(|(r, _)| r.clone())
            .ok_or_else(|| Error::Repository(format!("no role lists target {target_path:?}")))?;
        if let Some(t) = self.targets.get_mut(&role) {
            if let Ok(m) = t.targets.map_mut() {
                m.remove(target_path);
            }
        }
        self.dirty.insert(role.clone());
        Ok(role)
    }

    /// Every target path with its length and sha256, across all roles.
    pub fn list_targets(&self) -> Vec<(String, String, &TargetFile)> {
        let mut v = Vec::new();
        for (role, t) in &self.targets {
            for (path, tf) in t.targets.map().into_iter().flatten() {
                v.push((path.clone(), role.clone(), tf));
            }
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Delegate `paths` (or `path_hash_prefixes`) from `parent` to a new role `name` with `nkeys`
    /// new keys and `threshold` (staged).
    #[allow(clippy::too_many_arguments)]
    pub fn add_delegation(
        &mut self,
        parent: &str,
        name: &str,
        paths: Option<Vec<String>>,
        path_hash_prefixes: Option<Vec<String>>,
        terminating: bool,
        nkeys: usize,
        threshold: u64,
    ) -> Result<()> {
        check_storable_path(&format!("1.{name}.json"))?;
        if TOP_LEVEL_ROLES.contains(&name) || self.targets.contains_key(name) {
            return Err(Error::Repository(format!("role {name:?} already exists")));
        }
        if !self.targets.contains_key(parent) {
            return Err(Error::Repository(format!(
                "unknown delegating role {parent:?}"
            )));
        }
        if threshold < 1 || threshold as usize > nkeys {
            return Err(Error::Repository(format!(
                "threshold {threshold} must be between 1 and the number of keys ({nkeys})"
            )));
        }
        let ids = self.new_keys(nkeys)?;
        let publics: Vec<(String, Key)> = ids
            .iter()
            .map(|id| (id.clone(), self.keys[id].public.clone()))
            .collect();
        let p = self
            .targets
            .get_mut(parent)
            .ok_or_else(|| Error::Repository("unreachable".into()))?;
        let d = p.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Some(Vec::new()),
            succinct_roles: None,
            unknown: Map::new(),
        });
        let roles = d.roles.as_mut().ok_or_else(|| {
            Error::Repository(format!(
                "{parent} uses succinct hash bins; cannot add named roles"
            ))
        })?;
        roles.push(DelegatedRole {
            name: name.to_string(),
            keyids: ids,
            threshold,
            terminating,
            paths,
            path_hash_prefixes,
            unknown: Map::new(),
        });
        d.keys.extend(publics);
        self.delegators.insert(name.to_string(), parent.to_string());
        self.targets.insert(name.to_string(), new_targets());
        self.dirty.insert(parent.to_string());
        self.dirty.insert(name.to_string());
        Ok(())
    }

    /// Delegate all targets of `parent` to 2^bit_length succinct hash bins (TAP 15) sharing
    /// `nkeys` new keys (staged). Returns the bin names.
    pub fn add_succinct_delegation(
        &mut self,
        parent: &str,
        bit_length: u32,
        name_prefix: &str,
        nkeys: usize,
    ) -> Result<Vec<String>> {
        if !(1..=16).contains(&bit_length) {
            return Err(Error::Repository(
                "bit_length must be 1..=16 for the engine".into(),
            ));
        }
        let ids = self.new_keys(nkeys)?;
        let publics: BTreeMap<String, Key> = ids
            .iter()
            .map(|id| (id.clone(), self.keys[id].public.clone()))
            .collect();
        let s = SuccinctRoles {
            keyids: ids,
            threshold: 1,
            bit_length,
            name_prefix: name_prefix.to_string(),
            unknown: Map::new(),
        };
        let bins: Vec<String> = (0..(1u32 << bit_length))
            .map(|b| succinct_bin_name(&s, b))
            .collect();
        let p = self
            .targets
            .get_mut(parent)
            .ok_or_else(|| Error::Repository(format!("unknown delegating role {parent:?}")))?;
        if p.delegations.is_some() {
            return Err(Error::Repository(format!("{parent} already delegates")));
        }
        p.delegations = Some(Delegations {
            keys: publics,
            roles: None,
            succinct_roles: Some(s),
            unknown: Map::new(),
        });
        for b in &bins {
            self.delegators.insert(b.clone(), parent.to_string());
            self.targets.insert(b.clone(), new_targets());
            self.dirty.insert(b.clone());
        }
        self.dirty.insert(parent.to_string());
        Ok(bins)
    }

    /// Replace the keys of `role` with exactly `nkeys` new keys and threshold `threshold`, then
    /// publish. The caller states both counts, so this may lower the threshold; code that takes
    /// counts from a user should use [`Repository::rotate_with`], which keeps what is not given
    /// and refuses to lower a threshold unless told to.
    pub fn rotate(&mut self, role: &str, nkeys: usize, threshold: u64) -> Result<Vec<String>> {
        let opts = RotateOptions {
            keys: Some(nkeys),
            threshold: Some(threshold),
            allow_lower_threshold: true,
        };
        Ok(self.rotate_with(role, &opts)?.new_keyids)
    }

    /// Replace the keys of `role` with new keys and publish: a new root (signed by the old and
    /// the new root keys) for top-level roles, re-signed metadata for the rotated role, snapshot
    /// and timestamp.
    ///
    /// The number of keys and the threshold default to the role's current ones. A threshold
    /// below the current one is refused unless `allow_lower_threshold` is set; a threshold of 0 or
    /// above the number of keys is always refused. Nothing is changed when the rotation is
    /// refused.
    pub fn rotate_with(&mut self, role: &str, opts: &RotateOptions) -> Result<Rotation> {
        let (current_ids, previous_threshold) = self.role_keyids(role)?;
        let previous_keys = current_ids.len();
        let nkeys = opts.keys.unwrap_or(previous_keys);
        let threshold = opts.threshold.unwrap_or(previous_threshold);
        if threshold < 1 || usize::try_from(threshold).map_or(true, |t| t > nkeys) {
            return Err(Error::ThresholdAboveKeys {
                role: role.to_string(),
                threshold,
                keys: nkeys,
            });
        }
        if threshold < previous_threshold && !opts.allow_lower_threshold {
            return Err(Error::ThresholdLowered {
                role: role.to_string(),
                from: previous_threshold,
                to: threshold,
            });
        }
        let new_ids = self.rotate_keys(role, nkeys, threshold)?;
        Ok(Rotation {
            new_keyids: new_ids,
            previous_keys,
            previous_threshold,
            threshold,
        })
    }

    fn rotate_keys(&mut self, role: &str, nkeys: usize, threshold: u64) -> Result<Vec<String>> {
        let new_ids = self.new_keys(nkeys)?;
        let old_ids: Vec<String>;
        if TOP_LEVEL_ROLES.contains(&role) {
            let r = self
                .root
                .roles
                .get_mut(role)
                .ok_or_else(|| Error::Repository(format!("root lacks role {role}")))?;
            old_ids = std::mem::replace(&mut r.keyids, new_ids.clone());
            r.threshold = threshold;
            for id in &new_ids {
                self.root
                    .keys
                    .insert(id.clone(), self.keys[id].public.clone());
            }
            let in_use: BTreeSet<String> = self
                .root
                .roles
                .values()
                .flat_map(|r| r.keyids.clone())
                .collect();
            self.root.keys.retain(|id, _| in_use.contains(id));
            self.root_dirty = true;
            if role == "targets" {
                self.dirty.insert("targets".into());
            }
        } else {
            let parent = self
                .delegators
                .get(role)
                .cloned()
                .ok_or_else(|| Error::Repository(format!("unknown role {role:?}")))?;
            let publics: Vec<(String, Key)> = new_ids
                .iter()
                .map(|id| (id.clone(), self.keys[id].public.clone()))
                .collect();
            let d = self
                .targets
                .get_mut(&parent)
                .and_then(|t| t.delegations.as_mut())
                .ok_or_else(|| Error::Repository(format!("{parent} has no delegations")))?;
            let r = d
                .roles
                .as_mut()
                .and_then(|rs| rs.iter_mut().find(|r| r.name == role))
                .ok_or_else(|| {
                    Error::Repository(format!(
                        "rotating keys of succinct bins is not supported ({role})"
                    ))
                })?;
            old_ids = std::mem::replace(&mut r.keyids, new_ids.clone());
            r.threshold = threshold;
            d.keys.extend(publics);
            let in_use: BTreeSet<String> = d
                .roles
                .iter()
                .flatten()
                .flat_map(|r| r.keyids.clone())
                .collect();
            d.keys.retain(|id, _| in_use.contains(id));
            self.dirty.insert(parent);
            self.dirty.insert(role.to_string());
        }
        self.publish()?;
        // Retire keys no longer used by any role (they were needed to sign the new root).
        for id in old_ids {
            if self.role_uses_key(&id) {
                continue;
            }
            if let Some(key) = self.keys.remove(&id) {
                let from = self.dir.join("keys").join(format!("{id}.json"));
                write_private_key(
                    &self.dir.join("keys/retired").join(format!("{id}.json")),
                    &key,
                )?;
                crate::fsutil::remove_if_exists(&from)?;
            }
        }
        Ok(new_ids)
    }

    fn role_uses_key(&self, id: &str) -> bool {
        self.root.keys.contains_key(id)
            || self
                .targets
                .values()
                .filter_map(|t| t.delegations.as_ref())
                .any(|d| d.keys.contains_key(id))
    }

    fn bump_root(&mut self) -> Result<()> {
        self.root.version += 1;
        self.root.expires = expires_in(self.settings.expiry.root_days);
        let signed = to_value(&self.root)?;
        // A new root is signed by a threshold of the previous root's keys and of its own.
        let mut ids: Vec<String> = self.published_root_keys.0.clone();
        for id in self.root_role_keys().0 {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let keys: Vec<&PrivateKey> = ids.iter().filter_map(|id| self.keys.get(id)).collect();
        let bytes = Self::sign_with(&keys, &signed)?;
        let v = self.root.version;
        self.write_meta(&format!("{v}.root.json"), &bytes)?;
        self.write_meta("root.json", &bytes)?;
        self.published_root_keys = self.root_role_keys();
        self.root_dirty = false;
        Ok(())
    }

    fn meta_file(bytes: &[u8], version: u64) -> MetaFile {
        MetaFile {
            version,
            length: Some(bytes.len() as u64),
            hashes: Some(BTreeMap::from([("sha256".to_string(), sha256_hex(bytes))])),
            unknown: Map::new(),
        }
    }

    /// Sign and write new versions of every changed role, then a new snapshot and timestamp.
    pub fn publish(&mut self) -> Result<()> {
        if self.root_dirty {
            self.bump_root()?;
        }
        let consistent = self.root.consistent_snapshot.unwrap_or(false);
        let dirty: Vec<String> = self.dirty.iter().cloned().collect();
        for role in &dirty {
            let days = self.settings.expiry.targets_days;
            let t = self
                .targets
                .get_mut(role)
                .ok_or_else(|| Error::Repository(format!("unknown role {role}")))?;
            t.version += 1;
            t.expires = expires_in(days);
            let signed = to_value(&*t)?;
            let version = t.version;
            let bytes = self.sign_role(role, &signed)?;
            // Served under the name clients request (after URL decoding); the engine's own copy
            // of the newest version uses a safe file name.
            let served = if consistent {
                format!("{version}.{role}.json")
            } else {
                format!("{role}.json")
            };
            check_storable_path(&served)?;
            self.write_meta(&served, &bytes)?;
            self.write_meta(&format!("{}.json", safe_file_name(role)), &bytes)?;
            self.snapshot
                .meta
                .insert(format!("{role}.json"), Self::meta_file(&bytes, version));
        }
        self.dirty.clear();
        self.publish_snapshot()?;
        self.save_staged()
    }

    fn publish_snapshot(&mut self) -> Result<()> {
        self.snapshot.version += 1;
        self.snapshot.expires = expires_in(self.settings.expiry.snapshot_days);
        let signed = to_value(&self.snapshot)?;
        let bytes = self.sign_role("snapshot", &signed)?;
        if self.root.consistent_snapshot.unwrap_or(false) {
            self.write_meta(&format!("{}.snapshot.json", self.snapshot.version), &bytes)?;
        }
        self.write_meta("snapshot.json", &bytes)?;
        self.timestamp.meta.insert(
            "snapshot.json".into(),
            Self::meta_file(&bytes, self.snapshot.version),
        );
        self.refresh_timestamp()
    }

    /// Sign a new timestamp version (same snapshot, new expiry), e.g. from a timer.
    pub fn refresh_timestamp(&mut self) -> Result<()> {
        self.timestamp.version += 1;
        self.timestamp.expires = expires_in(self.settings.expiry.timestamp_days);
        let signed = to_value(&self.timestamp)?;
        let bytes = self.sign_role("timestamp", &signed)?;
        self.write_meta("timestamp.json", &bytes)
    }

    /// A summary of roles, keys and targets.
    pub fn status(&self) -> Status {
        let mut roles = Vec::new();
        let mut push = |role: &str, version: u64, expires: &str| {
            let (keyids, threshold) = self.role_keyids(role).unwrap_or_default();
            roles.push(RoleStatus {
                role: role.to_string(),
                version,
                expires: expires.to_string(),
                threshold,
                keyids,
            });
        };
        push("root", self.root.version, &self.root.expires);
        push("timestamp", self.timestamp.version, &self.timestamp.expires);
        push("snapshot", self.snapshot.version, &self.snapshot.expires);
        for (role, t) in &self.targets {
            push(role, t.version, &t.expires);
        }
        Status {
            roles,
            targets: self
                .list_targets()
                .into_iter()
                .map(|(p, r, tf)| (p, tf.length, r))
                .collect(),
            staged: self.staged(),
        }
    }
}
