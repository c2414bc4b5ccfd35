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
//!
//! Code map: this file holds the types and the state; [`Repository`]'s methods are split by job
//! into `open` (init, open, staged changes), `keys` (keys and signing), `targets`, `delegate`,
//! `publish` (new versions of root, targets roles, snapshot, timestamp) and `rotate`.

mod delegate;
mod keys;
mod open;
mod publish;
mod rotate;
mod targets;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::crypto::{KeyKind, PrivateKey};
use crate::error::{Error, Result};
use crate::metadata::{format_expires, Root, Snapshot, Targets, Timestamp};

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
