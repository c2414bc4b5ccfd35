//! Delegating from a targets role to named roles or to succinct hash bins (staged).

use std::collections::BTreeMap;

use serde_json::Map;

use super::{check_storable_path, new_targets, Repository};
use crate::delegation::succinct_bin_name;
use crate::error::{Error, Result};
use crate::metadata::{DelegatedRole, Delegations, Key, SuccinctRoles, TOP_LEVEL_ROLES};

impl Repository {
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
}
