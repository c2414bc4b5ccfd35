//! Mirroring a listing's targets into the store: each missing object rebuilt from a stored
//! version and signed deltas when that is cheaper, else downloaded; verified either way.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use node::delta::Choice;
use node::fault::fault;
use tuf::{Fetcher, TargetInfo, Updater};

use super::{Cache, Source, SyncSettings};
use crate::error::Result;
use crate::store::ObjectId;

/// What a sync stored: files and bytes downloaded, targets missing from a partial source,
/// targets rebuilt from deltas (and the bytes their full files would have cost).
#[derive(Debug, Default)]
pub(super) struct Fetched {
    pub files: u64,
    pub bytes: u64,
    pub missing: u64,
    pub rebuilt: u64,
    pub rebuilt_full_bytes: u64,
    pub notes: Vec<String>,
}

/// Store every target whose object is not stored yet: rebuilt from a stored version and signed
/// deltas when that costs fewer bytes (the link to the upstream carries deltas), else
/// downloaded; verified either way before it is stored.
pub(super) fn fetch_targets(
    cache: &Cache,
    settings: &SyncSettings,
    up: &mut Updater<Arc<dyn Fetcher>>,
    source: &Source,
    targets: &[TargetInfo],
) -> Result<Fetched> {
    let todo = missing_objects(cache, targets);
    let mut m = Mirror {
        cache,
        up,
        source,
        deltas: node::delta::Deltas::from_listing(targets),
        held: held_objects(cache, targets)?,
        got: Fetched::default(),
    };
    let total: u64 = todo.iter().map(|(ts, _)| ts[0].length()).sum();
    let bar = crate::progress::bar(settings.progress, total, "mirroring targets");
    let started = Instant::now();
    for (group, id) in todo {
        let t = group[0];
        if !cache.store.contains(&id) {
            if let Err(e) = m.store(&group, &id) {
                bar.abandon();
                return Err(e);
            }
        }
        bar.inc(t.length());
    }
    bar.finish_and_clear();
    let got = m.got;
    if got.files > 0 || got.rebuilt > 0 {
        tracing::info!(
            files = got.files,
            bytes = got.bytes,
            rebuilt = got.rebuilt,
            secs = started.elapsed().as_secs_f64(),
            "targets mirrored and verified"
        );
    }
    Ok(got)
}

/// The listed objects not stored yet, each with every path listing it (in listing order).
fn missing_objects<'t>(
    cache: &Cache,
    targets: &'t [TargetInfo],
) -> Vec<(Vec<&'t TargetInfo>, ObjectId)> {
    let mut index: HashMap<ObjectId, usize> = HashMap::new();
    let mut todo: Vec<(Vec<&TargetInfo>, ObjectId)> = Vec::new();
    for t in targets {
        let Some(id) = ObjectId::for_target(t) else {
            tracing::warn!(
                target = t.path(),
                "target lists neither sha256 nor sha512: not mirrored"
            );
            continue;
        };
        if cache.store.contains(&id) {
            continue;
        }
        match index.get(&id) {
            Some(&i) => todo[i].0.push(t),
            None => {
                index.insert(id.clone(), todo.len());
                todo.push((vec![t], id));
            }
        }
    }
    todo
}

/// What became of a rebuild from deltas.
enum Rebuild {
    Done,
    /// No delta produces the file.
    NotOffered,
    /// Deltas are offered but none is taken, and why (no base held, dearer, over budget).
    Declined(String),
    /// A route was taken and failed, and why.
    Failed(String),
}

/// One sync's mirroring: where from, what it holds, what it did.
struct Mirror<'a> {
    cache: &'a Cache,
    up: &'a mut Updater<Arc<dyn Fetcher>>,
    source: &'a Source,
    deltas: node::delta::Deltas,
    held: HashMap<String, ObjectId>,
    got: Fetched,
}

impl Mirror<'_> {
    /// Store object `id`, listed as each of `group`: rebuilt from deltas for any of them, else
    /// downloaded. What a partial source lacks, or a rebuild that failed, is noted with why.
    fn store(&mut self, group: &[&TargetInfo], id: &ObjectId) -> Result<()> {
        let mut why = None;
        for t in group {
            match self.rebuilt(t, id) {
                Rebuild::Done => return Ok(()),
                Rebuild::NotOffered => {}
                Rebuild::Declined(w) | Rebuild::Failed(w) => why = why.or(Some(w)),
            }
        }
        let t = group[0];
        self.download(t, id)?;
        if !self.cache.store.contains(id) {
            let why = why.unwrap_or_else(|| "no delta produces it".into());
            let line = format!("{}: not in the bundle and not rebuilt ({why})", t.path());
            self.got.notes.push(line);
        }
        Ok(())
    }

    /// Download `t` as object `id` (a partial source may lack it: counted missing).
    fn download(&mut self, t: &TargetInfo, id: &ObjectId) -> Result<()> {
        let dest = self.cache.store.path(id);
        match self
            .up
            .download_target_to(t, &dest, &self.source.targets_url)
        {
            Ok(()) => {
                self.got.files += 1;
                self.got.bytes += t.length();
                fault("after-first-download");
                Ok(())
            }
            Err(tuf::Error::Fetch(tuf::FetchError::NotFound { .. }))
                if self.source.allow_missing_targets =>
            {
                self.got.missing += 1;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Rebuild `t` as object `id` from deltas. Deltas fetched on the way are stored (the relay
    /// serves them too); a failed rebuild is noted.
    fn rebuilt(&mut self, t: &TargetInfo, id: &ObjectId) -> Rebuild {
        let (cache, held) = (self.cache, &self.held);
        let stored = |p: &str| {
            held.get(p)
                .filter(|id| cache.store.contains(id))
                .map(|id| cache.store.path(id))
        };
        let route = match self.deltas.choose(t, stored) {
            Choice::Route(r) => r,
            Choice::Full(None) => return Rebuild::NotOffered,
            Choice::Full(Some(why)) => {
                tracing::info!(target = t.path(), "{why}");
                return Rebuild::Declined(why);
            }
        };
        let (up, source, got) = (&mut *self.up, self.source, &mut self.got);
        let mut fetch = |d: &TargetInfo, to: &Path| -> std::result::Result<(), String> {
            let id = ObjectId::for_target(d).ok_or("the delta lists no sha256 or sha512")?;
            if !cache.store.contains(&id) {
                up.download_target_to(d, &cache.store.path(&id), &source.targets_url)
                    .map_err(|e| e.to_string())?;
                got.files += 1;
                got.bytes += d.length();
            }
            std::fs::copy(cache.store.path(&id), to).map_err(|e| e.to_string())?;
            Ok(())
        };
        match node::delta::rebuild(&route, &mut fetch, &cache.store.path(id)) {
            Ok(()) => {
                tracing::info!(target = t.path(), "rebuilt from {}", route.describe());
                self.got.rebuilt += 1;
                self.got.rebuilt_full_bytes += t.length();
                Rebuild::Done
            }
            Err(why) => {
                let line = format!("{}: rebuilding from deltas failed: {why}", t.path());
                tracing::warn!("{line}");
                self.got.notes.push(line);
                Rebuild::Failed(why.to_string())
            }
        }
    }
}

/// The objects of target paths: the new listing's and the view in service's (older versions
/// the new listing may no longer list are bases too). A path is held while its object is
/// stored, so a file rebuilt earlier in the same sync is a base for the next.
fn held_objects(cache: &Cache, targets: &[TargetInfo]) -> Result<HashMap<String, ObjectId>> {
    let mut held = HashMap::new();
    if let Some(view) = cache.views.current()? {
        for (path, t) in view.targets {
            held.insert(path, t.object);
        }
    }
    for t in targets {
        if let Some(id) = ObjectId::for_target(t) {
            held.insert(t.path().to_string(), id);
        }
    }
    Ok(held)
}
