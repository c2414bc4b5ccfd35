//! Views: a complete, verified state of the repository that the relay serves. A view is written
//! as `views/<id>.json` only after every object it names is in the store; `current` names the
//! view in service and is replaced atomically, so clients never see a half-synced state.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{ObjectId, Store};

/// On-disk format version of view manifests.
pub const VIEW_FORMAT: u32 = 1;

/// Versions of the trusted metadata in a view.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Versions {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    /// Version of every targets role (top-level and delegated).
    pub targets: BTreeMap<String, u64>,
    /// Expiry of timestamp and snapshot.
    pub timestamp_expires: String,
    pub snapshot_expires: String,
}

/// A target file served under `path` (below `/targets/`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetEntry {
    pub object: ObjectId,
    pub length: u64,
}

/// The manifest of a view.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: u64,
    pub created: String,
    /// Where the view came from (an upstream URL or a bundle).
    pub source: String,
    pub versions: Versions,
    /// Served metadata file name (below `/metadata/`) → object.
    pub metadata: BTreeMap<String, ObjectId>,
    /// Served target path (below `/targets/`) → object.
    pub targets: BTreeMap<String, TargetEntry>,
    /// Warnings that apply to this view (e.g. metadata served under the offline grace).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Names served from the view before this one, for clients in the middle of a refresh that
    /// began on it (its versioned metadata and the targets this view no longer names): one
    /// generation only, so nothing is carried twice.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub carried: BTreeSet<String>,
}

impl Manifest {
    /// A view of these files and nothing else (id 1, no versions): for tests.
    #[cfg(test)]
    pub(crate) fn of(
        metadata: BTreeMap<String, ObjectId>,
        targets: BTreeMap<String, TargetEntry>,
    ) -> Manifest {
        Manifest {
            format: VIEW_FORMAT,
            id: 1,
            created: String::new(),
            source: String::new(),
            versions: Versions::default(),
            metadata,
            targets,
            warnings: Vec::new(),
            carried: BTreeSet::new(),
        }
    }

    /// Keep serving what `prev` served of its own and this view does not: its versioned
    /// metadata (`N.snapshot.json`, `N.ROLE.json`) and targets. A client that read `prev`'s
    /// timestamp a moment before this view went live still finds the files it names.
    pub fn carry_from(&mut self, prev: &Manifest) {
        for (name, id) in &prev.metadata {
            if is_versioned(name)
                && !prev.carried.contains(name)
                && !self.metadata.contains_key(name)
            {
                self.metadata.insert(name.clone(), id.clone());
                self.carried.insert(name.clone());
            }
        }
        for (name, entry) in &prev.targets {
            if !prev.carried.contains(name) && !self.targets.contains_key(name) {
                self.targets.insert(name.clone(), entry.clone());
                self.carried.insert(name.clone());
            }
        }
    }

    pub fn objects(&self) -> impl Iterator<Item = &ObjectId> {
        self.metadata
            .values()
            .chain(self.targets.values().map(|t| &t.object))
    }
}

/// One metadata file held in memory with its strong ETag.
#[derive(Debug, Clone)]
pub struct MetaEntry {
    pub bytes: Bytes,
    pub etag: String,
    /// Versioned (`N.role.json`) names never change and may be cached forever.
    pub immutable: bool,
}

/// A target file on disk; small ones are also held in memory.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub path: PathBuf,
    pub length: u64,
    pub etag: String,
    pub immutable: bool,
    pub memory: Option<Bytes>,
}

/// Targets up to this size are served from memory...
pub const SMALL_TARGET_MAX: u64 = 256 * 1024;
/// ...within this budget per view.
pub const SMALL_TARGETS_BUDGET: u64 = 64 << 20;

/// A view ready to serve: metadata in memory, targets by path.
#[derive(Debug)]
pub struct ServedView {
    pub manifest: Manifest,
    pub metadata: HashMap<String, MetaEntry>,
    pub targets: HashMap<String, FileEntry>,
}

fn is_versioned(name: &str) -> bool {
    name.split_once('.').is_some_and(|(v, rest)| {
        !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
    })
}

impl ServedView {
    /// Load a manifest's metadata into memory (checking each object's hash) and index its targets.
    pub fn load(manifest: Manifest, store: &Store) -> Result<Self> {
        let mut metadata = HashMap::with_capacity(manifest.metadata.len());
        for (name, id) in &manifest.metadata {
            let bytes = store.read_verified(id)?;
            metadata.insert(
                name.clone(),
                MetaEntry {
                    bytes: Bytes::from(bytes),
                    etag: format!("\"{}\"", id.hex),
                    immutable: is_versioned(name),
                },
            );
        }
        let mut targets = HashMap::with_capacity(manifest.targets.len());
        let mut in_memory: HashMap<&ObjectId, Bytes> = HashMap::new();
        let mut budget = SMALL_TARGETS_BUDGET;
        for (path, t) in &manifest.targets {
            let file = store.path(&t.object);
            if !file.is_file() {
                return Err(Error::Other(format!(
                    "view {} names {} but the object {} is missing",
                    manifest.id,
                    path,
                    file.display()
                )));
            }
            let file_name = path.rsplit('/').next().unwrap_or(path);
            let memory = match in_memory.get(&t.object) {
                Some(b) => Some(b.clone()),
                None if t.length <= SMALL_TARGET_MAX && t.length <= budget => {
                    let bytes = Bytes::from(store.read_verified(&t.object)?);
                    budget -= t.length;
                    in_memory.insert(&t.object, bytes.clone());
                    Some(bytes)
                }
                None => None,
            };
            targets.insert(
                path.clone(),
                FileEntry {
                    path: file,
                    length: t.length,
                    etag: format!("\"{}\"", t.object.hex),
                    immutable: file_name.starts_with(&t.object.hex),
                    memory,
                },
            );
        }
        Ok(ServedView {
            manifest,
            metadata,
            targets,
        })
    }
}

/// The views directory and the `current` pointer.
#[derive(Debug, Clone)]
pub struct Views {
    dir: PathBuf,
    current: PathBuf,
}

impl Views {
    pub fn open(cache: &Path) -> Result<Self> {
        let dir = cache.join("views");
        tuf::fsutil::create_dir_all(&dir)?;
        Ok(Views {
            current: cache.join("current"),
            dir,
        })
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:012}.json"))
    }

    /// Ids of the views on disk, ascending.
    pub fn ids(&self) -> Result<Vec<u64>> {
        let mut ids: Vec<u64> = fs::read_dir(&self.dir)
            .map_err(|e| Error::io(&self.dir, e))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    pub fn read(&self, id: u64) -> Result<Manifest> {
        let path = self.path(id);
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
        if m.format != VIEW_FORMAT || m.id != id {
            return Err(Error::Other(format!(
                "{}: unsupported view format or id",
                path.display()
            )));
        }
        Ok(m)
    }

    /// The view in service, if any.
    pub fn current(&self) -> Result<Option<Manifest>> {
        let text = match fs::read_to_string(&self.current) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&self.current, e)),
        };
        let id: u64 = text
            .trim()
            .parse()
            .map_err(|_| Error::Other(format!("{}: not a view id", self.current.display())))?;
        self.read(id).map(Some)
    }

    pub fn next_id(&self) -> Result<u64> {
        Ok(self.ids()?.last().copied().unwrap_or(0) + 1)
    }

    /// Write a manifest (all its objects must be stored) and make it the view in service.
    pub fn commit(&self, manifest: &Manifest) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Other(e.to_string()))?;
        tuf::fsutil::write_atomic(&self.path(manifest.id), &bytes)?;
        tuf::fsutil::write_atomic(&self.current, format!("{}\n", manifest.id).as_bytes())?;
        Ok(())
    }

    /// Keep the newest `keep` views (and the current one), delete older manifests, then delete
    /// objects no kept view references.
    pub fn collect_garbage(&self, store: &Store, keep: usize) -> Result<(u64, u64)> {
        let ids = self.ids()?;
        let current = self.current()?.map(|m| m.id);
        let cut = ids.len().saturating_sub(keep.max(1));
        let mut referenced = HashSet::new();
        for (i, id) in ids.iter().enumerate() {
            if i < cut && Some(*id) != current {
                let p = self.path(*id);
                fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                continue;
            }
            referenced.extend(self.read(*id)?.objects().cloned());
        }
        store.collect_garbage(&referenced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(metadata: &[&str], targets: &[&str]) -> Manifest {
        let id = |n: &str| crate::store::ObjectId {
            alg: "sha256".into(),
            hex: format!("{:0>64}", n.len()),
        };
        let entry = |n: &&str| {
            let e = TargetEntry {
                object: id(n),
                length: 1,
            };
            (n.to_string(), e)
        };
        Manifest::of(
            metadata.iter().map(|n| (n.to_string(), id(n))).collect(),
            targets.iter().map(entry).collect(),
        )
    }

    #[test]
    fn a_new_view_serves_the_previous_ones_versioned_files_for_one_generation() {
        let v1 = manifest(
            &["timestamp.json", "1.snapshot.json", "1.targets.json"],
            &["ab.a"],
        );
        let mut v2 = manifest(
            &["timestamp.json", "2.snapshot.json", "1.targets.json"],
            &["cd.b"],
        );
        v2.carry_from(&v1);
        // A client that read v1's timestamp finds 1.snapshot.json and the old target.
        assert!(v2.metadata.contains_key("1.snapshot.json") && v2.targets.contains_key("ab.a"));
        assert_eq!(
            v2.carried,
            ["1.snapshot.json", "ab.a"].map(String::from).into()
        );
        let mut v3 = manifest(
            &["timestamp.json", "3.snapshot.json", "1.targets.json"],
            &["cd.b"],
        );
        v3.carry_from(&v2);
        assert!(v3.metadata.contains_key("2.snapshot.json"), "v2's own");
        assert!(
            !v3.metadata.contains_key("1.snapshot.json"),
            "carried once only"
        );
        assert!(!v3.targets.contains_key("ab.a"));
    }

    #[test]
    fn versioned_names() {
        assert!(is_versioned("12.root.json"));
        assert!(is_versioned("3.a/b.json"));
        assert!(!is_versioned("timestamp.json"));
        assert!(!is_versioned("root.json"));
        assert!(!is_versioned(".json"));
    }
}
