//! Offline bundles for air-gapped sites: one tar archive with a manifest (bundle format version),
//! the whole root chain, the current metadata and the targets. Importing runs the same TUF client
//! workflow as a network sync, with the unpacked bundle as the upstream, so a bundle is trusted
//! exactly as much as its signatures allow, whatever build wrote it.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;
use std::sync::Arc;

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::ObjectId;
use crate::sync::{sync_from, Cache, Source, SyncOutcome, SyncSettings};
use crate::view::{Manifest, TargetEntry, Versions};
use model::delta::DeltaInfo;

/// The bundle format this build writes and reads.
pub const BUNDLE_FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
/// Upper bound on the manifest's size (it is read before anything is verified).
const MANIFEST_MAX: u64 = 64 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleTarget {
    pub path: String,
    pub length: u64,
}

/// `manifest.json`, the first member of a bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format: u32,
    pub created: String,
    pub producer: String,
    pub versions: Versions,
    /// Components included (empty: all targets).
    pub components: Vec<String>,
    /// Deltas carried in place of full files: the full files deltas produce or start from are
    /// left out (the importing site holds the older versions and rebuilds the new ones).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deltas: bool,
    pub metadata: Vec<String>,
    pub targets: Vec<BundleTarget>,
}

fn component_of(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    (parts.next() == Some("content"))
        .then(|| parts.next())
        .flatten()
}

fn bundle_err(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Bundle {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// What a bundle carries.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only targets of these components (empty: all).
    pub components: Vec<String>,
    /// Deltas in place of the full files they produce or start from.
    pub deltas: bool,
}

/// Write the view in service as a bundle at `out` (all targets, or those `selection` names).
pub fn export(
    cache_dir: &Path,
    out: &Path,
    selection: &Selection,
    progress: bool,
) -> Result<BundleManifest> {
    let components = &selection.components;
    let cache = Cache::open(cache_dir)?;
    let view = cache
        .views
        .current()?
        .ok_or_else(|| Error::NoView(cache_dir.to_path_buf()))?;
    let mut chosen = choose_targets(&view, components);
    if selection.deltas {
        let carried: HashSet<&ObjectId> = chosen.values().map(|t| &t.object).collect();
        let replaced = replaced_by_deltas(&cache, &view, &carried)?;
        chosen.retain(|_, t| !replaced.contains(&t.object));
    }
    let manifest = BundleManifest {
        format: BUNDLE_FORMAT,
        created: node::clock::now_string(),
        producer: format!("updraft {}", env!("CARGO_PKG_VERSION")),
        versions: view.versions.clone(),
        components: components.to_vec(),
        deltas: selection.deltas,
        metadata: view.metadata.keys().cloned().collect(),
        targets: chosen
            .iter()
            .map(|(p, t)| BundleTarget {
                path: p.clone(),
                length: t.length,
            })
            .collect(),
    };
    let dir = tuf::fsutil::parent_dir(out);
    let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| Error::io(&dir, e))?;
    let total: u64 = chosen.values().map(|t| t.length).sum();
    let bar = crate::progress::bar(progress, total, "writing bundle");
    let members = Members {
        cache: &cache,
        view: &view,
        chosen: &chosen,
    };
    write_tar(tmp.as_file(), &manifest, &members, out, &bar)?;
    bar.finish_and_clear();
    tmp.persist(out).map_err(|e| Error::io(out, e.error))?;
    Ok(manifest)
}

/// The targets of `view` a bundle carries: those of `components` (all if empty), one file per
/// object, under the name clients request (the hash-prefixed one when there is).
fn choose_targets<'a>(
    view: &'a Manifest,
    components: &[String],
) -> BTreeMap<String, &'a TargetEntry> {
    let mut chosen: BTreeMap<String, &TargetEntry> = BTreeMap::new();
    let mut prefixed: HashSet<&crate::store::ObjectId> = HashSet::new();
    for (path, t) in &view.targets {
        let name = path.rsplit('/').next().unwrap_or(path);
        if name.starts_with(&format!("{}.", t.object.hex)) {
            prefixed.insert(&t.object);
        }
    }
    for (path, t) in &view.targets {
        if !components.is_empty()
            && !component_of(path).is_some_and(|c| components.iter().any(|w| w == c))
        {
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        if name.starts_with(&format!("{}.", t.object.hex)) || !prefixed.contains(&t.object) {
            chosen.insert(path.clone(), t);
        }
    }
    chosen
}

/// The objects of the full files that the carried deltas produce or start from: what a bundle
/// of deltas leaves out. Only deltas that hosts can apply count (valid description, carried
/// (`carried`: the objects the bundle holds), in the view with their base and the file they
/// produce, within the memory budget of a step).
fn replaced_by_deltas<'v>(
    cache: &Cache,
    view: &'v Manifest,
    carried: &HashSet<&ObjectId>,
) -> Result<HashSet<&'v ObjectId>> {
    let mut out = HashSet::new();
    for d in view_deltas(cache, view)? {
        let entry = |p: &str| view.targets.get(p);
        let (Some(delta), Some(base), Some(full)) =
            (entry(&d.target_path()), entry(&d.base), entry(&d.produces))
        else {
            continue;
        };
        let need = delta::apply_memory(d.algorithm, base.length, delta.length, full.length);
        if need <= delta::MEMORY_BUDGET && carried.contains(&delta.object) {
            out.insert(&base.object);
            out.insert(&full.object);
        }
    }
    Ok(out)
}

/// The deltas the view's targets roles describe, read from the verified metadata the view
/// serves (each role once: its unversioned name).
fn view_deltas(cache: &Cache, view: &Manifest) -> Result<Vec<DeltaInfo>> {
    let mut out = Vec::new();
    for (name, id) in &view.metadata {
        let versioned = name
            .split_once('.')
            .is_some_and(|(v, _)| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
        if versioned || ["root.json", "timestamp.json", "snapshot.json"].contains(&name.as_str()) {
            continue;
        }
        let role: serde_json::Value = serde_json::from_slice(&cache.store.read_verified(id)?)
            .map_err(|e| Error::Other(format!("metadata {name} in the view: {e}")))?;
        let Some(targets) = role["signed"]["targets"].as_object() else {
            continue;
        };
        for (path, t) in targets {
            if let Ok(Some(d)) = DeltaInfo::for_target(path, t.get("custom")) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

/// What goes into a bundle after its manifest: the view's metadata and the chosen targets,
/// read from the cache's object store.
struct Members<'a> {
    cache: &'a Cache,
    view: &'a Manifest,
    chosen: &'a BTreeMap<String, &'a TargetEntry>,
}

/// Write the tar archive (manifest first) to `file` and sync it; errors name `out`.
fn write_tar(
    file: &File,
    manifest: &BundleManifest,
    members: &Members,
    out: &Path,
    bar: &ProgressBar,
) -> Result<()> {
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let manifest_bytes =
        serde_json::to_vec_pretty(manifest).map_err(|e| Error::Other(e.to_string()))?;
    append_bytes(&mut tar, MANIFEST, &manifest_bytes, out)?;
    for (name, id) in &members.view.metadata {
        let src = members.cache.store.path(id);
        tar.append_path_with_name(&src, format!("metadata/{name}"))
            .map_err(|e| bundle_err(out, e))?;
    }
    for (path, t) in members.chosen {
        let src = members.cache.store.path(&t.object);
        tar.append_path_with_name(&src, format!("targets/{path}"))
            .map_err(|e| bundle_err(out, e))?;
        bar.inc(t.length);
    }
    tar.into_inner()
        .map_err(|e| bundle_err(out, e))?
        .into_inner()
        .map_err(|e| bundle_err(out, e.error()))?
        .sync_all()
        .map_err(|e| Error::io(out, e))
}

fn append_bytes<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    out: &Path,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)
        .map_err(|e| bundle_err(out, e))
}

/// Read only the manifest of a bundle (the first member), checking the format version.
pub fn read_manifest(bundle: &Path) -> Result<BundleManifest> {
    let file = File::open(bundle).map_err(|e| Error::io(bundle, e))?;
    let mut archive = tar::Archive::new(file);
    let mut entries = archive.entries().map_err(|e| bundle_err(bundle, e))?;
    let first = entries
        .next()
        .ok_or_else(|| bundle_err(bundle, "empty archive"))?
        .map_err(|e| bundle_err(bundle, e))?;
    let name = first
        .path()
        .map_err(|e| bundle_err(bundle, e))?
        .to_string_lossy()
        .into_owned();
    if name != MANIFEST {
        return Err(bundle_err(
            bundle,
            format!("first member is {name:?}, not {MANIFEST}: not an Updraft bundle"),
        ));
    }
    let mut bytes = Vec::new();
    first
        .take(MANIFEST_MAX)
        .read_to_end(&mut bytes)
        .map_err(|e| bundle_err(bundle, e))?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bundle_err(bundle, format!("manifest: {e}")))?;
    let format = v.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
    if format != u64::from(BUNDLE_FORMAT) {
        return Err(bundle_err(
            bundle,
            format!("bundle format {format} is not supported by this build (it reads format {BUNDLE_FORMAT})"),
        ));
    }
    serde_json::from_value(v).map_err(|e| bundle_err(bundle, format!("manifest: {e}")))
}

/// Verify a bundle with the TUF client workflow and serve it: unpack it next to the cache, then
/// sync from the unpacked copy as if it were an upstream.
pub fn import(cache_dir: &Path, bundle: &Path, settings: &SyncSettings) -> Result<SyncOutcome> {
    let manifest = read_manifest(bundle)?;
    let cache = Cache::open(cache_dir)?;
    let staging = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(&cache.dir)
        .map_err(|e| Error::io(&cache.dir, e))?;
    let total: u64 = manifest.targets.iter().map(|t| t.length).sum();
    let bar = crate::progress::bar(settings.progress, total, "unpacking bundle");
    unpack(bundle, staging.path(), &bar)?;
    bar.finish_and_clear();
    let source = Source {
        label: format!("bundle {}", bundle.display()),
        metadata_url: staging
            .path()
            .join("metadata")
            .to_string_lossy()
            .into_owned(),
        targets_url: staging
            .path()
            .join("targets")
            .to_string_lossy()
            .into_owned(),
        allow_missing_targets: true,
    };
    let fetcher: Arc<dyn tuf::Fetcher> = Arc::new(tuf::FileFetcher);
    sync_from(&cache, settings, fetcher, &source)
}

/// Unpack the `metadata/` and `targets/` members of `bundle` into `staging`, refusing any other
/// member, anything but regular files and directories, and members that would land outside.
fn unpack(bundle: &Path, staging: &Path, bar: &ProgressBar) -> Result<()> {
    let file = File::open(bundle).map_err(|e| Error::io(bundle, e))?;
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries().map_err(|e| bundle_err(bundle, e))? {
        let mut entry = entry.map_err(|e| bundle_err(bundle, e))?;
        let path = entry
            .path()
            .map_err(|e| bundle_err(bundle, e))?
            .into_owned();
        let first = path
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        match first.as_deref() {
            Some("metadata") | Some("targets") => {}
            _ if path == Path::new(MANIFEST) => continue,
            _ => {
                return Err(bundle_err(
                    bundle,
                    format!("unexpected member {}", path.display()),
                ))
            }
        }
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Directory
        ) {
            return Err(bundle_err(
                bundle,
                format!("{} is not a regular file", path.display()),
            ));
        }
        let size = entry.size();
        // unpack_in refuses members that would land outside the staging directory.
        let inside = entry
            .unpack_in(staging)
            .map_err(|e| bundle_err(bundle, e))?;
        if !inside {
            return Err(bundle_err(
                bundle,
                format!("{} escapes the bundle", path.display()),
            ));
        }
        bar.inc(size);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::delta::Algorithm;

    /// A view whose targets metadata lists `deltas` (from → to, delta length) over full files of
    /// `full_len` bytes; objects are stand-ins (only the metadata is read).
    fn view_with(cache: &Cache, full_len: u64, deltas: &[(&str, &str, u64)]) -> Manifest {
        let path = |v: &str| format!("content/antimalware.pattern/{v}/p.dat");
        let mut targets = serde_json::Map::new();
        let mut served = BTreeMap::new();
        let entry = |n: u8, length| TargetEntry {
            object: ObjectId::sha256(&format!("{n:064x}")),
            length,
        };
        for (i, v) in ["1.0", "2.0", "3.0"].iter().enumerate() {
            served.insert(path(v), entry(i as u8, full_len));
        }
        for (i, (from, to, len)) in deltas.iter().enumerate() {
            let d = DeltaInfo {
                component: "antimalware.pattern".into(),
                from: (*from).into(),
                to: (*to).into(),
                algorithm: Algorithm::Zstd,
                base: path(from),
                produces: path(to),
            };
            targets.insert(
                d.target_path(),
                serde_json::json!({"length": len, "hashes": {}, "custom": d.to_custom()}),
            );
            served.insert(d.target_path(), entry(100 + i as u8, *len));
        }
        let role = serde_json::json!({"signed": {"targets": targets}});
        let id = cache
            .store
            .put_bytes(&serde_json::to_vec(&role).unwrap())
            .unwrap();
        Manifest::of(BTreeMap::from([("targets.json".to_string(), id)]), served)
    }

    #[test]
    fn a_bundle_of_deltas_leaves_out_only_what_hosts_can_rebuild() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(tmp.path()).unwrap();
        let view = view_with(&cache, 1 << 20, &[("2.0", "3.0", 900)]);
        let all: HashSet<&ObjectId> = view.targets.values().map(|t| &t.object).collect();
        let replaced = replaced_by_deltas(&cache, &view, &all).unwrap();
        let objects =
            |v: &str| &view.targets[&format!("content/antimalware.pattern/{v}/p.dat")].object;
        assert!(replaced.contains(objects("2.0")) && replaced.contains(objects("3.0")));
        assert!(!replaced.contains(objects("1.0")));

        // A delegated role whose name starts with a digit is read too.
        let mut dated = view.clone();
        let id = dated.metadata.remove("targets.json").unwrap();
        dated.metadata.insert("2026-q1.json".into(), id);
        assert_eq!(replaced_by_deltas(&cache, &dated, &all).unwrap().len(), 2);

        // A delta the bundle does not carry (another component's filter) replaces nothing.
        let none = HashSet::new();
        assert!(replaced_by_deltas(&cache, &view, &none).unwrap().is_empty());

        // Files too large for a host to apply the delta within its memory budget stay in.
        let view = view_with(&cache, 700 << 20, &[("2.0", "3.0", 900)]);
        let all: HashSet<&ObjectId> = view.targets.values().map(|t| &t.object).collect();
        assert!(replaced_by_deltas(&cache, &view, &all).unwrap().is_empty());
    }
}
