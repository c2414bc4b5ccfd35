//! Where a cycle's metadata and targets come from: refresh from the first source that answers
//! (failing over in order), catch up with a later relay that offers a newer verified state, and
//! download targets from whichever source serves the verified bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use node::delta::Choice;
use tuf::{TargetInfo, TimestampUpdate, Updater, UpdaterConfig};

use crate::cycle::Cycle;
use crate::error::{Error, Result};
use crate::plan::MAX_ROLES;
use crate::Agent;

/// The TUF client over the agent's fetcher.
pub(crate) type Client = Updater<Arc<dyn tuf::Fetcher>>;

/// A client refreshed from one source.
pub(crate) struct Refreshed {
    pub up: Client,
    pub source: String,
    /// The refresh found the timestamp already trusted.
    pub unchanged: bool,
}

impl Agent {
    /// A client over `base`; with `persist` false it only verifies (a probe, see `catch_up`).
    fn updater_with(&self, base: &str, persist: bool) -> Result<Client> {
        let config = UpdaterConfig {
            keep_root_history: true,
            persist,
            ..UpdaterConfig::default()
        };
        Ok(Updater::new(
            self.state.tuf_dir(),
            &format!("{}/metadata", base.trim_end_matches('/')),
            self.anchor.clone(),
            self.fetcher.clone(),
            config,
        )?)
    }

    /// Refresh from the first of the cycle's sources that answers, then catch up with any later
    /// relay that offers a newer verified timestamp (see [`Agent::catch_up`]). Sources passed
    /// over are noted in the cycle (lagging or rejected). Every source's error when none answers.
    pub(crate) fn refresh(
        &self,
        cy: &mut Cycle,
    ) -> std::result::Result<Refreshed, Vec<(String, tuf::Error)>> {
        let sources = cy.sources.clone();
        let mut errors = Vec::new();
        for (i, (base, _direct)) in sources.iter().enumerate() {
            let mut up = match self.updater_with(base, true) {
                Ok(u) => u,
                Err(e) => {
                    errors.push((base.clone(), tuf::Error::Repository(e.to_string())));
                    continue;
                }
            };
            match up.refresh() {
                Ok(out) => {
                    let first = Refreshed {
                        up,
                        source: base.clone(),
                        unchanged: out.timestamp == TimestampUpdate::Unchanged,
                    };
                    // Later relays only: going to the origin is the fallback, not a comparison.
                    let later: Vec<&str> = sources
                        .iter()
                        .skip(i.saturating_add(1))
                        .filter(|(_, direct)| !direct)
                        .map(|(s, _)| s.as_str())
                        .collect();
                    return Ok(self.catch_up(first, &later, cy));
                }
                Err(e) => {
                    cy.passed_over(base, &e);
                    errors.push((base.clone(), e));
                }
            }
        }
        Err(errors)
    }

    /// A source that answers may serve an old but valid view (a lagging relay). Compare it
    /// with every later relay by refreshing from each with the same trusted state: the full
    /// client workflow verifies what they offer (signatures, versions, rollback), and a newer
    /// verified timestamp makes that relay the source of this cycle. A relay behind the
    /// trusted state fails the rollback check and is reported as lagging; one that cannot be
    /// compared is reported as rejected.
    fn catch_up(&self, first: Refreshed, later: &[&str], cy: &mut Cycle) -> Refreshed {
        let mut best = first;
        let mut behind: Vec<(String, u64)> = Vec::new();
        for &other in later {
            let best_version = best.up.timestamp_version();
            match self.probe(other, best_version) {
                Ok((up, v)) if v > best_version => {
                    behind.push((best.source.clone(), best_version));
                    best = Refreshed {
                        up,
                        source: other.to_string(),
                        unchanged: false,
                    };
                }
                Ok(_) => {}
                Err(e) => match e.timestamp_rollback() {
                    Some((got, _)) => behind.push((other.to_string(), got)),
                    None => {
                        tracing::warn!(source = %node::url::Redacted(other), error = %node::url::Redacted(&e), "could not compare with this source");
                        cy.rejected.push(format!("not compared with {other}: {e}"));
                    }
                },
            }
        }
        let newest = best.up.timestamp_version();
        for (source, v) in behind {
            let msg = format!(
                "lagging {source}: {} timestamp version(s) behind {} (v{v} < v{newest})",
                newest.saturating_sub(v),
                best.source
            );
            tracing::warn!("{}", node::url::redact(&msg));
            cy.lagging.push(msg);
        }
        best
    }

    /// Refresh from `other` without persisting. Only a source that delivers everything the
    /// cycle needs (root to every targets role of the listing) and is newer than
    /// `best_version` is adopted, so a source that withholds part of a newer state never
    /// changes the trusted one. The client and the timestamp version it verified.
    fn probe(
        &self,
        other: &str,
        best_version: u64,
    ) -> std::result::Result<(Client, u64), tuf::Error> {
        let mut up = self
            .updater_with(other, false)
            .map_err(|e| tuf::Error::Repository(e.to_string()))?;
        up.refresh()?;
        up.all_targets(MAX_ROLES)?;
        let v = up.timestamp_version();
        if v > best_version {
            up.adopt()?;
        }
        Ok((up, v))
    }
}

/// A source whose timestamp is older than the one already trusted is behind (lagging), not
/// tampered with: say so, with by how much.
pub(crate) fn behind_trusted(source: &str, e: &tuf::Error) -> Option<String> {
    let (got, trusted) = e.timestamp_rollback()?;
    Some(format!(
        "lagging {source}: {} timestamp version(s) behind the trusted state (serves v{got}, trusted v{trusted}; rollback refused)",
        trusted.saturating_sub(got)
    ))
}

/// Where this host holds the file of a target path, if it does (a base deltas can start from).
pub(crate) type Held<'c> = Box<dyn Fn(&str) -> Option<PathBuf> + 'c>;

/// The downloads of one cycle: target bytes are verified against the metadata just refreshed,
/// so any source will do: the one that answered first, then the others in order. A target
/// that signed deltas produce is rebuilt from a version this host holds when that costs fewer
/// bytes (see [`node::delta`]).
pub(crate) struct Downloads<'c> {
    pub up: &'c mut Client,
    urls: Vec<String>,
    /// Sources that served wrong bytes, with why (the cycle's `rejected`).
    rejected: &'c mut Vec<String>,
    /// The deltas the listing offers.
    deltas: node::delta::Deltas,
    /// The local file holding a target path, if this host holds it.
    held: Held<'c>,
    /// What deltas did, or why they were not used (the cycle's `deltas`).
    notes: &'c mut Vec<String>,
    /// A directory of markers, one per target (named by the hash of its path) while it is
    /// rebuilt: found at the next attempt of that target, it means the agent stopped during
    /// the rebuild (killed for memory, say), and the full file is downloaded instead; the
    /// marker goes once that download succeeded.
    markers: PathBuf,
}

impl<'c> Downloads<'c> {
    pub fn new(
        up: &'c mut Client,
        source: &str,
        cy: &'c mut Cycle,
        deltas: node::delta::Deltas,
        held: Held<'c>,
        markers: PathBuf,
    ) -> Self {
        let mut urls = vec![format!("{}/targets", source.trim_end_matches('/'))];
        for (s, _) in &cy.sources {
            let u = format!("{}/targets", s.trim_end_matches('/'));
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
        Downloads {
            up,
            urls,
            rejected: &mut cy.rejected,
            deltas,
            held,
            notes: &mut cy.deltas,
            markers,
        }
    }

    /// Put `t` into `dest` unless a verified copy is there: rebuilt from deltas when that is
    /// cheaper and works, else downloaded whole. Why deltas were not used is noted.
    pub fn get(&mut self, t: &TargetInfo, dest: &Path) -> Result<()> {
        if Client::is_cached(t, dest) {
            return Ok(());
        }
        let marker = self
            .markers
            .join(tuf::crypto::sha256_hex(t.path().as_bytes()));
        let unfinished = marker.exists();
        let choice = if unfinished {
            Choice::Full(Some(
                "the last rebuild from deltas did not finish (the agent stopped during it)".into(),
            ))
        } else {
            self.deltas.choose(t, &self.held)
        };
        match choice {
            Choice::Route(route) => {
                if self.rebuild(t, &route, dest, &marker) {
                    return Ok(());
                }
            }
            Choice::Full(Some(why)) => {
                tracing::info!(target = t.path(), "full download: {why}");
                self.notes
                    .push(format!("{}: full download: {why}", t.path()));
            }
            Choice::Full(None) => {}
        }
        fetch_verified(self.up, &self.urls, self.rejected, t, dest)
            .map_err(|e| Error::Other(format!("{}: {e}", t.path())))?;
        let _ = std::fs::remove_file(&marker);
        Ok(())
    }
}

impl Downloads<'_> {
    /// Rebuild `t` into `dest` along `route` (its `marker` exists meanwhile); whether it
    /// worked. What happened is noted.
    fn rebuild(
        &mut self,
        t: &TargetInfo,
        route: &node::delta::Route,
        dest: &Path,
        marker: &Path,
    ) -> bool {
        let made =
            std::fs::create_dir_all(&self.markers).and_then(|()| std::fs::write(marker, t.path()));
        if let Err(e) = made {
            self.notes.push(format!("{}: full download: {e}", t.path()));
            return false;
        }
        let (up, urls, rejected) = (&mut *self.up, &self.urls, &mut *self.rejected);
        let mut fetch = |d: &TargetInfo, to: &Path| fetch_verified(up, urls, rejected, d, to);
        let result = node::delta::rebuild(route, &mut fetch, dest);
        let _ = std::fs::remove_file(marker);
        let line = match &result {
            Ok(()) => format!(
                "{}: rebuilt from {} instead of {} bytes",
                t.path(),
                route.describe(),
                t.length()
            ),
            Err(why) => format!("{}: full download: {why}", t.path()),
        };
        tracing::info!("{line}");
        self.notes.push(line);
        result.is_ok()
    }
}

/// Download and verify `t` into `dest`, trying each source in order: a source serving wrong
/// bytes is skipped (and noted as rejected once another one served the right ones).
fn fetch_verified(
    up: &mut Client,
    urls: &[String],
    rejected: &mut Vec<String>,
    t: &TargetInfo,
    dest: &Path,
) -> std::result::Result<(), String> {
    let mut errors = Vec::new();
    for url in urls {
        match up.download_target_to(t, dest, url) {
            Ok(()) => {
                rejected.extend(errors);
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(target = t.path(), source = %node::url::Redacted(url), error = %node::url::Redacted(&e), "download rejected; trying the next source");
                errors.push(format!("rejected {url}: {e}"));
            }
        }
    }
    Err(format!("every source failed: {}", errors.join("; ")))
}
