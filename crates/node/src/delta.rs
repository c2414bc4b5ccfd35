//! Rebuilding a target from a file this host holds and signed deltas, as agents and relays
//! both do: find the route with the fewest bytes to download (one delta, or a short chain
//! through intermediate versions), and use it only if it costs less than the full file. Every
//! step's result is checked against the signed length and hashes of the full target it
//! claims to produce before it is used as the next base or handed over, so a bad delta, a
//! wrong base or a corrupted file costs bytes, never trust: the caller downloads the full file
//! instead and records why.
//!
//! Memory: a step holds its base in memory plus what [`delta::apply_memory`] adds (the zstd
//! window, at most the target's length, or the bsdiff patch). A route whose step would need
//! more than [`MEMORY_BUDGET`] is not taken.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use model::delta::DeltaInfo;
use tuf::TargetInfo;

/// At most this many deltas in a row.
pub const MAX_CHAIN: usize = 4;

/// At most this many deltas producing one file are considered (the smallest), and at most
/// [`MAX_PATHS`] partial routes are followed, so a listing with many deltas cannot make the
/// search explode.
pub const MAX_PER_TARGET: usize = 16;
pub const MAX_PATHS: usize = 256;

/// The most memory one step may need (base, window or patch, buffers): 1 GiB, the budget the
/// publisher makes deltas for.
pub use delta::MEMORY_BUDGET;

/// One delta of a route: its verified target, its description, and the full target its
/// result must match.
#[derive(Debug, Clone)]
pub struct Step {
    pub delta: TargetInfo,
    pub info: DeltaInfo,
    pub produces: TargetInfo,
}

/// A way to a full target from a file held locally.
#[derive(Debug, Clone)]
pub struct Route {
    /// The local file the first delta applies to (the file of `steps[0].info.base`).
    pub base: PathBuf,
    pub steps: Vec<Step>,
    /// Bytes to download: the sum of the deltas' signed lengths.
    pub bytes: u64,
}

impl Route {
    /// `from 18.1 (272 bytes)` or `from 18.1 via 18.2, 18.3 (3 deltas, 900 bytes)`.
    pub fn describe(&self) -> String {
        let from = self
            .steps
            .first()
            .map(|s| s.info.from.as_str())
            .unwrap_or("");
        let via: Vec<&str> = self
            .steps
            .iter()
            .skip(1)
            .map(|s| s.info.from.as_str())
            .collect();
        if via.is_empty() {
            format!("delta from {from} ({} bytes)", self.bytes)
        } else {
            format!(
                "deltas from {from} via {} ({} deltas, {} bytes)",
                via.join(", "),
                self.steps.len(),
                self.bytes
            )
        }
    }
}

/// What a listing offers for rebuilding: deltas by the path they produce, full targets by path.
#[derive(Debug)]
pub struct Deltas {
    /// The most memory one step may use ([`MEMORY_BUDGET`] unless set).
    budget: u64,
    producing: HashMap<String, Vec<(TargetInfo, DeltaInfo)>>,
    full: HashMap<String, TargetInfo>,
    /// Deltas whose description is invalid, with why (never used).
    pub invalid: Vec<String>,
}

/// What to do for one target: the route to take, or why the full file is downloaded.
#[derive(Debug)]
pub enum Choice {
    Route(Route),
    /// The full file; `Some(why)` when deltas were offered but none is taken (no base held,
    /// dearer than the file, over the memory budget).
    Full(Option<String>),
}

impl Deltas {
    /// Index the authorised targets of one listing.
    pub fn from_listing<'a>(targets: impl IntoIterator<Item = &'a TargetInfo>) -> Self {
        let mut out = Deltas {
            budget: MEMORY_BUDGET,
            producing: HashMap::new(),
            full: HashMap::new(),
            invalid: Vec::new(),
        };
        for t in targets {
            match DeltaInfo::for_target(t.path(), t.custom()) {
                Ok(Some(info)) => out
                    .producing
                    .entry(info.produces.clone())
                    .or_default()
                    .push((t.clone(), info)),
                Ok(None) => {
                    out.full.insert(t.path().to_string(), t.clone());
                }
                Err(e) => out.invalid.push(e.to_string()),
            }
        }
        out
    }

    /// A smaller memory budget per step (a host with little memory; never above
    /// [`MEMORY_BUDGET`]).
    pub fn with_budget(mut self, budget: u64) -> Self {
        self.budget = budget.min(MEMORY_BUDGET);
        self
    }

    /// Whether any delta produces `path`.
    pub fn offered(&self, path: &str) -> bool {
        self.producing.contains_key(path)
    }

    /// The cheapest way to `want`: a route from a file `held` returns (a local file holding
    /// the given target path, if this host has one) when its deltas cost fewer bytes than the
    /// full file, else the full file and, when deltas were offered, why none is taken.
    pub fn choose(&self, want: &TargetInfo, held: impl Fn(&str) -> Option<PathBuf>) -> Choice {
        if !self.offered(want.path()) {
            return Choice::Full(None);
        }
        let (routes, over_budget) = self.routes(want, &held);
        let best = routes.into_iter().min_by_key(|r| (r.bytes, r.steps.len()));
        let why = match best {
            Some(r) if r.bytes < want.length() => return Choice::Route(r),
            Some(r) => format!(
                "the cheapest {} costs more than the full file ({} bytes)",
                r.describe(),
                want.length()
            ),
            None if over_budget => format!(
                "every delta route to {} needs more than the {} MiB a step may use",
                want.path(),
                self.budget >> 20
            ),
            None => format!(
                "no delta to {} starts from a version this host holds (offered from {})",
                want.path(),
                self.froms(want.path()).join(", ")
            ),
        };
        Choice::Full(Some(why))
    }

    fn froms(&self, path: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .producing
            .get(path)
            .map(|ds| ds.iter().map(|(_, i)| i.from.clone()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Every route of at most [`MAX_CHAIN`] deltas ending at `want` that starts at a held file
    /// and whose steps stay within the memory budget. Walks backwards from `want`: a step's
    /// base may be an intermediate only if it is a listed full target (its result is checked
    /// against it).
    /// Also whether a route from a held file was left out for the memory budget.
    fn routes(
        &self,
        want: &TargetInfo,
        held: &dyn Fn(&str) -> Option<PathBuf>,
    ) -> (Vec<Route>, bool) {
        let mut done = Vec::new();
        let mut over_budget = false;
        // (path to reach, steps after it, bytes so far)
        let mut frontier: Vec<(String, Vec<Step>, u64)> =
            vec![(want.path().to_string(), Vec::new(), 0)];
        for _ in 0..MAX_CHAIN {
            let mut next = Vec::new();
            for (path, after, bytes) in frontier {
                let Some(produces) = self
                    .full
                    .get(&path)
                    .or((path == want.path()).then_some(want))
                else {
                    continue;
                };
                for (delta, info) in self.smallest_producing(&path) {
                    if after
                        .iter()
                        .any(|s| s.info.base == info.base || s.info.produces == info.base)
                    {
                        continue;
                    }
                    let mut steps = vec![Step {
                        delta: delta.clone(),
                        info: info.clone(),
                        produces: produces.clone(),
                    }];
                    steps.extend(after.iter().cloned());
                    let bytes = bytes.saturating_add(delta.length());
                    if let Some(base) = held(&info.base) {
                        let route = Route {
                            base,
                            steps: steps.clone(),
                            bytes,
                        };
                        if within_budget(&route, self.budget) {
                            done.push(route);
                        } else {
                            over_budget = true;
                        }
                    }
                    next.push((info.base.clone(), steps, bytes));
                }
            }
            next.truncate(MAX_PATHS);
            frontier = next;
        }
        (done, over_budget)
    }

    /// The [`MAX_PER_TARGET`] smallest deltas producing `path`.
    fn smallest_producing(&self, path: &str) -> Vec<&(TargetInfo, DeltaInfo)> {
        let mut v: Vec<_> = self.producing.get(path).into_iter().flatten().collect();
        v.sort_by_key(|(d, _)| d.length());
        v.truncate(MAX_PER_TARGET);
        v
    }
}

/// Whether every step of `route` fits in `budget`.
fn within_budget(route: &Route, budget: u64) -> bool {
    let mut base_len = std::fs::metadata(&route.base)
        .map(|m| m.len())
        .unwrap_or(u64::MAX);
    route.steps.iter().all(|s| {
        let need = delta::apply_memory(
            s.info.algorithm,
            base_len,
            s.delta.length(),
            s.produces.length(),
        );
        base_len = s.produces.length();
        need <= budget
    })
}

/// Why a route failed (the full file is downloaded instead).
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Carry out `route` into `dest`: `fetch` downloads a delta target (verified against its
/// signed length and hashes) to the given path; every step's result is verified against the
/// full target it produces; `dest` appears only holding the verified final result.
pub fn rebuild(
    route: &Route,
    fetch: &mut dyn FnMut(&TargetInfo, &Path) -> Result<(), String>,
    dest: &Path,
) -> Result<(), Failure> {
    let dir = tuf::fsutil::parent_dir(dest);
    let io = |what: &str, e: &dyn fmt::Display| Failure(format!("{what}: {e}"));
    tuf::fsutil::create_dir_all(&dir).map_err(|e| io("creating the directory", &e))?;
    let mut base = std::fs::read(&route.base)
        .map_err(|e| io(&format!("reading the base {}", route.base.display()), &e))?;
    let mut last = None;
    let n = route.steps.len();
    for (i, s) in route.steps.iter().enumerate() {
        let d = &s.delta;
        let delta_file = tuf::fsutil::tempfile_in(&dir).map_err(|e| io("temporary file", &e))?;
        fetch(d, delta_file.path()).map_err(|e| Failure(format!("delta {}: {e}", d.path())))?;
        let out = tuf::fsutil::tempfile_in(&dir).map_err(|e| io("temporary file", &e))?;
        let reader = std::fs::File::open(delta_file.path()).map_err(|e| io(d.path(), &e))?;
        let mut w = BufWriter::new(out.as_file());
        delta::apply(s.info.algorithm, &base, reader, s.produces.length(), &mut w)
            .map_err(|e| Failure(format!("delta {} from {}: {e}", d.path(), s.info.from)))?;
        w.flush().map_err(|e| io(d.path(), &e))?;
        drop(w);
        tuf::verify_file(&s.produces, out.path()).map_err(|e| {
            Failure(format!(
                "delta {} rebuilt a file that does not match the signed {}: {e}",
                d.path(),
                s.produces.path()
            ))
        })?;
        if i + 1 < n {
            base = std::fs::read(out.path()).map_err(|e| io("reading an intermediate", &e))?;
        }
        last = Some(out);
    }
    let out = last.ok_or_else(|| Failure("a route without deltas".into()))?;
    crate::fault::fault("delta-before-persist");
    out.as_file().sync_all().map_err(|e| io("sync", &e))?;
    out.persist(dest)
        .map_err(|e| io(&dest.display().to_string(), &e.error))?;
    tuf::fsutil::sync_dir(&dir);
    Ok(())
}

#[cfg(test)]
mod tests;
