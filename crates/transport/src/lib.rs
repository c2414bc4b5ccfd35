//! Network transport for Updraft: an HTTP(S) client (rustls, timeouts) implementing the TUF
//! crate's [`tuf::Fetcher`], and a static file server for repository directories (the origin).
//!
//! Code map: `fetcher` (HttpFetcher, HttpConfig and the bounds on slow sources), `serve` (the
//! origin router and plain and TLS serving), `observe` (the Prometheus text format, histograms, the request counting and access log
//! layer every server uses), `limits` (the connection bounds every server
//! applies: settings, defaults, the descriptor budget), `accept` (the one serving loop:
//! connection limit, accept backoff, TLS handshake timeout, shutdown), `conn` (one connection
//! under the header and idle timeouts).

mod accept;
mod conn;
mod fetcher;
mod limits;
mod observe;
mod serve;

use std::path::PathBuf;

pub use fetcher::{
    HttpConfig, HttpFetcher, DEFAULT_FIRST_BYTE_TIMEOUT_SECS, DEFAULT_MIN_RATE,
    DEFAULT_STALL_TIMEOUT_SECS,
};
pub use limits::{
    descriptor_budget, ServeLimits, ServeSettings, DEFAULT_HANDSHAKE_TIMEOUT_SECS,
    DEFAULT_HEADER_TIMEOUT_SECS, DEFAULT_IDLE_TIMEOUT_SECS, DEFAULT_MAX_CONNECTIONS,
};
pub use observe::{
    observed, outcome, repository_kind, Exposition, Histogram, HttpMetrics, BUCKETS, OUTCOMES,
    REPOSITORY_KINDS,
};
pub use serve::{
    announce, origin_router, serve_origin, serve_origin_with, serve_plain, serve_tls,
    tls_server_config, StaticServer,
};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Dir { path: PathBuf, reason: String },
    #[error("server: {0}")]
    Serve(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("setting {key}: {reason}")]
    Setting { key: &'static str, reason: String },
}
