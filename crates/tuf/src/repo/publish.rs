//! Signing and writing new versions: root, changed targets roles, snapshot and timestamp.

use std::collections::BTreeMap;

use serde_json::Map;

use super::{check_storable_path, expires_in, to_value, Repository};
use crate::crypto::{sha256_hex, PrivateKey};
use crate::error::{Error, Result};
use crate::fsutil::{safe_file_name, write_atomic};
use crate::metadata::MetaFile;

impl Repository {
    fn write_meta(&self, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.metadata_dir().join(name), bytes)
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
}
