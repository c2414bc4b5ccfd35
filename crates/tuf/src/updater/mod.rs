//! The client workflow of TUF 1.0 section 5, driving [`TrustedSet`] with bytes obtained through a
//! [`Fetcher`] and persisting every verified file (exact bytes, atomic writes) in a metadata
//! directory under unversioned names (`root.json`, `timestamp.json`, `<role>.json`).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::crypto::StreamVerifier;
use crate::error::{Error, FetchError, Result};
use crate::fetch::Fetcher;
use crate::fsutil::{
    remove_if_exists, safe_file_name, url_path, url_segment, write_atomic, write_atomic_with,
};
use crate::trusted::{TimestampUpdate, TrustedSet};

mod search;
pub use search::{RefusedTarget, TargetInfo, TargetListing};

/// Limits and behaviour of the client.
#[derive(Debug, Clone)]
pub struct UpdaterConfig {
    /// Maximum number of root versions walked in one refresh (at least 256 by default).
    pub max_root_rotations: u32,
    /// Maximum number of targets roles visited when searching for a target.
    pub max_delegations: u32,
    pub root_max_length: u64,
    pub timestamp_max_length: u64,
    pub snapshot_max_length: u64,
    /// Used for targets metadata whose length the snapshot does not list.
    pub targets_max_length: u64,
    /// Download targets as `HASH.name` when the repository uses consistent snapshots.
    pub prefix_targets_with_hash: bool,
    /// Keep every verified root as `root_history/N.root.json` and walk those locally first.
    pub keep_root_history: bool,
    /// fsync persisted timestamp, snapshot and targets metadata (file and directory) before going
    /// on. On by default; without it a power loss can cost the newest of those files, which the
    /// next refresh downloads again. Root is always fsynced.
    pub durable_writes: bool,
    /// Persist what a refresh verifies (the specification's workflow; on by default). Off, a
    /// refresh only verifies: a probe of another source leaves the trusted state on disk as it
    /// was unless [`Updater::adopt`] is called after the whole refresh succeeded.
    pub persist: bool,
    /// Accept timestamp and snapshot metadata up to this long past expiry, with warnings (an
    /// explicit policy for air-gapped sites). Zero by default; root and targets never.
    pub offline_grace: time::Duration,
}

impl Default for UpdaterConfig {
    fn default() -> Self {
        UpdaterConfig {
            max_root_rotations: 256,
            max_delegations: 32,
            root_max_length: 512 * 1024,
            timestamp_max_length: 16 * 1024,
            snapshot_max_length: 2_000_000,
            targets_max_length: 5_000_000,
            prefix_targets_with_hash: true,
            keep_root_history: false,
            durable_writes: true,
            persist: true,
            offline_grace: time::Duration::ZERO,
        }
    }
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshOutcome {
    pub root_version: u64,
    pub timestamp: TimestampUpdate,
    pub timestamp_version: u64,
    pub snapshot_version: u64,
    pub targets_version: u64,
    /// URLs downloaded during the refresh, in order.
    pub fetched: Vec<String>,
}

/// A TUF client for one repository.
pub struct Updater<F: Fetcher> {
    config: UpdaterConfig,
    fetcher: F,
    metadata_dir: PathBuf,
    metadata_url: String,
    /// The caller's trust anchor: every refresh verifies the root chain from it.
    anchor: Vec<u8>,
    /// Roots verified by earlier refreshes of this client, by version (with `root_history`
    /// on disk, the same survives restarts).
    known_roots: BTreeMap<u64, Vec<u8>>,
    trusted: Option<TrustedSet>,
    /// Delegations (role, delegating role) that failed verification in this refresh, and why:
    /// the search does not fetch or verify them again.
    failed: HashMap<(String, String), String>,
    fetched: Vec<String>,
}

impl<F: Fetcher> std::fmt::Debug for Updater<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater")
            .field("metadata_dir", &self.metadata_dir)
            .field("metadata_url", &self.metadata_url)
            .finish_non_exhaustive()
    }
}

fn read_bounded(path: &Path, max: u64) -> Option<Vec<u8>> {
    let f = File::open(path).ok()?;
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf).ok()?;
    (buf.len() as u64 <= max).then_some(buf)
}

impl<F: Fetcher> Updater<F> {
    /// Create a client that trusts `trusted_root` (the bytes of a root file the caller obtained
    /// out of band, e.g. shipped read-only with the installation) and keeps its verified metadata
    /// in `metadata_dir`.
    pub fn new(
        metadata_dir: impl Into<PathBuf>,
        metadata_url: &str,
        trusted_root: Vec<u8>,
        fetcher: F,
        config: UpdaterConfig,
    ) -> Result<Self> {
        let metadata_dir = metadata_dir.into();
        crate::fsutil::create_dir_all(&metadata_dir)?;
        // Fail early on an unusable anchor.
        TrustedSet::new(&trusted_root, OffsetDateTime::now_utc())?;
        Ok(Updater {
            config,
            fetcher,
            metadata_dir,
            metadata_url: metadata_url.trim_end_matches('/').to_string(),
            anchor: trusted_root,
            known_roots: BTreeMap::new(),
            trusted: None,
            failed: HashMap::new(),
            fetched: Vec::new(),
        })
    }

    pub fn metadata_dir(&self) -> &Path {
        &self.metadata_dir
    }

    /// The version of the timestamp the last refresh trusted (0 before any).
    pub fn timestamp_version(&self) -> u64 {
        self.trusted
            .as_ref()
            .and_then(|t| t.timestamp())
            .map_or(0, |t| t.version)
    }

    /// The trusted metadata of the last refresh.
    pub fn trusted(&self) -> Option<&TrustedSet> {
        self.trusted.as_ref()
    }

    fn role_path(&self, role: &str) -> PathBuf {
        self.metadata_dir
            .join(format!("{}.json", safe_file_name(role)))
    }

    /// Persist verified metadata. Root is always fsynced: for a client whose trust anchor is its
    /// metadata directory (`tuf-client`), losing it would lose trust.
    fn persist(&self, role: &str, bytes: &[u8]) -> Result<()> {
        if !self.config.persist {
            return Ok(());
        }
        let durable = self.config.durable_writes || role == "root";
        write_atomic_with(&self.role_path(role), bytes, durable)
    }

    /// Persist everything the last refresh verified, in an order that keeps the state on disk
    /// consistent at every instant (roots, then targets roles and snapshot, the timestamp last:
    /// until it is written, the old timestamp stays the rollback reference), and persist from
    /// now on. For a client that refreshed with `persist: false` (a probe of another source)
    /// and decided to use it: a source that fails half-way never changes the trusted state.
    pub fn adopt(&mut self) -> Result<()> {
        self.config.persist = true;
        let set = self.trusted.as_ref().ok_or_else(|| Error::Order {
            role: "timestamp".into(),
            reason: "nothing to adopt: refresh() must succeed first".into(),
        })?;
        let history = self.metadata_dir.join("root_history");
        if set.fast_forward_reset() {
            self.discard_timestamp_and_snapshot()?;
        }
        for root in set.root_chain().iter().skip(1) {
            if self.config.keep_root_history {
                write_atomic(
                    &history.join(format!("{}.root.json", root.version)),
                    root.raw(),
                )?;
            }
        }
        self.persist("root", set.root().raw())?;
        for role in set.targets_roles() {
            if let Some(t) = set.targets(role) {
                self.persist(role, t.raw())?;
            }
        }
        if let Some(snapshot) = set.snapshot() {
            self.persist("snapshot", snapshot.raw())?;
        }
        if let Some(timestamp) = set.timestamp() {
            self.persist("timestamp", timestamp.raw())?;
        }
        Ok(())
    }

    fn fetch_bounded(&mut self, url: String, max: u64) -> Result<Vec<u8>> {
        tracing::debug!(url = %crate::fsutil::redact_credentials(&url), max, "fetch");
        self.fetched.push(url.clone());
        match self.fetcher.fetch_bytes(&url, max) {
            Ok(buf) if buf.len() as u64 <= max => Ok(buf),
            Ok(_) | Err(FetchError::TooLarge { .. }) => Err(Error::TooLarge { what: url, max }),
            Err(e) => Err(e.into()),
        }
    }

    /// Run the client workflow (5.1–5.6): update root, timestamp, snapshot and top-level targets.
    /// Everything verified is persisted at once, even if a later step fails.
    pub fn refresh(&mut self) -> Result<RefreshOutcome> {
        self.refresh_at(OffsetDateTime::now_utc())
    }

    /// As [`Updater::refresh`] with an explicit update start time (5.1).
    pub fn refresh_at(&mut self, now: OffsetDateTime) -> Result<RefreshOutcome> {
        self.fetched.clear();
        self.failed.clear();
        self.trusted = None;
        // 5.1 "Record the time at which the update began as the fixed update start time."
        // 5.2 "Load the trusted root metadata file." The trusted root is the newest one an
        // earlier refresh verified along the chain from the caller's anchor.
        let mut set = TrustedSet::new(&self.anchor, now)?;
        set.set_expiry_grace(self.config.offline_grace);
        self.resume_roots(&mut set);
        let result = self.run_refresh(&mut set);
        for root in set.root_chain().iter().skip(1) {
            self.known_roots
                .entry(root.version)
                .or_insert_with(|| root.raw().to_vec());
        }
        self.trusted = Some(set);
        let (timestamp, fetched) = (result?, std::mem::take(&mut self.fetched));
        let set = self
            .trusted
            .as_ref()
            .ok_or_else(|| Error::Repository("unreachable".into()))?;
        Ok(RefreshOutcome {
            root_version: set.root().version,
            timestamp,
            timestamp_version: set.timestamp().map(|t| t.version).unwrap_or(0),
            snapshot_version: set.snapshot().map(|s| s.version).unwrap_or(0),
            targets_version: set.targets("targets").map(|t| t.version).unwrap_or(0),
            fetched,
        })
    }

    fn run_refresh(&mut self, set: &mut TrustedSet) -> Result<TimestampUpdate> {
        self.update_root(set)?;
        let ts = self.update_timestamp(set)?;
        self.update_snapshot(set)?;
        self.load_targets(set, "targets", "root")?;
        Ok(ts)
    }

    /// Walk the roots earlier refreshes verified (in memory, then `root_history/`), each checked
    /// along the chain from the anchor like a download. They were trusted before this refresh:
    /// fast-forward recovery (5.3.11) compares against the newest of them.
    fn resume_roots(&self, set: &mut TrustedSet) {
        let history = self.metadata_dir.join("root_history");
        while let Some(next) = set.root().version.checked_add(1) {
            let bytes = match self.known_roots.get(&next) {
                Some(b) => b.clone(),
                None if self.config.keep_root_history => {
                    let local = history.join(format!("{next}.root.json"));
                    match read_bounded(&local, self.config.root_max_length) {
                        Some(b) => b,
                        None => break,
                    }
                }
                None => break,
            };
            if let Err(e) = set.resume_root(&bytes) {
                tracing::warn!(version = next, error = %e, "local root history not usable from here on");
                break;
            }
        }
    }

    /// "root updated" at info only for a client that keeps what it verifies: a probe
    /// (`persist: false`) walks the same rotations again every time and changes nothing.
    fn log_root_change(&self, from: u64, to: u64) {
        if self.config.persist {
            tracing::info!(from, to, "root updated");
        } else {
            tracing::debug!(from, to, "root verified (probe, not kept)");
        }
    }

    /// 5.3 "Update the root metadata file."
    fn update_root(&mut self, set: &mut TrustedSet) -> Result<()> {
        let start = set.root().version;
        let history = self.metadata_dir.join("root_history");
        // 5.3.2 "Let N denote the version number of the trusted root metadata file."
        // 5.3.3 "Try downloading version N+1 of the root metadata file, up to some W number of
        // bytes ... If this file is not available, or we have downloaded more than Y number of
        // root metadata files (because the exact number is as yet unknown), then go to step 5.3.10."
        for _ in 0..self.config.max_root_rotations {
            let Some(next) = set.root().version.checked_add(1) else {
                break;
            };
            let local = history.join(format!("{next}.root.json"));
            let url = format!("{}/{next}.root.json", self.metadata_url);
            let bytes = match self.fetch_bounded(url, self.config.root_max_length) {
                Ok(b) => b,
                Err(Error::Fetch(FetchError::NotFound { .. })) => break,
                Err(e) => return Err(e),
            };
            // 5.3.4 – 5.3.7 (signatures of old and new root, version N+1, set trusted).
            set.update_root(&bytes)?;
            // 5.3.11 is applied before the new root is persisted, so that a crash in between
            // cannot leave the rotated root trusted with the old timestamp/snapshot kept.
            if set.fast_forward_reset() {
                self.discard_timestamp_and_snapshot()?;
            }
            // 5.3.8 "Persist root metadata. The client MUST write the file to non-volatile storage
            // as FILENAME.EXT (e.g. root.json)."
            self.persist("root", &bytes)?;
            if self.config.keep_root_history && self.config.persist {
                write_atomic(&local, &bytes)?;
            }
            // 5.3.9 "Repeat steps 5.3.2 to 5.3.9."
        }
        if set.root().version != start {
            self.persist("root", set.root().raw())?;
            self.log_root_change(start, set.root().version);
        }
        // 5.3.10 "Check for a freeze attack."
        set.check_final_root()?;
        // 5.3.11 "If the timestamp and / or snapshot keys have been rotated, then delete the
        // trusted timestamp and snapshot metadata files."
        // Only a root trusted in *this* refresh can have rotated them (see
        // `TrustedSet::fast_forward_reset`).
        if set.fast_forward_reset() {
            tracing::info!(
                "timestamp or snapshot keys rotated: discarding trusted timestamp and snapshot"
            );
            self.discard_timestamp_and_snapshot()?;
        }
        // 5.3.12 "Set whether consistent snapshots are used as per the trusted root metadata file."
        Ok(())
    }

    fn discard_timestamp_and_snapshot(&self) -> Result<()> {
        if !self.config.persist {
            return Ok(());
        }
        remove_if_exists(&self.role_path("timestamp"))?;
        remove_if_exists(&self.role_path("snapshot"))
    }

    /// 5.4 "Download the timestamp metadata file."
    fn update_timestamp(&mut self, set: &mut TrustedSet) -> Result<TimestampUpdate> {
        if let Some(bytes) = read_bounded(
            &self.role_path("timestamp"),
            self.config.timestamp_max_length,
        ) {
            if let Err(e) = set.load_local_timestamp(&bytes) {
                tracing::debug!(error = %e, "local timestamp not usable");
            }
        }
        // 5.4.1 "Download up to X number of bytes ... The filename used to download the timestamp
        // metadata file is of the fixed form FILENAME.EXT (e.g., timestamp.json)."
        let url = format!("{}/timestamp.json", self.metadata_url);
        let bytes = self.fetch_bounded(url, self.config.timestamp_max_length)?;
        let update = set.update_timestamp(&bytes)?;
        if update == TimestampUpdate::Updated {
            // 5.4.5 "Persist timestamp metadata."
            self.persist("timestamp", &bytes)?;
        }
        Ok(update)
    }

    /// 5.5 "Download snapshot metadata file."
    fn update_snapshot(&mut self, set: &mut TrustedSet) -> Result<()> {
        if let Some(bytes) =
            read_bounded(&self.role_path("snapshot"), self.config.snapshot_max_length)
        {
            match set.update_snapshot(&bytes, true) {
                Ok(_) => return Ok(()),
                Err(e) => tracing::debug!(error = %e, "local snapshot not usable"),
            }
        }
        let meta = set
            .timestamp()
            .and_then(|t| t.snapshot_meta().cloned())
            .ok_or_else(|| Error::NotListed {
                what: "snapshot.json".into(),
                listed_in: "timestamp".into(),
            })?;
        // 5.5.1 "Download snapshot metadata file, up to either the number of bytes specified in
        // the timestamp metadata file, or some Y number of bytes. ... If consistent snapshots are
        // used, then the filename is VERSION_NUMBER.FILENAME.EXT where VERSION_NUMBER is the
        // version number of the snapshot metadata file listed in the timestamp metadata file."
        let name = if set.root().consistent_snapshot.unwrap_or(false) {
            format!("{}.snapshot.json", meta.version)
        } else {
            "snapshot.json".to_string()
        };
        let max = meta.length.unwrap_or(self.config.snapshot_max_length);
        let bytes = self.fetch_bounded(format!("{}/{name}", self.metadata_url), max)?;
        set.update_snapshot(&bytes, false)?;
        // 5.5.7 "Persist snapshot metadata."
        self.persist("snapshot", &bytes)?;
        Ok(())
    }

    /// 5.6 (top-level targets) and the loading step of 5.6.7.2 for delegated roles.
    /// Trust `role` through the delegation from `parent`, loading it if needed. A delegation
    /// that failed verification in this refresh fails again at once (it is not fetched again).
    fn load_targets(&mut self, set: &mut TrustedSet, role: &str, parent: &str) -> Result<()> {
        if set.targets_via(role, parent).is_some() {
            return Ok(());
        }
        let key = (role.to_string(), parent.to_string());
        if let Some(reason) = self.failed.get(&key) {
            return Err(Error::Delegation {
                role: role.into(),
                delegator: parent.into(),
                reason: reason.clone(),
            });
        }
        let result = self.load_targets_via(set, role, parent);
        if let Err(e) = &result {
            if !matches!(e, Error::Fetch(_)) {
                self.failed.insert(key, e.to_string());
            }
        }
        result
    }

    fn load_targets_via(&mut self, set: &mut TrustedSet, role: &str, parent: &str) -> Result<()> {
        // Already loaded through another delegator: check this delegator's keys on the same bytes.
        if set.trust_loaded_via(role, parent)?.is_some() {
            return Ok(());
        }
        // A role the trusted snapshot does not list cannot be loaded: fail before any I/O.
        let meta = set.targets_meta(role)?.clone();
        let max_default = self.config.targets_max_length;
        if let Some(bytes) = read_bounded(&self.role_path(role), max_default) {
            match set.update_delegated_targets(&bytes, role, parent) {
                Ok(_) => return Ok(()),
                Err(e) => tracing::debug!(role, error = %e, "local targets metadata not usable"),
            }
        }
        // 5.6.1 "Download up to either the number of bytes specified in the snapshot metadata
        // file, or some Z number of bytes. ... If consistent snapshots are used, then the filename
        // is VERSION_NUMBER.FILENAME.EXT."
        let name = if set.root().consistent_snapshot.unwrap_or(false) {
            format!("{}.{}.json", meta.version, url_segment(role))
        } else {
            format!("{}.json", url_segment(role))
        };
        let max = meta.length.unwrap_or(max_default);
        let bytes = self.fetch_bounded(format!("{}/{name}", self.metadata_url), max)?;
        set.update_delegated_targets(&bytes, role, parent)?;
        // 5.6.6 "Persist targets metadata."
        self.persist(role, &bytes)?;
        Ok(())
    }

    /// Where [`Updater::download_target`] stores a target inside `target_dir`.
    pub fn local_target_path(target_dir: &Path, info: &TargetInfo) -> PathBuf {
        target_dir.join(safe_file_name(&info.path))
    }

    /// Whether `path` already holds exactly this target (length and all hashes match).
    pub fn is_cached(info: &TargetInfo, path: &Path) -> bool {
        verify_file(info, path).is_ok()
    }

    /// The URL of a target under `target_base_url` (5.7.3: `HASH.FILENAME` with consistent
    /// snapshots).
    pub fn target_url(&self, info: &TargetInfo, target_base_url: &str) -> String {
        let base = target_base_url.trim_end_matches('/');
        let consistent = self
            .trusted
            .as_ref()
            .and_then(|s| s.root().consistent_snapshot)
            .unwrap_or(false);
        let name = info.file_name(consistent && self.config.prefix_targets_with_hash);
        format!("{base}/{}", url_path(&name))
    }

    /// Download a target into `target_dir` (under a safe name derived from its path) unless a
    /// verified copy is already there. Returns the local path.
    pub fn download_target(
        &mut self,
        info: &TargetInfo,
        target_dir: &Path,
        target_base_url: &str,
    ) -> Result<PathBuf> {
        let dest = Self::local_target_path(target_dir, info);
        if Self::is_cached(info, &dest) {
            return Ok(dest);
        }
        self.download_target_to(info, &dest, target_base_url)?;
        Ok(dest)
    }

    /// 5.7.2 / 5.7.3: download a target, at most its signed length, verifying length and hashes
    /// while streaming into a temporary file next to `dest`; `dest` appears only when verified.
    pub fn download_target_to(
        &mut self,
        info: &TargetInfo,
        dest: &Path,
        target_base_url: &str,
    ) -> Result<()> {
        let url = self.target_url(info, target_base_url);
        self.fetched.push(url.clone());
        let reader = self.fetcher.fetch(&url)?;
        let dir = crate::fsutil::parent_dir(dest);
        crate::fsutil::create_dir_all(&dir)?;
        let mut tmp = crate::fsutil::tempfile_in(&dir)?;
        let mut v = StreamVerifier::new(&info.path, &info.hashes)?;
        let mut reader = reader.take(info.length + 1);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf).map_err(|e| FetchError::Transport {
                url: url.clone(),
                reason: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            v.update(&buf[..n]);
            if v.length() > info.length {
                return Err(Error::TooLarge {
                    what: url,
                    max: info.length,
                });
            }
            tmp.write_all(&buf[..n]).map_err(|e| Error::io(dest, e))?;
        }
        v.finish(Some(info.length))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(dest, e))?;
        tmp.persist(dest).map_err(|e| Error::io(dest, e.error))?;
        crate::fsutil::sync_dir(&dir);
        Ok(())
    }

    /// URLs fetched since the last refresh started.
    pub fn fetched(&self) -> &[String] {
        &self.fetched
    }
}

/// 5.7.2 applied to a local file: `path` holds exactly the target `info` describes (its signed
/// length and every listed hash), read in bounded chunks and never past the signed length. For
/// files made locally (a target rebuilt from a delta) before anything uses them.
pub fn verify_file(info: &TargetInfo, path: &Path) -> Result<()> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut v = StreamVerifier::new(&info.path, &info.hashes)?;
    let mut reader = f.take(info.length.saturating_add(1));
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => v.update(buf.get(..n).unwrap_or_default()),
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    v.finish(Some(info.length))
}
