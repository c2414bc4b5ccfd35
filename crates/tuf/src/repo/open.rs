//! Creating, opening and saving a repository: `init` makes keys and the first versions of
//! every role, `open` reloads the newest versions, keys and staged changes from disk.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Map;

use super::{expires_in, new_targets, Expiry, InitOptions, Repository, Settings, SPEC_VERSION};
use crate::crypto::{KeyKind, PrivateKey};
use crate::delegation::succinct_bin_name;
use crate::error::{Error, Result};
use crate::fsutil::{safe_file_name, write_atomic};
use crate::metadata::{Envelope, RoleKeys, Root, Snapshot, Targets, Timestamp, TOP_LEVEL_ROLES};

/// Roles changed since the last publish, persisted in `staged.json` so that `add` and `publish`
/// can be separate commands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Staged {
    #[serde(default)]
    targets: BTreeMap<String, Targets>,
    #[serde(default)]
    delegators: BTreeMap<String, String>,
}

fn read_signed<T: serde::de::DeserializeOwned + crate::metadata::Common>(
    path: &Path,
    role: &str,
) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    Envelope::parse(role, &bytes)?.typed::<T>(role)
}

/// Refuse to create a repository over an existing one or with an impossible threshold.
fn check_init(dir: &Path, opts: &InitOptions) -> Result<()> {
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
    Ok(())
}

/// Settings from `DIR/repository.json`; the defaults if it is missing or unreadable.
fn read_settings(dir: &Path) -> Settings {
    fs::read(dir.join("repository.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Settings {
            key_kind: KeyKind::Ed25519,
            expiry: Expiry::default(),
        })
}

/// The newest version of every targets role the snapshot lists, from `metadata/`.
fn read_targets(meta: &Path, snapshot: &Snapshot) -> Result<BTreeMap<String, Targets>> {
    let mut targets = BTreeMap::new();
    for name in snapshot.meta.keys() {
        let role = name.strip_suffix(".json").unwrap_or(name);
        let t: Targets = read_signed(&meta.join(format!("{}.json", safe_file_name(role))), role)?;
        targets.insert(role.to_string(), t);
    }
    Ok(targets)
}

/// Which role delegates each delegated role (named roles and succinct hash bins).
fn delegators_of(targets: &BTreeMap<String, Targets>) -> BTreeMap<String, String> {
    let mut delegators = BTreeMap::new();
    for (parent, t) in targets {
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
    delegators
}

/// Every private key in `key_dir/*.json` (not in `retired/`), by key id.
fn read_keys(key_dir: &Path) -> Result<BTreeMap<String, PrivateKey>> {
    let mut keys = BTreeMap::new();
    let entries = fs::read_dir(key_dir).map_err(|e| Error::io(key_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(key_dir, e))?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let key: PrivateKey = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Repository(format!("{}: {e}", path.display())))?;
        keys.insert(key.key_id()?, key);
    }
    Ok(keys)
}

impl Repository {
    /// Create a new repository in `dir`. Refuses if `dir` already holds one.
    pub fn init(dir: &Path, opts: &InitOptions) -> Result<Self> {
        check_init(dir, opts)?;
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
        let mut repo = Repository::empty(dir, settings, opts.consistent_snapshot);
        for role in TOP_LEVEL_ROLES {
            repo.init_role_keys(role, opts)?;
        }
        repo.published_root_keys = repo.root_role_keys();
        repo.publish()?;
        Ok(repo)
    }

    /// A repository with version 0 of every top-level role, no keys, and everything staged.
    fn empty(dir: &Path, settings: Settings, consistent_snapshot: bool) -> Self {
        Repository {
            dir: dir.to_path_buf(),
            settings,
            root: Root {
                type_: "root".into(),
                spec_version: SPEC_VERSION.into(),
                version: 0,
                expires: expires_in(0),
                consistent_snapshot: Some(consistent_snapshot),
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
        }
    }

    /// Create `opts.keys_per_role` keys for top-level `role` and list them in root.
    fn init_role_keys(&mut self, role: &str, opts: &InitOptions) -> Result<()> {
        let ids = self.new_keys(opts.keys_per_role)?;
        for id in &ids {
            let key = self.keys[id].public.clone();
            self.root.keys.insert(id.clone(), key);
        }
        self.root.roles.insert(
            role.to_string(),
            RoleKeys {
                keyids: ids,
                threshold: opts.threshold,
                unknown: Map::new(),
            },
        );
        Ok(())
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
        let settings = read_settings(dir);
        let root: Root = read_signed(&meta.join("root.json"), "root")?;
        let timestamp: Timestamp = read_signed(&meta.join("timestamp.json"), "timestamp")?;
        let snapshot: Snapshot = read_signed(&meta.join("snapshot.json"), "snapshot")?;
        let targets = read_targets(&meta, &snapshot)?;
        let delegators = delegators_of(&targets);
        let keys = read_keys(&dir.join("keys"))?;
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
        repo.load_staged()?;
        Ok(repo)
    }

    /// Apply the staged changes of `staged.json`, if any, on top of the published state.
    fn load_staged(&mut self) -> Result<()> {
        let staged_path = self.dir.join("staged.json");
        if staged_path.exists() {
            let bytes = fs::read(&staged_path).map_err(|e| Error::io(&staged_path, e))?;
            let staged: Staged = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Repository(format!("{}: {e}", staged_path.display())))?;
            for (role, t) in staged.targets {
                self.dirty.insert(role.clone());
                self.targets.insert(role, t);
            }
            self.delegators.extend(staged.delegators);
        }
        Ok(())
    }

    /// Persist staged (unpublished) changes to `staged.json`, so that a later `open` sees them.
    /// Mutations change only the in-memory state until this or [`Repository::publish`] runs.
    pub fn save(&self) -> Result<()> {
        self.save_staged()
    }

    pub(super) fn save_staged(&self) -> Result<()> {
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
}
