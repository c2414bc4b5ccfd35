//! Finding targets: the pre-order depth-first delegation search of 5.6.7 and the one listing
//! built from it, so that every consumer sees, for each path, exactly the lookup's answer.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::Updater;
use crate::delegation::roles_for_target;
use crate::error::{Error, Result};
use crate::fetch::Fetcher;
use crate::trusted::TrustedSet;

/// A target as described by verified targets metadata. Only the updater creates these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInfo {
    pub(super) path: String,
    pub(super) length: u64,
    pub(super) hashes: BTreeMap<String, String>,
    pub(super) custom: Option<Value>,
    pub(super) role: String,
}

impl TargetInfo {
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn length(&self) -> u64 {
        self.length
    }
    pub fn hashes(&self) -> &BTreeMap<String, String> {
        &self.hashes
    }
    pub fn custom(&self) -> Option<&Value> {
        self.custom.as_ref()
    }
    /// The targets role that signed this target.
    pub fn role(&self) -> &str {
        &self.role
    }
    /// Hex SHA-256 if listed.
    pub fn sha256(&self) -> Option<&str> {
        self.hashes.get("sha256").map(String::as_str)
    }

    /// The hash used in consistent-snapshot file names: SHA-256 if listed, else the first.
    pub fn name_hash(&self) -> Option<&str> {
        self.sha256()
            .or_else(|| self.hashes.values().next().map(String::as_str))
    }

    /// The path of the target file under the targets base: `dir/HASH.name` with consistent
    /// snapshots (5.7.3), else the target path itself. Not URL-encoded.
    pub fn file_name(&self, consistent: bool) -> String {
        match (consistent, self.name_hash()) {
            (true, Some(hash)) => match self.path.rsplit_once('/') {
                Some((dir, file)) => format!("{dir}/{hash}.{file}"),
                None => format!("{hash}.{}", self.path),
            },
            _ => self.path.clone(),
        }
    }
}

/// Every role a targets role delegates to, in order: named roles, or the TAP 15 bins that the
/// trusted snapshot lists (no other bin can be loaded, so a delegator's `bit_length` cannot make
/// a client enumerate billions of names).
fn child_roles(d: Option<&crate::metadata::Delegations>, set: &TrustedSet) -> Vec<String> {
    let Some(d) = d else {
        return Vec::new();
    };
    let mut children: Vec<String> = d.roles.iter().flatten().map(|r| r.name.clone()).collect();
    if let (Some(s), Some(snapshot)) = (&d.succinct_roles, set.snapshot()) {
        // Bin names have a fixed-width hex suffix: name order is bin order.
        children.extend(
            snapshot
                .meta
                .keys()
                .filter_map(|name| name.strip_suffix(".json"))
                .filter(|role| crate::delegation::succinct_is_bin(s, role))
                .map(str::to_string),
        );
    }
    children
}

/// At most this many problems of one listing are logged one by one (the rest are counted).
const LOGGED: usize = 20;

/// Listed paths with the roles listing each, and the subtrees cut short.
type Listed = (BTreeMap<String, Vec<String>>, Vec<String>);

/// A role to visit in the listing walk, through `parent`, below the top-level delegation `top`
/// (empty for the top-level targets role).
struct Visit {
    role: String,
    parent: String,
    top: String,
}

/// The state of one listing walk.
#[derive(Default)]
struct Walk {
    listed: BTreeMap<String, Vec<String>>,
    tried: HashSet<(String, String)>,
    expanded: HashSet<String>,
    per_top: BTreeMap<String, usize>,
    truncated: Vec<String>,
    untrusted: usize,
}

impl Walk {
    fn untrusted(&mut self, v: &Visit, e: &Error) {
        self.untrusted += 1;
        if self.untrusted <= LOGGED {
            tracing::warn!(role = v.role, delegator = v.parent, error = %e, "delegated role not trusted through this delegation");
        }
    }

    /// Whether to list `v.role` and visit its children: once per role, at most `max_roles` per
    /// top-level delegation.
    fn expand(&mut self, v: &Visit, max_roles: usize) -> bool {
        if self.expanded.contains(&v.role) {
            return false;
        }
        let n = self.per_top.entry(v.top.clone()).or_default();
        if *n >= max_roles {
            if !self.truncated.contains(&v.top) {
                tracing::warn!(delegation = v.top, max_roles, "more targets roles below this delegation than the listing loads: the rest are not listed");
                self.truncated.push(v.top.clone());
            }
            return false;
        }
        *n += 1;
        self.expanded.insert(v.role.clone());
        true
    }

    fn finish(self) -> Result<Listed> {
        if self.untrusted > LOGGED {
            tracing::warn!(
                count = self.untrusted,
                "delegations not trusted in this listing (first {LOGGED} logged)"
            );
        }
        Ok((self.listed, self.truncated))
    }
}

/// The targets a client may act on: for every path some reachable targets role lists, exactly
/// the answer of a lookup of that path (5.6.7); nothing else. Built only by
/// [`Updater::all_targets`].
#[derive(Debug, Clone, Default)]
pub struct TargetListing {
    /// Authorised targets, one per path, in path order.
    pub targets: Vec<TargetInfo>,
    /// Paths listed by some role that the delegation search does not authorise.
    pub refused: Vec<RefusedTarget>,
    /// Top-level delegations whose subtree holds more than `max_roles` roles: roles beyond the
    /// cap were not listed (their targets are missing here; lookups still find them).
    pub truncated: Vec<String>,
}

/// A path listed by targets metadata that a lookup does not authorise (outside the scope of the
/// role that lists it, shadowed by a terminating delegation, or a role that failed verification
/// through the delegation that leads to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedTarget {
    pub path: String,
    /// The roles whose metadata lists the path.
    pub listed_by: Vec<String>,
    pub reason: String,
}

impl<F: Fetcher> Updater<F> {
    /// 5.6.7 "Perform a pre-order depth-first search for metadata about the desired target."
    /// Returns `None` when no trusted role lists the target.
    pub fn target_info(&mut self, target_path: &str) -> Result<Option<TargetInfo>> {
        let mut set = self.trusted.take().ok_or_else(|| Error::Order {
            role: "targets".into(),
            reason: "refresh() must succeed before looking up targets".into(),
        })?;
        let result = self.search(&mut set, target_path);
        self.trusted = Some(set);
        result
    }

    fn search(&mut self, set: &mut TrustedSet, target_path: &str) -> Result<Option<TargetInfo>> {
        if set.targets("targets").is_none() {
            return Err(Error::Order {
                role: "targets".into(),
                reason: "refresh() must succeed before looking up targets".into(),
            });
        }
        // 5.6.7.1 "If this role has been visited before, then skip this role (so that cycles in
        // the delegation graph are avoided). Otherwise, if an application-specific maximum number
        // of roles have been visited, then go to step 5.7 (so that attackers cannot cause the
        // client to waste excessive bandwidth or time)."
        let mut to_visit: Vec<(String, String)> = vec![("targets".into(), "root".into())];
        let mut visited: HashSet<String> = HashSet::new();
        let mut budget = self.config.max_delegations;
        while budget > 0 {
            let Some((role, parent)) = to_visit.pop() else {
                break;
            };
            if visited.contains(&role) {
                continue;
            }
            // 5.6.7.2 "Otherwise, if this role contains metadata about the desired target, then
            // go to step 5.7." (the role is loaded and verified like targets in 5.6 first)
            self.load_targets(set, &role, &parent)?;
            let targets = set
                .targets_via(&role, &parent)
                .ok_or_else(|| Error::Repository("unreachable".into()))?
                .clone();
            let entry = targets
                .targets
                .get(target_path)
                .map_err(|e| Error::malformed(&role, e))?;
            if let Some(t) = entry {
                return Ok(Some(TargetInfo {
                    path: target_path.to_string(),
                    length: t.length,
                    hashes: t.hashes.clone(),
                    custom: t.custom.clone(),
                    role,
                }));
            }
            visited.insert(role.clone());
            budget -= 1;
            // 5.6.7.3 "Otherwise, recursively search the list of delegations in order of
            // appearance.
            // 5.6.7.3.1 If the current delegation is a multi-role delegation, recursively visit
            // each role, and check that each has signed exactly the same non-custom metadata ...
            // 5.6.7.3.2 If the current delegation is a terminating delegation, then jump to step
            // 5.7.
            // 5.6.7.3.3 Otherwise, if the current delegation is a non-terminating delegation,
            // continue processing the next delegation, if any. Stop the search, and jump to step
            // 5.7 as soon as a delegation returns a result."
            if let Some(d) = &targets.delegations {
                let mut children = Vec::new();
                for (child, terminating) in roles_for_target(d, target_path) {
                    children.push((child, role.clone()));
                    if terminating {
                        to_visit.clear();
                        break;
                    }
                }
                children.reverse();
                to_visit.extend(children);
            }
        }
        if !to_visit.is_empty() {
            tracing::warn!(
                target_path,
                max = self.config.max_delegations,
                "stopped searching: too many delegated roles visited"
            );
        }
        Ok(None)
    }

    /// Every target the client may act on: for each path that some reachable targets role lists,
    /// the entry a lookup of that path returns ([`Updater::target_info`], 5.6.7: pre-order search,
    /// path patterns along the whole delegation chain, terminating roles, first match wins), and
    /// nothing else. This is the only listing the crate offers. Paths listed but not authorised
    /// are returned in [`TargetListing::refused`]. At most `max_roles` targets roles are loaded
    /// below each top-level delegation ([`TargetListing::truncated`] names those cut short).
    pub fn all_targets(&mut self, max_roles: usize) -> Result<TargetListing> {
        let mut set = self.trusted.take().ok_or_else(|| Error::Order {
            role: "targets".into(),
            reason: "refresh() must succeed before listing targets".into(),
        })?;
        let result = self
            .listed_paths(&mut set, max_roles)
            .and_then(|(listed, truncated)| {
                let mut listing = self.authorise(&mut set, listed)?;
                listing.truncated = truncated;
                Ok(listing)
            });
        self.trusted = Some(set);
        result
    }

    /// Load every targets role reachable from the top-level targets role (through every
    /// delegation that leads to it, so that the search below never fetches) and collect the
    /// paths each lists, with the roles listing them. Verification failures are remembered per
    /// delegation and surface in the search of the paths they affect; fetch failures abort.
    ///
    /// Each (role, delegator) pair is tried once. A delegation to a role the trusted snapshot
    /// does not list fails before any I/O, and only snapshot-listed roles can load, so what a
    /// delegated publisher writes in its own delegations cannot make this loop fetch, verify
    /// or expand more than the snapshot allows, and one such role failing never fails the
    /// listing. Each top-level delegation's subtree expands at most `max_roles` roles, so a
    /// delegate whose sub-roles the repository publishes cannot crowd out the others; the
    /// subtrees cut short are returned.
    fn listed_paths(&mut self, set: &mut TrustedSet, max_roles: usize) -> Result<Listed> {
        let mut walk = Walk::default();
        let mut to_visit = vec![Visit {
            role: "targets".into(),
            parent: "root".into(),
            top: String::new(),
        }];
        while let Some(v) = to_visit.pop() {
            if !walk.tried.insert((v.role.clone(), v.parent.clone())) {
                continue;
            }
            match self.load_targets(set, &v.role, &v.parent) {
                Ok(()) => {}
                Err(e @ Error::Fetch(_)) => return Err(e),
                Err(e) => {
                    walk.untrusted(&v, &e);
                    continue;
                }
            }
            if !walk.expand(&v, max_roles) {
                continue;
            }
            let targets = set
                .targets_via(&v.role, &v.parent)
                .ok_or_else(|| Error::Repository("unreachable".into()))?
                .clone();
            match targets.targets.map() {
                Ok(map) => {
                    for path in map.keys() {
                        let roles = walk.listed.entry(path.clone()).or_default();
                        roles.push(v.role.clone());
                    }
                }
                Err(e) => {
                    tracing::warn!(role = v.role, error = %e, "malformed targets: none of them used")
                }
            }
            let mut children = child_roles(targets.delegations.as_ref(), set);
            children.reverse();
            to_visit.extend(children.into_iter().map(|c| Visit {
                top: if v.top.is_empty() {
                    c.clone()
                } else {
                    v.top.clone()
                },
                role: c,
                parent: v.role.clone(),
            }));
        }
        walk.finish()
    }

    /// Look up every listed path; keep what the search authorises, report the rest.
    fn authorise(
        &mut self,
        set: &mut TrustedSet,
        listed: BTreeMap<String, Vec<String>>,
    ) -> Result<TargetListing> {
        let mut out = TargetListing::default();
        for (path, listed_by) in listed {
            let reason = match self.search(set, &path) {
                Ok(Some(info)) => {
                    out.targets.push(info);
                    continue;
                }
                Ok(None) => "outside the scope delegated to every role that lists it".to_string(),
                Err(e @ Error::Fetch(_)) => return Err(e),
                Err(e) => e.to_string(),
            };
            if out.refused.len() < LOGGED {
                tracing::warn!(path, roles = ?listed_by, reason, "target not authorised by the delegation search: ignored");
            }
            out.refused.push(RefusedTarget {
                path,
                listed_by,
                reason,
            });
        }
        if out.refused.len() > LOGGED {
            tracing::warn!(
                count = out.refused.len(),
                "targets not authorised by the delegation search (first {LOGGED} logged)"
            );
        }
        Ok(out)
    }
}
