//! The Updraft relay: mirrors an upstream TUF repository (the origin or a parent relay) with full
//! verification and serves it to agents and child relays. It holds no signing key: it can delay
//! updates, never forge or roll them back, because every client verifies everything itself.

pub mod bundle;
pub mod error;
pub mod progress;
pub mod server;
pub mod store;
pub mod sync;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

pub use error::{Error, Result};
pub use server::Shared;
pub use sync::{Cache, Source, SyncOutcome, SyncSettings};

/// Relay settings: command-line flags, or the same keys in a TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Base URLs of upstreams (origin or parent relays), in order of preference.
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<String>,
    /// The relay's trust anchor: a root file shipped out of band (read-only).
    pub trusted_root: PathBuf,
    /// Cache directory: trusted metadata, objects, views.
    pub cache: PathBuf,
    /// Address to serve on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Seconds between syncs.
    #[serde(default = "default_poll")]
    pub poll_interval: u64,
    /// Views kept on disk (the one in service included).
    #[serde(default = "default_keep")]
    pub keep_views: usize,
    /// TLS certificate chain and key (PEM) for serving HTTPS.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Extra CA certificate (PEM) trusted for HTTPS upstreams, besides the system roots.
    #[serde(default)]
    pub upstream_ca: Option<PathBuf>,
    /// Seconds an upstream may take to start answering before the relay fails over to the next.
    #[serde(default = "default_first_byte_timeout")]
    pub first_byte_timeout: u64,
    /// Progress window in seconds: a download slower than `min_rate` over this window (or
    /// silent for it) is cut off and the next upstream is tried.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout: u64,
    /// Minimum download rate in bytes per second per `stall_timeout` window (0: stalls only).
    #[serde(default = "default_min_rate")]
    pub min_rate: u64,
    /// Days past expiry that timestamp/snapshot may still be served (air-gapped sites).
    #[serde(default)]
    pub offline_grace: u64,
    /// Serve the cache only (an air-gapped relay fed by bundles): no upstream, no sync.
    #[serde(default)]
    pub offline: bool,
    /// The manager's base URL: a heartbeat after every sync; the group's policy (upstreams,
    /// poll interval) from the reply is applied from the next cycle on.
    #[serde(default)]
    pub manager: Option<String>,
    /// File with an enrolment token, used once to obtain the relay's credential (kept 0600).
    #[serde(default)]
    pub enroll_token_file: Option<PathBuf>,
    /// Name reported to the manager (default: the system host name).
    #[serde(default)]
    pub hostname: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_poll() -> u64 {
    300
}
pub fn default_first_byte_timeout() -> u64 {
    transport::DEFAULT_FIRST_BYTE_TIMEOUT_SECS
}
pub fn default_stall_timeout() -> u64 {
    transport::DEFAULT_STALL_TIMEOUT_SECS
}
pub fn default_min_rate() -> u64 {
    transport::DEFAULT_MIN_RATE
}
fn default_keep() -> usize {
    3
}

impl RelayConfig {
    /// Read a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message())))
    }

    /// Check everything that can be checked before starting; returns the trust anchor bytes.
    pub fn validate(&self) -> Result<Vec<u8>> {
        if self.upstreams.is_empty() && !self.offline {
            return Err(Error::Config(
                "no upstream: give --upstream URL (origin or parent relay)".into(),
            ));
        }
        for u in &self.upstreams {
            if !(u.starts_with("http://") || u.starts_with("https://") || u.starts_with("file://"))
            {
                return Err(Error::Config(format!(
                    "upstream {u:?} is not an http://, https:// or file:// URL"
                )));
            }
        }
        if self.keep_views == 0 {
            return Err(Error::Config("--keep-views must be at least 1".into()));
        }
        if self.poll_interval == 0 {
            return Err(Error::Config(
                "--poll-interval must be at least 1 second".into(),
            ));
        }
        if self.first_byte_timeout == 0 || self.stall_timeout == 0 {
            return Err(Error::Config(
                "--first-byte-timeout and --stall-timeout must be at least 1 second".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(Error::Config("--tls-cert and --tls-key go together".into()));
        }
        if self.enroll_token_file.is_some() && self.manager.is_none() {
            return Err(Error::Config(
                "--enroll-token-file needs --manager URL".into(),
            ));
        }
        trust_anchor(&self.trusted_root)
    }

    /// The HTTP client's bounds for upstreams and the manager (slow sources).
    pub fn http_config(&self) -> transport::HttpConfig {
        transport::HttpConfig {
            first_byte_timeout: Duration::from_secs(self.first_byte_timeout),
            stall_timeout: Duration::from_secs(self.stall_timeout),
            min_rate: self.min_rate,
            ..transport::HttpConfig::default()
        }
    }

    pub fn sync_settings(&self, trusted_root: Vec<u8>, progress: bool) -> SyncSettings {
        SyncSettings {
            trusted_root,
            keep_views: self.keep_views,
            offline_grace: time::Duration::days(self.offline_grace as i64),
            max_roles: 100_000,
            progress,
        }
    }
}

/// Read and check a trust anchor: a root file signed by a threshold of its own keys.
pub fn trust_anchor(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Config(format!("trusted root {}: {e}", path.display())))?;
    tuf::TrustedSet::new(&bytes, time::OffsetDateTime::now_utc())
        .map_err(|e| Error::Config(format!("trusted root {}: {e}", path.display())))?;
    Ok(bytes)
}

/// The HTTP(S) fetcher for upstreams.
pub fn fetcher(config: &RelayConfig) -> Result<Arc<dyn tuf::Fetcher>> {
    let mut http = config.http_config();
    if let Some(ca) = &config.upstream_ca {
        let pem = std::fs::read(ca)
            .map_err(|e| Error::Config(format!("upstream CA {}: {e}", ca.display())))?;
        http.extra_root_pem.push(pem);
    }
    Ok(Arc::new(transport::HttpFetcher::new(&http)?))
}

fn now_string() -> String {
    tuf::metadata::format_expires(time::OffsetDateTime::now_utc())
}

/// Load the view in service from the cache into `shared` (after a restart).
pub fn load_current(cache: &Cache, shared: &Shared) -> Result<bool> {
    match cache.views.current()? {
        Some(m) => {
            let id = m.id;
            shared.set_view(view::ServedView::load(m, &cache.store)?);
            tracing::info!(view = id, "serving the view from the cache");
            Ok(true)
        }
        None => Ok(false),
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
    use std::sync::atomic::Ordering;
    let started = Instant::now();
    if let Ok(mut s) = shared.sync.write() {
        s.syncing = true;
        s.last_sync_started = Some(now_string());
    }
    let mut errors = Vec::new();
    let mut lagging = Vec::new();
    let mut result = Err(Error::AllUpstreamsFailed("no upstream configured".into()));
    for (i, upstream) in upstreams.iter().enumerate() {
        let source = Source::upstream(upstream);
        match sync::sync_from(cache, settings, fetcher.clone(), &source) {
            Ok(outcome) => {
                let later = upstreams.get(i.saturating_add(1)..).unwrap_or_default();
                result = Ok(catch_up(
                    cache,
                    settings,
                    fetcher,
                    outcome,
                    later,
                    &mut errors,
                    &mut lagging,
                ));
                break;
            }
            Err(e) => {
                if let Some(l) = behind_trusted(upstream, &e) {
                    tracing::warn!(upstream = %upstream, "{l}; trying the next upstream");
                    lagging.push(l);
                } else {
                    tracing::warn!(upstream = %upstream, error = %e, "sync failed; trying the next upstream");
                }
                errors.push((upstream.clone(), e.to_string()));
            }
        }
    }
    if let Ok(o) = &mut result {
        o.upstream_errors = errors.iter().map(|(u, e)| format!("{u}: {e}")).collect();
        o.lagging = lagging.clone();
    }
    if result.is_err() && !errors.is_empty() {
        let all: Vec<String> = errors.iter().map(|(u, e)| format!("{u}: {e}")).collect();
        result = Err(Error::AllUpstreamsFailed(all.join("; ")));
    }
    if let Ok(outcome) = &result {
        if outcome.changed || shared.current().map(|v| v.manifest.id) != Some(outcome.view) {
            if let Some(m) = cache.views.current()? {
                shared.set_view(view::ServedView::load(m, &cache.store)?);
            }
        }
    }
    let micros = started.elapsed().as_micros() as u64;
    let m = &shared.metrics;
    m.sync_micros_total.fetch_add(micros, Ordering::Relaxed);
    m.last_sync_micros.store(micros, Ordering::Relaxed);
    if let Ok(mut s) = shared.sync.write() {
        s.syncing = false;
        s.last_sync_finished = Some(now_string());
        s.upstream_errors = errors;
        s.lagging_upstreams = lagging;
        match &result {
            Ok(o) => {
                s.upstream_in_use = Some(o.source.clone());
                s.last_sync_result = Some(if o.changed { "ok" } else { "unchanged" }.into());
                s.last_success = s.last_sync_finished.clone();
                s.last_success_at = Some(time::OffsetDateTime::now_utc());
                s.last_error = None;
                if o.changed {
                    m.syncs_ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    m.syncs_unchanged.fetch_add(1, Ordering::Relaxed);
                }
                m.downloaded_bytes
                    .fetch_add(o.downloaded_bytes, Ordering::Relaxed);
            }
            Err(e) => {
                s.last_sync_result = Some("failed".into());
                s.last_error = Some(e.to_string());
                m.syncs_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    match &result {
        Ok(o) if o.changed => tracing::info!(
            upstream = %o.source, view = o.view, files = o.downloaded, bytes = o.downloaded_bytes, "new view in service"
        ),
        Ok(o) => tracing::debug!(upstream = %o.source, view = o.view, "unchanged"),
        Err(e) => tracing::error!(error = %e, "sync failed; still serving the last good view"),
    }
    result
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
    errors: &mut Vec<(String, String)>,
    lagging: &mut Vec<String>,
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
                        tracing::warn!(upstream = %other, error = %e, "newer upstream failed to sync");
                        errors.push((other.clone(), e.to_string()));
                    }
                }
            }
            Ok(_) => {}
            Err((Some((got, _)), _)) => behind.push((other.clone(), got)),
            Err((None, e)) => {
                tracing::warn!(upstream = %other, error = %e, "could not compare with this upstream");
                errors.push((other.clone(), format!("not compared: {e}")));
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
        tracing::warn!("{msg}");
        lagging.push(msg);
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

/// Heartbeat to the manager (enrolling first if needed) and store the policy in the reply.
fn report(
    http: &transport::HttpFetcher,
    cache: &Cache,
    config: &RelayConfig,
    url: &str,
    shared: &Shared,
    result: &Result<SyncOutcome>,
) -> std::result::Result<(), transport::manager_client::ClientError> {
    use transport::manager_client as mc;
    let hostname = config.hostname.clone().unwrap_or_else(mc::hostname);
    let id = match mc::identity(&cache.dir)? {
        Some(id) => id,
        None => {
            let token = config
                .enroll_token_file
                .as_ref()
                .ok_or_else(|| mc::ClientError("not enrolled and no --enroll-token-file".into()))?;
            mc::enroll(http, &cache.dir, url, token, &hostname, "relay")?
        }
    };
    let sync = shared.sync.read().map(|s| s.clone()).unwrap_or_default();
    let body = serde_json::json!({
        "hostname": hostname,
        "role": "relay",
        "upstream": sync.upstream_in_use,
        "builds": {"updraft": env!("CARGO_PKG_VERSION")},
        "last_result": std::iter::once(match result { Ok(o) if o.changed => "ok".to_string(), Ok(_) => "unchanged".to_string(), Err(e) => format!("failed: {e}") })
            .chain(sync.lagging_upstreams.iter().cloned())
            .collect::<Vec<_>>()
            .join("; "),
        "applied_policy": mc::policy(&cache.dir),
    });
    if let Some(p) = mc::heartbeat(http, url, &id, &body)? {
        if mc::save_policy(&cache.dir, &p)? {
            tracing::info!(group = %p.group, upstreams = ?p.relays, poll = p.poll_interval, "policy from the manager applied");
        }
    }
    Ok(())
}

/// Run the relay: serve the cached view at once, then sync every `poll_interval` seconds, until
/// `shutdown` resolves.
pub async fn run(
    config: RelayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let anchor = config.validate()?;
    let cache = Cache::open(&config.cache)?;
    let shared = Shared::new(config.offline_grace);
    load_current(&cache, &shared)?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", config.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Other(e.to_string()))?;
    tracing::info!(addr = %local, "relay listening");
    println!(
        "relay listening on {}://{local}",
        if config.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    );

    let settings = config.sync_settings(anchor, true);
    let offline = config.offline || config.upstreams.is_empty();
    if offline && shared.current().is_none() {
        return Err(Error::NoView(config.cache.clone()));
    }
    // The sync loop runs on its own thread: the TUF client and its HTTP client are blocking.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let sync_thread = if offline {
        None
    } else {
        let (sync_shared, upstreams) = (shared.clone(), config.upstreams.clone());
        let poll = Duration::from_secs(config.poll_interval);
        let fetcher_config = config.clone();
        let handle = std::thread::Builder::new()
            .name("relay-sync".into())
            .spawn(move || {
                let fetcher = match fetcher(&fetcher_config) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot build the HTTP client; not syncing");
                        return;
                    }
                };
                let http = match transport::HttpFetcher::new(&fetcher_config.http_config()) {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot build the HTTP client; not syncing");
                        return;
                    }
                };
                loop {
                    // The manager's policy, once known, names the upstreams and the poll interval.
                    let policy = transport::manager_client::policy(&cache.dir);
                    let current: Vec<String> = policy
                        .as_ref()
                        .map(|p| p.relays.clone())
                        .filter(|r| !r.is_empty())
                        .unwrap_or_else(|| upstreams.clone());
                    let result = sync_cycle(&cache, &settings, &fetcher, &current, &sync_shared);
                    if let Some(url) = &fetcher_config.manager {
                        if let Err(e) =
                            report(&http, &cache, &fetcher_config, url, &sync_shared, &result)
                        {
                            tracing::warn!(manager = %url, error = %e, "heartbeat failed");
                        }
                    }
                    let mut poll = transport::manager_client::policy(&cache.dir)
                        .map(|p| p.poll_interval)
                        .filter(|p| *p > 0)
                        .map(Duration::from_secs)
                        .unwrap_or(poll);
                    if result.is_err() {
                        // A failed sync is retried sooner than a long poll interval.
                        poll = poll.min(Duration::from_secs(10));
                    }
                    match stop_rx.recv_timeout(poll) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                        _ => break,
                    }
                }
            })
            .map_err(|e| Error::Other(format!("cannot start the sync thread: {e}")))?;
        Some(handle)
    };
    let app = server::router(shared);
    let serve_result = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => transport::serve_tls(listener, app, cert, key, shutdown).await,
        _ => transport::serve_plain(listener, app, shutdown).await,
    };
    let _ = stop_tx.send(());
    if let Some(h) = sync_thread {
        // A sync in progress finishes its current step; the thread is not awaited on the runtime.
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    serve_result.map_err(Error::from)
}
