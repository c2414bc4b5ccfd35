//! Key rotation: replace a role's keys, publish, and retire the keys no role uses any more.

use std::collections::BTreeSet;

use super::keys::write_private_key;
use super::{Repository, RotateOptions, Rotation};
use crate::error::{Error, Result};
use crate::metadata::{Key, TOP_LEVEL_ROLES};

impl Repository {
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
        let old_ids = if TOP_LEVEL_ROLES.contains(&role) {
            self.replace_top_level_keys(role, &new_ids, threshold)?
        } else {
            self.replace_delegated_keys(role, &new_ids, threshold)?
        };
        self.publish()?;
        self.retire_keys(old_ids)?;
        Ok(new_ids)
    }

    /// List `new_ids` as the keys of top-level `role` in root (staged); returns the old key ids.
    fn replace_top_level_keys(
        &mut self,
        role: &str,
        new_ids: &[String],
        threshold: u64,
    ) -> Result<Vec<String>> {
        let r = self
            .root
            .roles
            .get_mut(role)
            .ok_or_else(|| Error::Repository(format!("root lacks role {role}")))?;
        let old_ids = std::mem::replace(&mut r.keyids, new_ids.to_vec());
        r.threshold = threshold;
        for id in new_ids {
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
        Ok(old_ids)
    }

    /// List `new_ids` as the keys of delegated `role` in its delegating role (staged); returns
    /// the old key ids.
    fn replace_delegated_keys(
        &mut self,
        role: &str,
        new_ids: &[String],
        threshold: u64,
    ) -> Result<Vec<String>> {
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
        let old_ids = std::mem::replace(&mut r.keyids, new_ids.to_vec());
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
        Ok(old_ids)
    }

    /// Move the keys of `old_ids` no role uses any more to `keys/retired/` (they were needed to
    /// sign the new root).
    fn retire_keys(&mut self, old_ids: Vec<String>) -> Result<()> {
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
        Ok(())
    }

    fn role_uses_key(&self, id: &str) -> bool {
        self.root.keys.contains_key(id)
            || self
                .targets
                .values()
                .filter_map(|t| t.delegations.as_ref())
                .any(|d| d.keys.contains_key(id))
    }
}
