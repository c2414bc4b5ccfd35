//! One sync cycle over the configured upstreams in order: the first that answers is the
//! source, later ones are compared with it (catch-up), and the relay's shared state (status,
//! metrics, the view in service) is updated with the outcome.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use model::protocol::SyncResult;
use node::url::{redact, Redacted};

use crate::error::{Error, Result};
use crate::server::Shared;
use crate::sync::{self, Cache, Source, SyncOutcome, SyncSettings};
use crate::view;

/// Upstreams that failed (url, why) or lag behind, in the order they were tried.
#[derive(Debug, Default)]
struct Tried {
    errors: Vec<(String, String)>,
    lagging: Vec<String>,
}

impl Tried {
    /// Note an upstream's failure; URL credentials never reach the status, heartbeat or log.
    fn error(&mut self, upstream: &str, why: &dyn std::fmt::Display) {
        self.errors
            .push((redact(upstream), redact(&why.to_string())));
    }

    /// Note a lagging upstream (logged as a warning).
    fn lag(&mut self, message: &str) {
        let message = redact(message);
        tracing::warn!("{message}");
        self.lagging.push(message);
    }
}

/// How a cycle ended, in the manager protocol's terms.
pub fn sync_result(result: &Result<SyncOutcome>) -> SyncResult {
    match result {
        Ok(o) if o.changed => SyncResult::Changed,
        Ok(_) => SyncResult::Unchanged,
        Err(e) => SyncResult::Failed(redact(&e.to_string())),
    }
}

/// One sync cycle over the upstreams in order; updates `shared` (status, metrics, view).
pub fn sync_cycle(
    cache: &Cache,
    settings: &SyncSettings,
    fetcher: &Arc<dyn tuf::Fetcher>,
    upstreams: &[String],
    shared: &Shared,
) -> Result<SyncOutcome> {
    let started = Instant::now();
    {
        let mut s = shared.sync.write().unwrap_or_else(PoisonError::into_inner);
        s.syncing = true;
        s.last_sync_started = Some(node::clock::now_string());
    }
    let mut tried = Tried::default();
    // A panic (a bug) fails this cycle like any error: recorded, reported, retried.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        node::fault::panic_if("sync-panic");
        let mut result = first_answering(cache, settings, fetcher, upstreams, &mut tried);
        if let Ok(o) = &mut result {
            o.upstream_errors = joined(&tried.errors);
            o.lagging = tried.lagging.clone();
        }
        if result.is_err() && !tried.errors.is_empty() {
            result = Err(Error::AllUpstreamsFailed(joined(&tried.errors).join("; ")));
        }
        if let Ok(outcome) = &result {
            serve(cache, shared, outcome)?;
        }
        result
    }))
    .unwrap_or_else(|payload| Err(Error::Panicked(panic_message(payload.as_ref()))));
    record(shared, started, &result, tried);
    match &result {
        Ok(o) if o.changed => tracing::info!(
            upstream = %o.source, view = o.view, files = o.downloaded, bytes = o.downloaded_bytes, rebuilt = o.rebuilt, "new view in service"
        ),
        Ok(o) => tracing::debug!(upstream = %o.source, view = o.view, "unchanged"),
        Err(e) => {
            tracing::error!(error = %Redacted(&e), "sync failed; still serving the last good view")
        }
    }
    result
}

/// The message a panic was raised with.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn joined(errors: &[(String, String)]) -> Vec<String> {
    errors.iter().map(|(u, e)| format!("{u}: {e}")).collect()
}

/// Sync from the first upstream that answers, then catch up with later ones.
fn first_answering(
    cache: &Cache,
    settings: &SyncSettings,
    fetcher: &Arc<dyn tuf::Fetcher>,
    upstreams: &[String],
    tried: &mut Tried,
) -> Result<SyncOutcome> {
    for (i, upstream) in upstreams.iter().enumerate() {
        let source = Source::upstream(upstream);
        match sync::sync_from(cache, settings, fetcher.clone(), &source) {
            Ok(outcome) => {
                let later = upstreams.get(i.saturating_add(1)..).unwrap_or_default();
                return Ok(catch_up(cache, settings, fetcher, outcome, later, tried));
            }
            Err(e) => {
                if let Some(l) = behind_trusted(upstream, &e) {
                    tried.lag(&l);
                } else {
                    tracing::warn!(upstream = %Redacted(upstream), error = %Redacted(&e), "sync failed; trying the next upstream");
                }
                tried.error(upstream, &e);
            }
        }
    }
    Err(Error::AllUpstreamsFailed("no upstream configured".into()))
}

/// Put the view the sync ended on in service, if it is not already.
fn serve(cache: &Cache, shared: &Shared, outcome: &SyncOutcome) -> Result<()> {
    if outcome.changed || shared.current().map(|v| v.manifest.id) != Some(outcome.view) {
        if let Some(m) = cache.views.current()? {
            shared.set_view(view::ServedView::load(m, &cache.store)?);
        }
    }
    Ok(())
}

/// Record the cycle in the status and the metrics.
fn record(shared: &Shared, started: Instant, result: &Result<SyncOutcome>, tried: Tried) {
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let m = &shared.metrics;
    m.sync_duration.observe(started.elapsed());
    m.last_sync_micros.store(micros, Ordering::Relaxed);
    let mut s = shared.sync.write().unwrap_or_else(PoisonError::into_inner);
    s.syncing = false;
    s.last_sync_finished = Some(node::clock::now_string());
    s.upstream_errors = tried.errors;
    s.lagging_upstreams = tried.lagging;
    match result {
        Ok(o) => {
            s.upstream_in_use = Some(o.source.clone());
            s.last_sync_result = Some(if o.changed { "ok" } else { "unchanged" }.into());
            s.last_success = s.last_sync_finished.clone();
            s.last_success_at = Some(node::clock::now());
            s.last_error = None;
            let counter = if o.changed {
                &m.syncs_ok
            } else {
                &m.syncs_unchanged
            };
            counter.fetch_add(1, Ordering::Relaxed);
            m.downloaded_bytes
                .fetch_add(o.downloaded_bytes, Ordering::Relaxed);
            m.rebuilt_targets.fetch_add(o.rebuilt, Ordering::Relaxed);
            m.rebuilt_full_bytes
                .fetch_add(o.rebuilt_full_bytes, Ordering::Relaxed);
        }
        Err(e) => {
            s.last_sync_result = Some("failed".into());
            s.last_error = Some(redact(&e.to_string()));
            m.syncs_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An upstream that answered may serve an old but valid view. Compare it with every later
/// upstream by refreshing from each with the same trusted state (the full client workflow:
/// nothing unverified is believed); a newer verified timestamp makes that upstream the source
/// of this sync. Lagging upstreams are reported; one that cannot be compared is an error
/// entry, the view from the first upstream stays in service.
fn catch_up(
    cache: &Cache,
    settings: &SyncSettings,
    fetcher: &Arc<dyn tuf::Fetcher>,
    first: SyncOutcome,
    later: &[String],
    tried: &mut Tried,
) -> SyncOutcome {
    let mut best = first;
    let mut behind: Vec<(String, u64)> = Vec::new();
    for other in later {
        let source = Source::upstream(other);
        let probed = sync::probe(cache, settings, fetcher.clone(), &source, best.timestamp);
        let lag = |e: &Error| match e {
            Error::Tuf(t) => t.timestamp_rollback(),
            _ => None,
        };
        match probed.map_err(|e| (lag(&e), e)) {
            Ok(v) if v > best.timestamp => {
                match sync::sync_from(cache, settings, fetcher.clone(), &source) {
                    Ok(o) => {
                        behind.push((best.source.clone(), best.timestamp));
                        best = o;
                    }
                    Err(e) => {
                        tracing::warn!(upstream = %Redacted(other), error = %Redacted(&e), "newer upstream failed to sync");
                        tried.error(other, &e);
                    }
                }
            }
            Ok(_) => {}
            Err((Some((got, _)), _)) => behind.push((other.clone(), got)),
            Err((None, e)) => {
                tracing::warn!(upstream = %Redacted(other), error = %Redacted(&e), "could not compare with this upstream");
                tried.error(other, &format!("not compared: {e}"));
            }
        }
    }
    for (source, v) in behind {
        let msg = format!(
            "lagging {source}: {} timestamp version(s) behind {} (v{v} < v{})",
            best.timestamp.saturating_sub(v),
            best.source,
            best.timestamp
        );
        tried.lag(&msg);
    }
    best
}

/// An upstream whose timestamp is older than the trusted one is behind, not tampered with.
fn behind_trusted(upstream: &str, e: &Error) -> Option<String> {
    let Error::Tuf(e) = e else {
        return None;
    };
    let (got, trusted) = e.timestamp_rollback()?;
    Some(format!(
        "lagging {upstream}: {} timestamp version(s) behind the trusted state (serves v{got}, trusted v{trusted}; rollback refused)",
        trusted.saturating_sub(got)
    ))
}
