//! The set of trusted metadata and the pure verification steps of the TUF 1.0 client workflow
//! (specification section 5). Nothing here does I/O: the caller hands in bytes, this module says
//! whether they may be trusted. The only way to obtain a [`Verified`] value is through these steps.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use crate::crypto::{check_key_ids, verify_bytes, verify_threshold, SignedMessage};
use crate::error::{Error, Result};
use crate::metadata::{
    format_expires, parse_expires, Common, DelegatedRole, Envelope, Key, MetaFile, Root, Snapshot,
    Targets, Timestamp,
};

/// Metadata that passed every check of the client workflow for its role. Only this module can
/// construct it, so holding one proves the bytes were verified. `raw` are the exact bytes that
/// were verified (what gets persisted).
#[derive(Debug, Clone)]
pub struct Verified<T> {
    inner: Arc<T>,
    raw: Arc<[u8]>,
}

impl<T> Verified<T> {
    fn new(meta: T, raw: &[u8]) -> Self {
        Verified {
            inner: Arc::new(meta),
            raw: Arc::from(raw),
        }
    }
    /// The verified metadata.
    pub fn signed(&self) -> &T {
        &self.inner
    }
    /// The exact bytes that were verified.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

impl<T> std::ops::Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

/// Targets metadata loaded in a cycle and the delegating roles through which it was verified.
#[derive(Debug)]
struct LoadedTargets {
    meta: Verified<Targets>,
    via: Vec<String>,
}

/// Result of offering a new timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUpdate {
    /// A newer timestamp was verified and is now trusted.
    Updated,
    /// The repository's timestamp has the trusted version: nothing changed upstream.
    Unchanged,
}

/// Trusted metadata for one update cycle, in the order the specification loads it.
#[derive(Debug)]
pub struct TrustedSet {
    now: OffsetDateTime,
    root: Verified<Root>,
    timestamp: Option<Verified<Timestamp>>,
    /// The trusted snapshot; `snapshot_final` says whether it also passed the final checks
    /// (version matching the timestamp, not expired) and may be used to load targets.
    snapshot: Option<Verified<Snapshot>>,
    snapshot_final: bool,
    /// Targets roles loaded in this cycle, each with the delegating roles whose keys signed it.
    targets: BTreeMap<String, LoadedTargets>,
    /// Every root verified in this cycle, starting with the caller's trust anchor.
    root_chain: Vec<Verified<Root>>,
    /// Index in `root_chain` of the root that was trusted before this refresh began: the anchor,
    /// or the newest root an earlier refresh verified (see [`TrustedSet::resume_root`]).
    refresh_start: usize,
    /// How long past expiry a timestamp or snapshot is still accepted (an explicit offline policy
    /// for air-gapped sites; zero by default), and the warnings issued under it.
    expiry_grace: time::Duration,
    grace_warnings: std::sync::Mutex<Vec<String>>,
}

/// Files at least this large are hashed on a second thread while signatures are verified.
const PARALLEL_HASH_MIN: usize = 256 * 1024;

fn signed_typed<'a, T: Common + serde::de::DeserializeOwned>(
    role: &str,
    bytes: &'a [u8],
) -> Result<(Envelope<'a>, T)> {
    let env = Envelope::parse(role, bytes)?;
    let t = env.typed::<T>(role)?;
    Ok((env, t))
}

impl TrustedSet {
    /// 5.1 "Record the time at which the update began" — `now` is that fixed start time and is used
    /// for every expiry check of this cycle.
    /// 5.2 "Load the trusted root metadata file. We assume that a good, trusted copy of this file
    /// was shipped with the package manager or software updater using an out-of-band process."
    /// The root must be signed by a threshold of its own root keys.
    pub fn new(root_bytes: &[u8], now: OffsetDateTime) -> Result<Self> {
        let (env, root) = signed_typed::<Root>("root", root_bytes)?;
        check_key_ids("root", &root.keys)?;
        verify_by_root(&root, "root", &env)?;
        let root = Verified::new(root, root_bytes);
        Ok(TrustedSet {
            now,
            root_chain: vec![root.clone()],
            expiry_grace: time::Duration::ZERO,
            grace_warnings: std::sync::Mutex::new(Vec::new()),
            root,
            timestamp: None,
            snapshot: None,
            snapshot_final: false,
            targets: BTreeMap::new(),
            refresh_start: 0,
        })
    }

    pub fn now(&self) -> OffsetDateTime {
        self.now
    }
    pub fn root(&self) -> &Verified<Root> {
        &self.root
    }
    pub fn timestamp(&self) -> Option<&Verified<Timestamp>> {
        self.timestamp.as_ref()
    }
    /// The snapshot, only once it passed every check of 5.5.
    pub fn snapshot(&self) -> Option<&Verified<Snapshot>> {
        self.snapshot.as_ref().filter(|_| self.snapshot_final)
    }
    /// Verified top-level or delegated targets metadata by role name, whichever delegating role
    /// it was verified through. Its target entries are not readable outside this crate: targets
    /// are obtained only through the delegation search of [`crate::Updater`], which checks scope.
    pub fn targets(&self, role: &str) -> Option<&Verified<Targets>> {
        self.targets.get(role).map(|l| &l.meta)
    }

    /// Targets metadata for `role` only if it was verified with the keys `parent` delegates to
    /// it ("root" for the top-level targets role). A role reached through a delegating role
    /// whose keys did not sign it is not trusted on that path, even if another delegator's did.
    pub fn targets_via(&self, role: &str, parent: &str) -> Option<&Verified<Targets>> {
        self.targets
            .get(role)
            .filter(|l| l.via.iter().any(|p| p == parent))
            .map(|l| &l.meta)
    }

    /// 5.3.11: whether the timestamp or snapshot keys (or thresholds) of the root trusted now
    /// differ from those of the root trusted before this refresh began. Roots resumed from
    /// earlier refreshes are never "new", so this fires once, in the refresh that trusts the
    /// rotation, and never again (which would let a stale source roll the client back).
    pub fn fast_forward_reset(&self) -> bool {
        let Some(before) = self.root_chain.get(self.refresh_start) else {
            return false;
        };
        ["timestamp", "snapshot"]
            .iter()
            .any(|role| role_key_material(before, role) != role_key_material(&self.root, role))
    }

    /// Accept timestamp and snapshot metadata up to `grace` past their expiry, each time with a
    /// warning (see [`TrustedSet::grace_warnings`]). Root and targets expiry is never relaxed.
    pub fn set_expiry_grace(&mut self, grace: time::Duration) {
        self.expiry_grace = grace.max(time::Duration::ZERO);
    }

    /// Warnings about metadata accepted past its expiry under the offline grace.
    pub fn grace_warnings(&self) -> Vec<String> {
        self.grace_warnings
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default()
    }

    /// Every root verified in this cycle, oldest first (the trusted root, then each update).
    pub fn root_chain(&self) -> &[Verified<Root>] {
        &self.root_chain
    }

    /// Names of the targets roles loaded so far.
    pub fn targets_roles(&self) -> impl Iterator<Item = &str> {
        self.targets.keys().map(String::as_str)
    }

    fn expired(&self, role: &str, expires: &str) -> Result<()> {
        let t = parse_expires(role, expires)?;
        let graced =
            matches!(role, "timestamp" | "snapshot") && self.expiry_grace > time::Duration::ZERO;
        if t <= self.now && graced && t + self.expiry_grace > self.now {
            let w = format!(
                "{role} expired at {expires}; accepted under the offline grace of {} day(s)",
                self.expiry_grace.whole_days()
            );
            tracing::warn!("{w}");
            if let Ok(mut ws) = self.grace_warnings.lock() {
                if !ws.contains(&w) {
                    ws.push(w);
                }
            }
            return Ok(());
        }
        if t <= self.now {
            return Err(Error::Expired {
                role: role.to_string(),
                expires: expires.to_string(),
                now: format_expires(self.now),
            });
        }
        Ok(())
    }

    /// Resume the root chain that earlier refreshes verified (e.g. a local root history):
    /// version N+1 is verified exactly like [`TrustedSet::update_root`], but it counts as trusted
    /// *before* this refresh, so it never triggers fast-forward recovery (5.3.11). Only allowed
    /// before any root of this refresh was accepted.
    pub fn resume_root(&mut self, bytes: &[u8]) -> Result<&Verified<Root>> {
        if self.refresh_start + 1 != self.root_chain.len() {
            return Err(Error::Order {
                role: "root".into(),
                reason: "cannot resume earlier roots after a new root was accepted".into(),
            });
        }
        self.update_root(bytes)?;
        self.refresh_start = self.root_chain.len() - 1;
        Ok(&self.root)
    }

    /// Update the trusted root with version N+1.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<&Verified<Root>> {
        if self.timestamp.is_some() {
            return Err(Error::Order {
                role: "root".into(),
                reason: "cannot update root after timestamp was loaded".into(),
            });
        }
        // 5.3.1 "If the spec_version ... major version ... is not equal, abort" (checked while parsing).
        let (env, new_root) = signed_typed::<Root>("root", bytes)?;
        check_key_ids("root", &new_root.keys)?;
        // 5.3.4 "Check for an arbitrary software attack. Version N+1 of the root metadata file MUST
        // have been signed by: (1) a threshold of keys specified in the trusted root metadata file
        // (version N), and (2) a threshold of keys specified in the new root metadata file being
        // validated (version N+1)."
        verify_by_root(&self.root, "root", &env)?;
        verify_by_root(&new_root, "root", &env)?;
        // 5.3.5 "Check for a rollback attack. The version number of the new root metadata (i.e.
        // N+1) MUST be exactly the version in the trusted root metadata (i.e. N) incremented by one."
        let expected = self.root.version + 1;
        if new_root.version != expected {
            return Err(Error::VersionMismatch {
                role: "root".into(),
                expected,
                got: new_root.version,
            });
        }
        // 5.3.6 "Note that the expiration of the new (intermediate) root metadata file does not
        // matter yet, because we will check for it in step 5.3.10."
        // 5.3.11 (rotation of timestamp/snapshot keys) is decided against the root trusted before
        // this refresh: see `fast_forward_reset`.
        // 5.3.7 "Set the trusted root metadata file to the new root metadata file."
        self.root = Verified::new(new_root, bytes);
        self.root_chain.push(self.root.clone());
        Ok(&self.root)
    }

    /// 5.3.10 "Check for a freeze attack. The expiration timestamp in the trusted root metadata
    /// file MUST be higher than the fixed update start time."
    pub fn check_final_root(&self) -> Result<()> {
        self.expired("root", &self.root.expires)
    }

    /// Load a timestamp from the local cache: signatures are checked, expiry is not (it serves as
    /// the reference for rollback checks only).
    pub fn load_local_timestamp(&mut self, bytes: &[u8]) -> Result<()> {
        let (ts, _) = self.verify_timestamp(bytes)?;
        self.timestamp = Some(Verified::new(ts, bytes));
        Ok(())
    }

    fn verify_timestamp(&self, bytes: &[u8]) -> Result<(Timestamp, ())> {
        if self.snapshot.is_some() {
            return Err(Error::Order {
                role: "timestamp".into(),
                reason: "cannot update timestamp after snapshot was loaded".into(),
            });
        }
        let (env, ts) = signed_typed::<Timestamp>("timestamp", bytes)?;
        // 5.4.2 "Check for an arbitrary software attack. The new timestamp metadata file MUST have
        // been signed by a threshold of keys specified in the trusted root metadata file."
        verify_by_root(&self.root, "timestamp", &env)?;
        Ok((ts, ()))
    }

    /// Offer a newly downloaded timestamp.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<TimestampUpdate> {
        self.check_final_root()?;
        let (new_ts, ()) = self.verify_timestamp(bytes)?;
        // 5.4.3 "Check for a rollback attack.
        // 5.4.3.1 The version number of the trusted timestamp metadata file, if any, MUST be less
        // than or equal to the version number of the new timestamp metadata file. If the new
        // timestamp metadata file is older than the trusted timestamp metadata file, discard it,
        // abort the update cycle, and report the potential rollback attack.
        // 5.4.3.2 The version number of the snapshot metadata file in the trusted timestamp
        // metadata file, if any, MUST be less than or equal to its version number in the new
        // timestamp metadata file."
        if let Some(trusted) = &self.timestamp {
            if new_ts.version < trusted.version {
                return Err(Error::Rollback {
                    role: "timestamp".into(),
                    got: new_ts.version,
                    trusted: trusted.version,
                });
            }
            if new_ts.version == trusted.version {
                // Nothing changed upstream: keep the trusted timestamp, which must still be valid.
                self.expired("timestamp", &trusted.expires)?;
                return Ok(TimestampUpdate::Unchanged);
            }
            let old_snap = trusted.snapshot_meta().map(|m| m.version).unwrap_or(0);
            let new_snap = new_ts.snapshot_meta().map(|m| m.version).unwrap_or(0);
            if new_snap < old_snap {
                return Err(Error::Rollback {
                    role: "snapshot (as listed in timestamp)".into(),
                    got: new_snap,
                    trusted: old_snap,
                });
            }
        }
        // 5.4.4 "Check for a freeze attack. The expiration timestamp in the new timestamp metadata
        // file MUST be higher than the fixed update start time."
        self.expired("timestamp", &new_ts.expires)?;
        // 5.4.5 "Persist timestamp metadata" (the caller persists `raw()` now that it is trusted).
        self.timestamp = Some(Verified::new(new_ts, bytes));
        Ok(TimestampUpdate::Updated)
    }

    fn final_timestamp(&self) -> Result<&Verified<Timestamp>> {
        let ts = self.timestamp.as_ref().ok_or_else(|| Error::Order {
            role: "snapshot".into(),
            reason: "no trusted timestamp".into(),
        })?;
        self.expired("timestamp", &ts.expires)?;
        Ok(ts)
    }

    /// Offer snapshot metadata. `local` marks a copy from the local cache: it is not checked
    /// against the timestamp's hashes (the timestamp may be newer), but it still becomes the
    /// reference for rollback checks of the next snapshot even if it fails the final checks.
    pub fn update_snapshot(&mut self, bytes: &[u8], local: bool) -> Result<&Verified<Snapshot>> {
        if !self.targets.is_empty() {
            return Err(Error::Order {
                role: "snapshot".into(),
                reason: "cannot update snapshot after targets were loaded".into(),
            });
        }
        let ts = self.final_timestamp()?;
        let meta = ts
            .snapshot_meta()
            .cloned()
            .ok_or_else(|| Error::NotListed {
                what: "snapshot.json".into(),
                listed_in: "timestamp".into(),
            })?;
        // 5.5.2 "Check against timestamp role's snapshot hash. The hashes of the new snapshot
        // metadata file MUST match the hashes, if any, listed in the trusted timestamp metadata."
        // (and its length, when listed).
        if !local {
            verify_bytes("snapshot", bytes, meta.length, meta.hashes.as_ref())?;
        }
        let (env, new_snap) = signed_typed::<Snapshot>("snapshot", bytes)?;
        // 5.5.3 "Check for an arbitrary software attack. The new snapshot metadata file MUST have
        // been signed by a threshold of keys specified in the trusted root metadata file."
        verify_by_root(&self.root, "snapshot", &env)?;
        // 5.5.5 "Check for a rollback attack. The version number of the targets metadata file, and
        // all delegated targets metadata files, if any, in the trusted snapshot metadata file, if
        // any, MUST be less than or equal to its version number in the new snapshot metadata file.
        // Furthermore, any targets metadata filename that was listed in the trusted snapshot
        // metadata file, if any, MUST continue to be listed in the new snapshot metadata file."
        if let Some(trusted) = &self.snapshot {
            for (name, old) in &trusted.meta {
                let new = new_snap.meta.get(name).ok_or_else(|| Error::NotListed {
                    what: format!("{name} (listed by the trusted snapshot)"),
                    listed_in: "the new snapshot".into(),
                })?;
                if new.version < old.version {
                    return Err(Error::Rollback {
                        role: format!("{name} (as listed in snapshot)"),
                        got: new.version,
                        trusted: old.version,
                    });
                }
            }
        }
        let final_checks = self.final_snapshot_checks(&new_snap, &meta);
        if local {
            self.snapshot = Some(Verified::new(new_snap, bytes));
            self.snapshot_final = final_checks.is_ok();
            final_checks?;
        } else {
            final_checks?;
            self.snapshot = Some(Verified::new(new_snap, bytes));
            self.snapshot_final = true;
        }
        self.snapshot
            .as_ref()
            .ok_or_else(|| Error::Repository("unreachable".into()))
    }

    fn final_snapshot_checks(&self, snap: &Snapshot, meta: &MetaFile) -> Result<()> {
        // 5.5.4 "Check for a rollback attack. The version number of the new snapshot metadata file
        // MUST match the version number listed in the trusted timestamp metadata file."
        if snap.version != meta.version {
            return Err(Error::VersionMismatch {
                role: "snapshot".into(),
                expected: meta.version,
                got: snap.version,
            });
        }
        // 5.5.6 "Check for a freeze attack. The expiration timestamp in the new snapshot metadata
        // file MUST be higher than the fixed update start time."
        self.expired("snapshot", &snap.expires)
    }

    /// The snapshot entry for a targets role (`<role>.json`).
    pub fn targets_meta(&self, role: &str) -> Result<&MetaFile> {
        let snap = self.snapshot().ok_or_else(|| Error::Order {
            role: role.into(),
            reason: "no verified snapshot".into(),
        })?;
        snap.meta
            .get(&format!("{role}.json"))
            .ok_or_else(|| Error::NotListed {
                what: format!("{role}.json"),
                listed_in: "snapshot".into(),
            })
    }

    /// Offer top-level targets metadata (5.6).
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<&Verified<Targets>> {
        self.update_delegated_targets(bytes, "targets", "root")
    }

    /// Offer targets metadata for `role`, delegated by `parent` ("root" for top-level targets).
    /// 5.6 / 5.7: delegated targets are checked exactly like the top-level targets role, with the
    /// keys the parent delegates to.
    pub fn update_delegated_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        parent: &str,
    ) -> Result<&Verified<Targets>> {
        self.final_timestamp()?;
        if let Some(loaded) = self.targets.get(role) {
            if loaded.meta.raw() != bytes {
                return Err(Error::Order {
                    role: role.into(),
                    reason: "already loaded in this cycle with different bytes".into(),
                });
            }
        }
        let meta = self.targets_meta(role)?.clone();
        if let Some(s) = &self.snapshot {
            self.expired("snapshot", &s.expires)?;
        }
        // 5.6.2 "Check against snapshot role's targets hash. The hashes of the new targets metadata
        // file MUST match the hashes, if any, listed in the trusted snapshot metadata."
        // 5.6.3 "Check for an arbitrary software attack. The new targets metadata file MUST have
        // been signed by a threshold of keys specified in the trusted root metadata file."
        // For delegated roles: by a threshold of the keys the delegating role lists for it.
        // Both are checked on the same bytes; large files are hashed on a second core while the
        // signatures are verified, and the hash result is reported first.
        let what = format!("{role}.json");
        let hash = || verify_bytes(&what, bytes, meta.length, meta.hashes.as_ref());
        let (hashed, signed) = if bytes.len() >= PARALLEL_HASH_MIN {
            std::thread::scope(|s| {
                let h = s.spawn(hash);
                let signed = self.verify_targets_signatures(bytes, role, parent);
                let hashed = h
                    .join()
                    .unwrap_or_else(|_| Err(Error::Repository("hashing thread panicked".into())));
                (hashed, signed)
            })
        } else {
            (hash(), self.verify_targets_signatures(bytes, role, parent))
        };
        hashed?;
        let new_targets = signed?;
        // 5.6.4 "Check for a rollback attack. The version number of the new targets metadata file
        // MUST match the version number listed in the latest snapshot metadata."
        if new_targets.version != meta.version {
            return Err(Error::VersionMismatch {
                role: role.into(),
                expected: meta.version,
                got: new_targets.version,
            });
        }
        // 5.6.5 "Check for a freeze attack. The expiration timestamp in the new targets metadata
        // file MUST be higher than the fixed update start time."
        self.expired(role, &new_targets.expires)?;
        // 5.6.6 "Persist targets metadata" (by the caller).
        let loaded = self
            .targets
            .entry(role.to_string())
            .or_insert(LoadedTargets {
                meta: Verified::new(new_targets, bytes),
                via: Vec::new(),
            });
        if !loaded.via.iter().any(|p| p == parent) {
            loaded.via.push(parent.to_string());
        }
        Ok(&loaded.meta)
    }

    /// A role already loaded in this cycle (through another delegating role) reached again
    /// through `parent`: its bytes, pinned by the snapshot, are not fetched again, but 5.6.3 is
    /// checked again with the keys *this* delegator lists for it, so that a role signed only for
    /// one delegator is never trusted for paths delegated by another. `Ok(None)`: not loaded yet.
    pub fn trust_loaded_via(
        &mut self,
        role: &str,
        parent: &str,
    ) -> Result<Option<&Verified<Targets>>> {
        let Some(loaded) = self.targets.get(role) else {
            return Ok(None);
        };
        if !loaded.via.iter().any(|p| p == parent) {
            let raw = loaded.meta.raw.clone();
            self.verify_targets_signatures(&raw, role, parent)?;
        }
        let loaded = self
            .targets
            .get_mut(role)
            .ok_or_else(|| Error::Repository("unreachable".into()))?;
        if !loaded.via.iter().any(|p| p == parent) {
            loaded.via.push(parent.to_string());
        }
        Ok(Some(&loaded.meta))
    }

    /// Parse targets metadata for `role` and check its signatures against the keys `parent`
    /// (root for the top-level targets role) assigns to it.
    fn verify_targets_signatures(&self, bytes: &[u8], role: &str, parent: &str) -> Result<Targets> {
        let (env, new_targets) = signed_typed::<Targets>(role, bytes)?;
        if let Some(d) = &new_targets.delegations {
            check_key_ids(role, &d.keys)?;
        }
        if parent == "root" {
            if role != "targets" {
                return Err(Error::Order {
                    role: role.into(),
                    reason: "only the top-level targets role is delegated by root".into(),
                });
            }
            verify_by_root(&self.root, "targets", &env)?;
        } else {
            let parent_meta = self.targets(parent).ok_or_else(|| Error::Order {
                role: role.into(),
                reason: format!("delegating role {parent} is not loaded"),
            })?;
            let (keyids, threshold, keys) =
                delegated_keys(parent_meta, role).ok_or_else(|| Error::NotListed {
                    what: format!("delegated role {role}"),
                    listed_in: parent.to_string(),
                })?;
            let msg = SignedMessage::new(env.signed_raw);
            verify_threshold(role, &msg, &env.signatures, &keyids, threshold, keys)?;
        }
        Ok(new_targets)
    }
}

/// Check that `env` carries signatures from a threshold of the keys `root` lists for `role`
/// (a top-level role).
fn verify_by_root(root: &Root, role: &str, env: &Envelope<'_>) -> Result<()> {
    let r = root
        .role(role)
        .ok_or_else(|| Error::malformed("root", format!("no {role} role")))?;
    let msg = SignedMessage::new(env.signed_raw);
    verify_threshold(
        role,
        &msg,
        &env.signatures,
        &r.keyids,
        r.threshold,
        &root.keys,
    )
}

/// Key material and threshold of a role, for detecting rotations.
fn role_key_material(root: &Root, role: &str) -> (Vec<Value>, u64) {
    let Some(r) = root.role(role) else {
        return (Vec::new(), 0);
    };
    let mut keys: Vec<Value> = r
        .keyids
        .iter()
        .filter_map(|id| root.keys.get(id))
        .filter_map(|k| serde_json::to_value(k).ok())
        .collect();
    keys.sort_by_key(|v| v.to_string());
    (keys, r.threshold)
}

/// Keys and threshold a targets role delegates to `role` (named or succinct hash-bin role).
pub(crate) fn delegated_keys<'a>(
    parent: &'a Targets,
    role: &str,
) -> Option<(Vec<String>, u64, &'a BTreeMap<String, Key>)> {
    let d = parent.delegations.as_ref()?;
    if let Some(roles) = &d.roles {
        let r: &DelegatedRole = roles.iter().find(|r| r.name == role)?;
        return Some((r.keyids.clone(), r.threshold, &d.keys));
    }
    let s = d.succinct_roles.as_ref()?;
    if crate::delegation::succinct_is_bin(s, role) {
        return Some((s.keyids.clone(), s.threshold, &d.keys));
    }
    None
}
