//! The repository's private keys and signing: new keys, the keys and threshold of each role,
//! signing metadata with them.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::Repository;
use crate::crypto::PrivateKey;
use crate::error::{Error, Result};
use crate::metadata::{envelope_bytes, Signature};

pub(super) fn write_private_key(path: &Path, key: &PrivateKey) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(key).map_err(|e| Error::Repository(e.to_string()))?;
    crate::fsutil::write_atomic_private(path, &bytes)
}

impl Repository {
    pub(super) fn new_keys(&mut self, n: usize) -> Result<Vec<String>> {
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

    pub(super) fn root_role_keys(&self) -> (Vec<String>, u64) {
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
}
