//! Content-addressed object store: every verified file (targets and metadata) is kept once under
//! `objects/<algorithm>/<hash>`, shared by all views. An object appears under its final name only
//! after it was verified (targets by the TUF client, metadata by hashing the verified bytes).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The object store below `DIR/objects`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// The name of an object: hash algorithm and hex digest.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ObjectId {
    pub alg: String,
    pub hex: String,
}

impl ObjectId {
    pub fn sha256(hex: &str) -> Self {
        ObjectId {
            alg: "sha256".into(),
            hex: hex.to_string(),
        }
    }

    /// The object id for a target: its SHA-256, or another listed hash.
    pub fn for_target(info: &tuf::TargetInfo) -> Option<Self> {
        for alg in ["sha256", "sha512"] {
            if let Some(h) = info.hashes().get(alg) {
                if h.len() >= 2
                    && h.bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                {
                    return Some(ObjectId {
                        alg: alg.into(),
                        hex: h.clone(),
                    });
                }
            }
        }
        None
    }
}

impl Store {
    pub fn open(cache: &Path) -> Result<Self> {
        let root = cache.join("objects");
        for alg in ["sha256", "sha512"] {
            let d = root.join(alg);
            tuf::fsutil::create_dir_all(&d)?;
        }
        Ok(Store { root })
    }

    pub fn path(&self, id: &ObjectId) -> PathBuf {
        self.root.join(&id.alg).join(&id.hex)
    }

    pub fn contains(&self, id: &ObjectId) -> bool {
        self.path(id).is_file()
    }

    /// Store bytes that were verified by the caller (metadata), addressed by their SHA-256.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<ObjectId> {
        let id = ObjectId::sha256(&tuf::crypto::sha256_hex(bytes));
        let path = self.path(&id);
        if !path.is_file() {
            tuf::fsutil::write_atomic(&path, bytes).map_err(Error::Tuf)?;
        }
        Ok(id)
    }

    /// Read a stored object and check it still has its hash (metadata loaded into memory).
    pub fn read_verified(&self, id: &ObjectId) -> Result<Vec<u8>> {
        let path = self.path(id);
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let hashes = std::collections::BTreeMap::from([(id.alg.clone(), id.hex.clone())]);
        let mut v = tuf::crypto::StreamVerifier::new(&path.to_string_lossy(), &hashes)
            .map_err(Error::Tuf)?;
        v.update(&bytes);
        v.finish(None).map_err(Error::Tuf)?;
        Ok(bytes)
    }

    /// Delete every object not in `keep`, and leftovers of interrupted downloads.
    /// Returns (objects removed, bytes freed).
    pub fn collect_garbage(&self, keep: &HashSet<ObjectId>) -> Result<(u64, u64)> {
        let (mut n, mut bytes) = (0, 0);
        for alg in ["sha256", "sha512"] {
            let dir = self.root.join(alg);
            let entries = fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let id = ObjectId {
                    alg: alg.into(),
                    hex: name,
                };
                if keep.contains(&id) {
                    continue;
                }
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if fs::remove_file(entry.path()).is_ok() {
                    n += 1;
                    bytes += len;
                }
            }
        }
        Ok((n, bytes))
    }
}
