//! The Updraft manager: enrols hosts, records their state from heartbeats, answers the fleet
//! questions (builds, advisories, patch coverage, upgrade order) and hands policy back.

pub mod api;
pub mod console;
pub mod db;
pub mod error;
pub mod fleet;
pub mod rollout;
pub mod text;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use db::Db;
pub use error::{Error, Result};

/// Manager settings (flags, or the same keys in TOML).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerConfig {
    #[serde(default = "default_db")]
    pub db: String,
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Seconds without a heartbeat after which a host is shown offline.
    #[serde(default = "default_offline")]
    pub offline_after: u64,
    /// Milliseconds added to each authentication failure from one address beyond the fifth
    /// within a minute (at most 2 s per answer).
    #[serde(default = "default_failure_delay")]
    pub failure_delay_ms: u64,
    /// Bounds on served connections: `header_timeout`, `handshake_timeout`, `idle_timeout`
    /// (seconds), `max_connections`.
    #[serde(flatten)]
    pub serve: transport::ServeSettings,
    /// Hotfix history entries kept per host (the newest) [default: 10000].
    #[serde(default = "default_history_per_host")]
    pub history_per_host: u64,
    /// Hotfix history entries kept in all (the newest) [default: 1000000].
    #[serde(default = "default_history_total")]
    pub history_total: u64,
    /// Heartbeats one host may send per minute, sustained [default: 60]; more are answered 429.
    #[serde(default = "default_heartbeats_per_minute")]
    pub heartbeats_per_minute: u32,
    /// Heartbeats one host may send at once above its rate [default: 10].
    #[serde(default = "default_heartbeat_burst")]
    pub heartbeat_burst: u32,
    /// Seconds between two runs of the rollout gates (soak times, silent hosts, thresholds)
    /// [default: 5].
    #[serde(default = "default_rollout_tick")]
    pub rollout_tick: u64,
    /// Seconds a host keeps the per-host decisions of rollouts (holds) without hearing from
    /// this manager; then it follows its group's channel [default: 86400, at most 604800].
    #[serde(default = "default_decision_lease")]
    pub decision_lease: u64,
}

fn default_decision_lease() -> u64 {
    model::protocol::DEFAULT_DECISION_LEASE
}

fn default_rollout_tick() -> u64 {
    5
}

fn default_history_per_host() -> u64 {
    db::HistoryLimits::default().per_host
}
fn default_history_total() -> u64 {
    db::HistoryLimits::default().total
}
fn default_heartbeats_per_minute() -> u32 {
    api::HeartbeatRate::default().per_minute
}
fn default_heartbeat_burst() -> u32 {
    api::HeartbeatRate::default().burst
}

impl ManagerConfig {
    /// The storage and rate bounds, range-checked.
    fn bounds(&self) -> Result<(db::HistoryLimits, api::HeartbeatRate)> {
        let check = |key: &str, v: u64, max: u64| {
            if (1..=max).contains(&v) {
                Ok(())
            } else {
                Err(Error::Config(format!("{key} = {v}: give 1 to {max}")))
            }
        };
        check("history_per_host", self.history_per_host, 10_000_000)?;
        check("history_total", self.history_total, 1_000_000_000)?;
        check(
            "heartbeats_per_minute",
            self.heartbeats_per_minute.into(),
            60_000,
        )?;
        check("heartbeat_burst", self.heartbeat_burst.into(), 10_000)?;
        check("rollout_tick", self.rollout_tick, 3600)?;
        check(
            "decision_lease",
            self.decision_lease,
            model::protocol::MAX_DECISION_LEASE,
        )?;
        Ok((
            db::HistoryLimits {
                per_host: self.history_per_host,
                total: self.history_total,
            },
            api::HeartbeatRate {
                per_minute: self.heartbeats_per_minute,
                burst: self.heartbeat_burst,
            },
        ))
    }
}

fn default_failure_delay() -> u64 {
    100
}

fn default_db() -> String {
    "sqlite://updraft-manager.db".into()
}
fn default_listen() -> String {
    "127.0.0.1:8443".into()
}
fn default_offline() -> u64 {
    900
}

/// Serve the API until `shutdown` resolves.
pub async fn run(
    config: ManagerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err(Error::Config("--tls-cert and --tls-key go together".into()));
    }
    let limits = config
        .serve
        .limits()
        .map_err(|e| Error::Config(e.to_string()))?;
    let (history, rate) = config.bounds()?;
    let db = {
        let url = config.db.clone();
        tokio::task::spawn_blocking(move || Db::open(&url))
            .await
            .map_err(|e| Error::Other(e.to_string()))??
            .with_history_limits(history)
    };
    let db = Arc::new(db);
    let gates = tokio::spawn(rollout_gates(
        db.clone(),
        std::time::Duration::from_secs(config.rollout_tick),
    ));
    let state = api::AppState::with_host_terms(
        db,
        config.offline_after,
        std::time::Duration::from_millis(config.failure_delay_ms),
        rate,
        config.decision_lease,
        config.tls_cert.is_some(),
    );
    let app = api::router(state);
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", config.listen)))?;
    let local: SocketAddr = listener
        .local_addr()
        .map_err(|e| Error::Other(e.to_string()))?;
    let tls = config.tls_cert.is_some();
    transport::announce(format_args!(
        "manager listening on {}://{local}",
        if tls { "https" } else { "http" }
    ));
    let served = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => transport::serve_tls(listener, app, c, k, limits, shutdown).await,
        _ => transport::serve_plain(listener, app, limits, shutdown).await,
    };
    gates.abort();
    served.map_err(|e| Error::Other(e.to_string()))
}

/// Run the rollout gates every `tick`: soak times pass and hosts go silent without any request
/// arriving. A failed run is logged and retried at the next tick.
async fn rollout_gates(db: Arc<Db>, tick: std::time::Duration) {
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let db = db.clone();
        let run =
            tokio::task::spawn_blocking(move || db.rollout_tick(time::OffsetDateTime::now_utc()));
        match run.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "rollout gates failed; retried next tick"),
            Err(e) => tracing::warn!(error = %e, "rollout gates panicked; retried next tick"),
        }
    }
}
