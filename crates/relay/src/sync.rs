//! One sync cycle: run the TUF client workflow against the first upstream that answers, store
//! every listed target that is not stored yet (verified while downloading), and only then commit
//! a new view. Any failure leaves the view in service untouched.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tuf::{Fetcher, TargetInfo, Updater, UpdaterConfig};

use node::fault::fault;

use crate::error::{Error, Result};
use crate::store::{ObjectId, Store};
use crate::view::{Manifest, TargetEntry, Versions, Views, VIEW_FORMAT};

mod mirror;
use mirror::fetch_targets;

/// The relay's cache directory: trusted metadata, object store and views.
#[derive(Debug, Clone)]
pub struct Cache {
    pub dir: PathBuf,
    pub store: Store,
    pub views: Views,
}

impl Cache {
    /// Open (creating) a cache directory; fails early on a read-only or unusable directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        // Probe writability now rather than at the first sync.
        node::dirs::writable("cache", &dir)?;
        Ok(Cache {
            store: Store::open(&dir)?,
            views: Views::open(&dir)?,
            dir,
        })
    }

    pub fn trusted_dir(&self) -> PathBuf {
        self.dir.join("trusted")
    }
}

/// What a sync needs to know.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// The relay's trust anchor (bytes of a root file shipped with the installation).
    pub trusted_root: Vec<u8>,
    pub keep_views: usize,
    pub offline_grace: time::Duration,
    pub max_roles: usize,
    /// Show a progress bar (interactive terminal).
    pub progress: bool,
}

/// Where to sync from.
#[derive(Debug, Clone)]
pub struct Source {
    /// Label shown in status and views (an upstream URL or a bundle path).
    pub label: String,
    pub metadata_url: String,
    pub targets_url: String,
    /// Bundles may carry only some targets: missing ones are left out of the view.
    pub allow_missing_targets: bool,
}

impl Source {
    /// An upstream base URL under which `/metadata/` and `/targets/` live.
    pub fn upstream(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Source {
            // Shown in status, views and logs: without URL credentials.
            label: node::url::redact(base),
            metadata_url: format!("{base}/metadata"),
            targets_url: format!("{base}/targets"),
            allow_missing_targets: false,
        }
    }
}

/// Outcome of a successful sync.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncOutcome {
    pub source: String,
    /// The view in service after the sync.
    pub view: u64,
    /// Whether a new view was committed.
    pub changed: bool,
    pub downloaded: u64,
    pub downloaded_bytes: u64,
    pub skipped_missing: u64,
    /// Targets rebuilt from a stored version and deltas instead of downloaded whole.
    #[serde(default)]
    pub rebuilt: u64,
    /// What the rebuilt targets' full files would have cost to download.
    #[serde(default)]
    pub rebuilt_full_bytes: u64,
    pub warnings: Vec<String>,
    /// Version of the timestamp the view in service follows.
    pub timestamp: u64,
    /// Upstreams tried before the one used, with why they failed (slow, unreachable, rejected).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upstream_errors: Vec<String>,
    /// Upstreams found behind another upstream or the trusted state, and by how much.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lagging: Vec<String>,
}

fn versions(set: &tuf::TrustedSet) -> Versions {
    let mut targets = BTreeMap::new();
    for role in set.targets_roles() {
        if let Some(t) = set.targets(role) {
            targets.insert(role.to_string(), t.version);
        }
    }
    Versions {
        root: set.root().version,
        timestamp: set.timestamp().map(|t| t.version).unwrap_or(0),
        snapshot: set.snapshot().map(|s| s.version).unwrap_or(0),
        targets,
        timestamp_expires: set
            .timestamp()
            .map(|t| t.expires.clone())
            .unwrap_or_default(),
        snapshot_expires: set
            .snapshot()
            .map(|s| s.expires.clone())
            .unwrap_or_default(),
    }
}

/// The relay's TUF client over `source`: it starts from the trusted state the cache holds (the
/// anchor plus the verified root history) and, with `persist`, persists what it verifies.
fn client(
    cache: &Cache,
    settings: &SyncSettings,
    fetcher: Arc<dyn Fetcher>,
    source: &Source,
    persist: bool,
) -> Result<Updater<Arc<dyn Fetcher>>> {
    let config = UpdaterConfig {
        keep_root_history: true,
        offline_grace: settings.offline_grace,
        persist,
        ..UpdaterConfig::default()
    };
    Ok(Updater::new(
        cache.trusted_dir(),
        &source.metadata_url,
        settings.trusted_root.clone(),
        fetcher,
        config,
    )?)
}

/// Sync once from `source`.
pub fn sync_from(
    cache: &Cache,
    settings: &SyncSettings,
    fetcher: Arc<dyn Fetcher>,
    source: &Source,
) -> Result<SyncOutcome> {
    let mut up = client(cache, settings, fetcher, source, true)?;
    up.refresh()?;
    fault("after-refresh");
    let set = trusted(&up)?;
    let versions = versions(set);
    if let Some(outcome) = unchanged(cache, set, &versions, source)? {
        return Ok(outcome);
    }
    let consistent = set.root().consistent_snapshot.unwrap_or(false);
    let listing = up.all_targets(settings.max_roles)?;
    let refused = listing_warnings(&listing, settings.max_roles);
    let targets = listing.targets;
    let got = fetch_targets(cache, settings, &mut up, source, &targets)?;
    fault("after-download");

    let set = trusted(&up)?;
    let metadata = store_metadata(cache, set)?;
    let served = served_targets(cache, &targets, consistent);
    let mut manifest = Manifest {
        format: VIEW_FORMAT,
        id: cache.views.next_id()?,
        created: node::clock::now_string(),
        source: source.label.clone(),
        versions,
        metadata,
        targets: served,
        warnings: set
            .grace_warnings()
            .into_iter()
            .chain(refused)
            .chain(got.notes)
            .collect(),
        carried: Default::default(),
    };
    if let Some(prev) = cache.views.current()? {
        manifest.carry_from(&prev);
    }
    fault("before-commit");
    cache.views.commit(&manifest)?;
    fault("after-commit");
    collect_garbage(cache, settings.keep_views)?;
    Ok(SyncOutcome {
        source: source.label.clone(),
        view: manifest.id,
        changed: true,
        downloaded: got.files,
        downloaded_bytes: got.bytes,
        skipped_missing: got.missing,
        rebuilt: got.rebuilt,
        rebuilt_full_bytes: got.rebuilt_full_bytes,
        warnings: manifest.warnings,
        timestamp: manifest.versions.timestamp,
        upstream_errors: Vec::new(),
        lagging: Vec::new(),
    })
}

fn trusted<F: Fetcher>(up: &Updater<F>) -> Result<&tuf::TrustedSet> {
    up.trusted()
        .ok_or_else(|| Error::Other("no trusted metadata after refresh".into()))
}

/// The outcome of a sync that changes nothing: the view in service already follows this
/// timestamp (same bytes) and these versions. `None` if a new view is needed.
fn unchanged(
    cache: &Cache,
    set: &tuf::TrustedSet,
    versions: &Versions,
    source: &Source,
) -> Result<Option<SyncOutcome>> {
    let ts_hash = set
        .timestamp()
        .map(|t| tuf::crypto::sha256_hex(t.raw()))
        .unwrap_or_default();
    let Some(cur) = cache.views.current()? else {
        return Ok(None);
    };
    let same_ts = cur
        .metadata
        .get("timestamp.json")
        .is_some_and(|o| o.hex == ts_hash);
    if !(same_ts && cur.versions == *versions) {
        return Ok(None);
    }
    Ok(Some(SyncOutcome {
        source: source.label.clone(),
        view: cur.id,
        changed: false,
        downloaded: 0,
        downloaded_bytes: 0,
        skipped_missing: 0,
        rebuilt: 0,
        rebuilt_full_bytes: 0,
        warnings: set.grace_warnings(),
        timestamp: versions.timestamp,
        upstream_errors: Vec::new(),
        lagging: Vec::new(),
    }))
}

/// Remove the objects no view among the newest `keep_views` references.
fn collect_garbage(cache: &Cache, keep_views: usize) -> Result<()> {
    let (gc_n, gc_bytes) = cache.views.collect_garbage(&cache.store, keep_views)?;
    if gc_n > 0 {
        tracing::info!(
            objects = gc_n,
            bytes = gc_bytes,
            "collected unreferenced objects"
        );
    }
    Ok(())
}

/// Store every verified metadata file of `set` and name each as it is served (`N.role.json`
/// and `role.json`; every root version).
fn store_metadata(cache: &Cache, set: &tuf::TrustedSet) -> Result<BTreeMap<String, ObjectId>> {
    let mut metadata = BTreeMap::new();
    let put = |bytes: &[u8]| cache.store.put_bytes(bytes);
    for root in set.root_chain() {
        metadata.insert(format!("{}.root.json", root.version), put(root.raw())?);
    }
    metadata.insert("root.json".to_string(), put(set.root().raw())?);
    if let Some(ts) = set.timestamp() {
        metadata.insert("timestamp.json".to_string(), put(ts.raw())?);
    }
    if let Some(s) = set.snapshot() {
        let id = put(s.raw())?;
        metadata.insert(format!("{}.snapshot.json", s.version), id.clone());
        metadata.insert("snapshot.json".to_string(), id);
    }
    for role in set.targets_roles() {
        if let Some(t) = set.targets(role) {
            let id = put(t.raw())?;
            metadata.insert(format!("{}.{role}.json", t.version), id.clone());
            metadata.insert(format!("{role}.json"), id);
        }
    }
    Ok(metadata)
}

/// The served names of the stored targets: `HASH.name` (consistent snapshots) and the path.
/// Targets left out of a partial bundle are not served.
fn served_targets(
    cache: &Cache,
    targets: &[TargetInfo],
    consistent: bool,
) -> BTreeMap<String, TargetEntry> {
    let mut served = BTreeMap::new();
    for t in targets {
        let Some(id) = ObjectId::for_target(t) else {
            continue;
        };
        if !cache.store.contains(&id) {
            continue;
        }
        let entry = TargetEntry {
            object: id,
            length: t.length(),
        };
        served
            .entry(t.file_name(consistent))
            .or_insert_with(|| entry.clone());
        served.entry(t.path().to_string()).or_insert(entry);
    }
    served
}

/// Warnings for `/status` about a listing: refused targets and subtrees cut short.
fn listing_warnings(listing: &tuf::TargetListing, max_roles: usize) -> Vec<String> {
    let mut out = refused_warnings(&listing.refused);
    out.extend(listing.truncated.iter().map(|d| {
        format!("targets below delegation {d} not all mirrored: more than {max_roles} roles")
    }));
    out
}

/// Warnings (shown in `/status`) for targets the delegation search did not authorise: they are
/// not mirrored. At most 20 are named.
fn refused_warnings(refused: &[tuf::RefusedTarget]) -> Vec<String> {
    const SHOWN: usize = 20;
    let mut out: Vec<String> = refused
        .iter()
        .take(SHOWN)
        .map(|r| {
            format!(
                "target {} (listed by {}) not mirrored: {}",
                r.path,
                r.listed_by.join(", "),
                r.reason
            )
        })
        .collect();
    if refused.len() > SHOWN {
        out.push(format!(
            "{} more unauthorised targets not mirrored",
            refused.len() - SHOWN
        ));
    }
    out
}

/// Verify what `source` offers without syncing targets or changing the trusted state: the full
/// client workflow and the listing (every targets role), not persisted. When the source is
/// complete and its timestamp is newer than `newer_than`, the verified state is adopted
/// (persisted) so that the sync that follows starts from it; a source that withholds part of a
/// newer state never changes the trusted one. Returns the source's timestamp version.
pub fn probe(
    cache: &Cache,
    settings: &SyncSettings,
    fetcher: Arc<dyn Fetcher>,
    source: &Source,
    newer_than: u64,
) -> Result<u64> {
    let mut up = client(cache, settings, fetcher, source, false)?;
    up.refresh()?;
    up.all_targets(settings.max_roles)?;
    let version = up.timestamp_version();
    if version > newer_than {
        up.adopt()?;
    }
    Ok(version)
}
