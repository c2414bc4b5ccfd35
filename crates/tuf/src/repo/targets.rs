//! Adding, removing and listing targets (staged until the next publish).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::{Map, Value};

use super::{check_storable_path, Repository};
use crate::crypto::sha256_hex;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::metadata::TargetFile;

impl Repository {
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

    /// The bytes of a stored target, checked against the length and sha256 its role lists (a
    /// file changed on disk since it was added is an error, never used).
    pub fn read_target(&self, target_path: &str) -> Result<Vec<u8>> {
        let tf = self
            .targets
            .values()
            .find_map(|t| t.targets.get(target_path).ok().flatten())
            .ok_or_else(|| Error::Repository(format!("no role lists target {target_path:?}")))?;
        let hash = tf
            .hashes
            .get("sha256")
            .ok_or_else(|| Error::Repository(format!("target {target_path:?} lists no sha256")))?;
        let (dir, name) = match target_path.rsplit_once('/') {
            Some((d, n)) => (self.targets_dir().join(d), n),
            None => (self.targets_dir(), target_path),
        };
        let file = dir.join(format!("{hash}.{name}"));
        let bytes = fs::read(&file).map_err(|e| Error::io(&file, e))?;
        if bytes.len() as u64 != tf.length || sha256_hex(&bytes) != *hash {
            return Err(Error::Repository(format!(
                "{} does not match the length and sha256 listed for {target_path:?}; restore it or add the target again",
                file.display()
            )));
        }
        Ok(bytes)
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
}
