//! The running relay: serve the cached view at once, sync every poll interval on a thread of
//! its own, report to the manager after every sync and follow its policy.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use model::protocol::{Heartbeat, Policy, Role, VersionFailure};
use node::ManagerLink;

use crate::config::RelayConfig;
use crate::cycle::{sync_cycle, sync_result};
use crate::error::{Error, Result};
use crate::server::{self, Shared};
use crate::sync::{Cache, SyncOutcome, SyncSettings};

/// A failed sync is retried sooner than a long poll interval.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// Work a relay host does on the sync thread after each cycle, besides syncing: the binary's
/// self-upgrade of the relay's own build.
pub trait Companion: Send {
    /// After a sync and its heartbeat: the policy in force, the upstreams the cycle used, and
    /// whether it synced and reported (or has no manager to report to).
    fn after_cycle(&mut self, policy: Option<&Policy>, upstreams: &[String], healthy: bool);
    /// What the next heartbeat adds.
    fn report(&self) -> CompanionReport;
}

/// A companion's part of the relay's heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompanionReport {
    /// component → version installed (`updraft`: the relay's own build).
    pub components: std::collections::BTreeMap<String, String>,
    /// Versions given up on (a build that did not come back), for rollout health.
    pub failed_versions: Vec<VersionFailure>,
    /// Its modules and their state (the relay's own build, for rollout health).
    pub modules: Vec<model::protocol::ModuleReport>,
}

/// Run the relay: serve the cached view at once, then sync every `poll_interval` seconds, until
/// `shutdown` resolves.
pub async fn run(
    config: RelayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_with(config, shutdown, None).await
}

/// [`run`], with a companion called after every cycle.
pub async fn run_with(
    config: RelayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    companion: Option<Box<dyn Companion>>,
) -> Result<()> {
    let anchor = config.validate()?;
    let limits = config.serve.limits()?;
    let cache = Cache::open(&config.cache)?;
    let shared = Shared::new(config.offline_grace);
    crate::load_current(&cache, &shared)?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", config.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Other(e.to_string()))?;
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(addr = %local, "relay listening");
    transport::announce(format_args!("relay listening on {scheme}://{local}"));
    let offline = config.offline || config.upstreams.is_empty();
    if offline && shared.current().is_none() {
        return Err(Error::NoView(config.cache.clone()));
    }
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let sync_thread = if offline {
        None
    } else {
        let settings = config.sync_settings(anchor, true)?;
        let mut sync = SyncLoop::new(&config, cache, settings, shared.clone())?;
        sync.companion = companion;
        Some(sync.spawn(stop_rx)?)
    };
    let app = server::router(shared);
    let serve_result = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            transport::serve_tls(listener, app, cert, key, limits, shutdown).await
        }
        _ => transport::serve_plain(listener, app, limits, shutdown).await,
    };
    let _ = stop_tx.send(());
    if let Some(h) = sync_thread {
        // A sync in progress finishes its current step; the thread is not awaited on the runtime.
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    serve_result.map_err(Error::from)
}

/// The sync loop: its own thread, because the TUF client and its HTTP client are blocking.
struct SyncLoop {
    cache: Cache,
    settings: SyncSettings,
    fetcher: Arc<dyn tuf::Fetcher>,
    /// The manager, with the policy of its last reply (upstreams, poll interval).
    link: Option<ManagerLink>,
    upstreams: Vec<String>,
    poll: Duration,
    shared: Arc<Shared>,
    companion: Option<Box<dyn Companion>>,
}

impl SyncLoop {
    /// One HTTP client (with the one `ca` setting) serves the upstreams and the manager.
    fn new(
        config: &RelayConfig,
        cache: Cache,
        settings: SyncSettings,
        shared: Arc<Shared>,
    ) -> Result<Self> {
        let client = config.http.client()?;
        let link = ManagerLink::open(&config.link, &cache.dir, Role::Relay, client.clone());
        Ok(SyncLoop {
            cache,
            settings,
            fetcher: Arc::new(client),
            link,
            upstreams: config.upstreams.clone(),
            poll: Duration::from_secs(config.poll_interval),
            shared,
            companion: None,
        })
    }

    fn spawn(self, stop: Receiver<()>) -> Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("relay-sync".into())
            .spawn(move || self.run(stop))
            .map_err(|e| Error::Other(format!("cannot start the sync thread: {e}")))
    }

    fn run(mut self, stop: Receiver<()>) {
        let _alive = LoopAlive::start(self.shared.clone());
        loop {
            // Test hook: a panic outside a cycle (which contains its own) ends the thread.
            node::fault::panic_if("sync-loop-panic");
            let wait = self.cycle();
            match stop.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => continue,
                _ => break,
            }
        }
    }

    /// The policy a cycle follows: with a manager, the link's (the last reply's, kept in
    /// memory); without one, the policy last stored in the cache (as an agent does).
    fn policy(&self) -> Option<node::manager::Policy> {
        match &self.link {
            Some(link) => link.policy(),
            None => node::manager::current_stored_policy(&self.cache.dir),
        }
    }

    /// Sync, report; returns how long to wait before the next cycle.
    fn cycle(&mut self) -> Duration {
        let upstreams = self
            .policy()
            .map(|p| p.relays)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| self.upstreams.clone());
        let result = sync_cycle(
            &self.cache,
            &self.settings,
            &self.fetcher,
            &upstreams,
            &self.shared,
        );
        let reported = self.report(&result);
        let policy = self.policy();
        if let Some(c) = self.companion.as_mut() {
            c.after_cycle(policy.as_ref(), &upstreams, result.is_ok() && reported);
        }
        // The policy of this cycle's reply applies at once.
        let poll = policy
            .map(|p| p.poll_interval)
            .filter(|p| *p > 0)
            .map(Duration::from_secs)
            .unwrap_or(self.poll);
        if result.is_err() {
            return poll.min(RETRY_AFTER_FAILURE);
        }
        poll
    }

    /// Heartbeat to the manager (enrolling first if needed); the outcome goes into `/status`.
    /// Whether it was recorded (true without a manager).
    fn report(&mut self, result: &Result<SyncOutcome>) -> bool {
        let Some(link) = self.link.as_mut() else {
            return true;
        };
        let extra = self.companion.as_ref().map(|c| c.report());
        let hb = heartbeat(link, &self.shared, result, extra.unwrap_or_default());
        let outcome = link.heartbeat(&hb);
        let recorded = outcome.is_ok();
        if let Err(e) = &outcome {
            tracing::warn!(manager = %node::url::Redacted(link.url()), error = %node::url::Redacted(e), "heartbeat failed");
        }
        if let Ok(mut s) = self.shared.sync.write() {
            match outcome {
                Ok(_) => {
                    s.manager.last_heartbeat = Some(node::clock::now_string());
                    s.manager.error = None;
                }
                Err(e) => s.manager.error = Some(node::url::redact(&e.to_string())),
            }
        }
        recorded
    }
}

/// Marks the sync loop running in [`Shared`] while it lives; when the thread ends, by shutdown
/// or by a panic outside a cycle, it is marked stopped (even while unwinding) and `/healthz`
/// answers 503.
struct LoopAlive(Arc<Shared>);

impl LoopAlive {
    fn start(shared: Arc<Shared>) -> Self {
        shared
            .sync_loop
            .store(server::LOOP_RUNNING, Ordering::Relaxed);
        LoopAlive(shared)
    }
}

impl Drop for LoopAlive {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the sync loop panicked and stopped: /healthz now answers 503");
        }
        self.0
            .sync_loop
            .store(server::LOOP_STOPPED, Ordering::Relaxed);
    }
}

/// The relay's heartbeat: its build (the one installed by its self-upgrade, else this code's),
/// the upstream in use, and how the last sync ended (with the upstreams found lagging).
fn heartbeat(
    link: &ManagerLink,
    shared: &Shared,
    result: &Result<SyncOutcome>,
    extra: CompanionReport,
) -> Heartbeat {
    let build = extra
        .components
        .get("updraft")
        .cloned()
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
    let sync = shared.sync.read().map(|s| s.clone()).unwrap_or_default();
    let last_result = std::iter::once(sync_result(result).to_string())
        .chain(sync.lagging_upstreams.iter().cloned())
        .collect::<Vec<_>>()
        .join("; ");
    Heartbeat {
        hostname: link.hostname().to_string(),
        role: Role::Relay,
        upstream: sync.upstream_in_use,
        builds: [("updraft".to_string(), build)].into(),
        components: extra.components,
        modules: extra.modules,
        history: Vec::new(),
        last_result: Some(last_result),
        applied_policy: link.policy(),
        failed_versions: extra.failed_versions,
        trust: shared.current().map(|v| model::protocol::TrustState {
            root_version: v.manifest.versions.root,
            timestamp_version: v.manifest.versions.timestamp,
            timestamp_expires: v.manifest.versions.timestamp_expires.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync_loop(dir: &std::path::Path, manager: Option<&str>) -> SyncLoop {
        let mut config = RelayConfig::new(dir.join("root.json"), dir.join("cache"));
        config.upstreams = vec!["http://127.0.0.1:9/".into()];
        config.link.manager = manager.map(str::to_string);
        let cache = Cache::open(&config.cache).unwrap();
        let settings = config.sync_settings(Vec::new(), false).unwrap();
        SyncLoop::new(&config, cache, settings, Shared::new(0)).unwrap()
    }

    #[test]
    fn a_sync_thread_that_dies_marks_the_loop_stopped() {
        let shared = Shared::new(0);
        let s = shared.clone();
        let died = std::thread::spawn(move || {
            let _alive = LoopAlive::start(s.clone());
            assert_eq!(s.sync_loop.load(Ordering::Relaxed), server::LOOP_RUNNING);
            panic!("bug");
        })
        .join();
        assert!(died.is_err());
        assert_eq!(
            shared.sync_loop.load(Ordering::Relaxed),
            server::LOOP_STOPPED
        );
    }

    #[test]
    fn the_stored_policy_applies_with_or_without_a_manager() {
        let dir = tempfile::tempdir().unwrap();
        let policy = node::manager::Policy {
            group: "site".into(),
            relays: vec!["http://127.0.0.1:7/".into()],
            poll_interval: 42,
            allow_direct: false,
            pinned: Default::default(),
            ..Default::default()
        };
        std::fs::create_dir_all(dir.path().join("cache")).unwrap();
        node::manager::save_policy(&dir.path().join("cache"), &policy).unwrap();
        assert_eq!(sync_loop(dir.path(), None).policy(), Some(policy.clone()));
        let with_manager = sync_loop(dir.path(), Some("http://127.0.0.1:9/"));
        assert_eq!(with_manager.policy(), Some(policy));
    }
}
