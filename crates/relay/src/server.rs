//! The relay's HTTP server: the standard TUF layout (`/metadata/…` from memory with strong ETags,
//! `/targets/…` streamed from the object store with Range support), `/healthz`, `/status` and
//! `/metrics`.

mod metrics;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::view::{FileEntry, ServedView};

/// Counters exported at `/metrics` (requests by kind and outcome are in [`Shared::http`]).
#[derive(Debug, Default)]
pub struct Metrics {
    pub target_partial: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub syncs_ok: AtomicU64,
    pub syncs_unchanged: AtomicU64,
    pub syncs_failed: AtomicU64,
    pub sync_duration: transport::Histogram,
    pub last_sync_micros: AtomicU64,
    pub downloaded_bytes: AtomicU64,
    /// Targets rebuilt from deltas, and what their full files would have cost.
    pub rebuilt_targets: AtomicU64,
    pub rebuilt_full_bytes: AtomicU64,
}

/// What `/status` reports besides the view.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SyncStatus {
    pub upstream_in_use: Option<String>,
    pub last_sync_started: Option<String>,
    pub last_sync_finished: Option<String>,
    /// "ok", "unchanged" or "failed".
    pub last_sync_result: Option<String>,
    pub last_success: Option<String>,
    #[serde(skip)]
    pub last_success_at: Option<time::OffsetDateTime>,
    pub last_error: Option<String>,
    /// Errors of the upstreams tried in the last sync, in order.
    pub upstream_errors: Vec<(String, String)>,
    /// Upstreams found behind another upstream (or the trusted state) in the last sync.
    pub lagging_upstreams: Vec<String>,
    pub syncing: bool,
    /// The manager link (when a manager is set).
    pub manager: ManagerStatus,
}

/// What `/status` reports about the manager link.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ManagerStatus {
    /// When the last heartbeat was accepted.
    pub last_heartbeat: Option<String>,
    /// Why the last heartbeat (or enrolment) failed; `None` after a success.
    pub error: Option<String>,
}

/// The expiry (unix seconds) of each top-level role, by role name.
pub type Expiries = Vec<(String, i64)>;

/// State shared by the server and the sync loop.
#[derive(Debug)]
pub struct Shared {
    pub view: RwLock<Option<Arc<ServedView>>>,
    pub sync: RwLock<SyncStatus>,
    pub metrics: Metrics,
    /// Requests by kind and outcome, and their durations (counted by the router's layer).
    pub http: Arc<transport::HttpMetrics>,
    /// The expiry of each top-level role of the view in service, by view id (read at the first
    /// scrape of a view).
    expiries: Mutex<Option<(u64, Expiries)>>,
    pub offline_grace_days: u64,
    /// The sync loop's state: [`LOOP_NONE`] (offline relay), running or stopped.
    pub sync_loop: AtomicU8,
}

/// No sync loop (an offline relay, or `--once`).
pub const LOOP_NONE: u8 = 0;
/// The sync loop is running.
pub const LOOP_RUNNING: u8 = 1;
/// The sync loop ended (a panic outside a cycle, or shutdown): `/healthz` answers 503.
pub const LOOP_STOPPED: u8 = 2;

impl Shared {
    pub fn new(offline_grace_days: u64) -> Arc<Self> {
        Arc::new(Shared {
            view: RwLock::new(None),
            sync: RwLock::new(SyncStatus::default()),
            metrics: Metrics::default(),
            http: transport::HttpMetrics::new(
                "relay",
                transport::REPOSITORY_KINDS,
                transport::repository_kind,
            ),
            expiries: Mutex::new(None),
            offline_grace_days,
            sync_loop: AtomicU8::new(LOOP_NONE),
        })
    }

    pub fn current(&self) -> Option<Arc<ServedView>> {
        self.view.read().ok().and_then(|v| v.clone())
    }

    /// Swap in a new view; requests already running keep the one they started with.
    pub fn set_view(&self, view: ServedView) {
        if let Ok(mut v) = self.view.write() {
            *v = Some(Arc::new(view));
        }
    }
}

/// The relay's routes; every request counted in [`Shared::http`] and access-logged.
pub fn router(shared: Arc<Shared>) -> Router {
    let http = shared.http.clone();
    let router = Router::new()
        .route("/metadata/{*name}", get(metadata))
        .route("/targets/{*path}", get(target))
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/metrics", get(metrics::metrics))
        .with_state(shared);
    transport::observed(router, http)
}

/// Healthy while the relay can do its job: serving, and syncing unless it is offline. A dead
/// sync loop would leave the view in service growing old unnoticed, so it answers 503.
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    health(&shared).into_response()
}

fn health(shared: &Shared) -> (StatusCode, &'static str) {
    if shared.sync_loop.load(Ordering::Relaxed) == LOOP_STOPPED {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "sync loop stopped: the view in service is no longer refreshed; restart the relay\n",
        );
    }
    (StatusCode::OK, "ok\n")
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn cache_control(immutable: bool) -> HeaderValue {
    if immutable {
        HeaderValue::from_static("public, max-age=31536000, immutable")
    } else {
        HeaderValue::from_static("public, max-age=10")
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn metadata(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(view) = shared.current() else {
        return not_found();
    };
    let Some(entry) = view.metadata.get(&name) else {
        return not_found();
    };
    let etag = HeaderValue::from_str(&entry.etag).unwrap_or(HeaderValue::from_static("\"\""));
    if etag_matches(&headers, &entry.etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, cache_control(entry.immutable)),
            ],
        )
            .into_response();
    }
    shared
        .metrics
        .bytes_sent
        .fetch_add(entry.bytes.len() as u64, Ordering::Relaxed);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache_control(entry.immutable)),
        ],
        entry.bytes.clone(),
    )
        .into_response()
}

/// Parse a single `bytes=` range against a length. `None`: no usable range (serve everything);
/// `Some(Err(()))`: unsatisfiable.
fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multiple ranges: answer with the whole file
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len.checked_sub(1)?)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(len.saturating_sub(1))
        };
        if start >= len || end < start {
            return Some(Err(()));
        }
        (start, end)
    };
    Some(Ok(range))
}

async fn target(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some(view) = shared.current() else {
        return not_found();
    };
    let Some(entry) = view.targets.get(&path).cloned() else {
        return not_found();
    };
    let etag = HeaderValue::from_str(&entry.etag).unwrap_or(HeaderValue::from_static("\"\""));
    if etag_matches(&headers, &entry.etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let range = requested_range(&headers, &entry);
    let base = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        ),
        (header::ETAG, etag),
        (header::CACHE_CONTROL, cache_control(entry.immutable)),
        (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
    ];
    let Some((status, start, len, content_range)) = range_plan(range, entry.length) else {
        return range_not_satisfiable(entry.length);
    };
    if status == StatusCode::PARTIAL_CONTENT {
        shared
            .metrics
            .target_partial
            .fetch_add(1, Ordering::Relaxed);
    }
    let mut resp = match target_body(&shared, &entry, &method, start, len).await {
        Ok(body) => Response::new(body),
        Err(r) => return r,
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (k, v) in base {
        h.insert(k, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::CONTENT_RANGE, cr);
    }
    resp
}

/// Status, first byte, length and `Content-Range` of the answer to `range` on a file of
/// `length` bytes; `None` if the range cannot be satisfied.
fn range_plan(
    range: Option<Result<(u64, u64), ()>>,
    length: u64,
) -> Option<(StatusCode, u64, u64, Option<String>)> {
    match range {
        Some(Err(())) => None,
        Some(Ok((a, b))) => Some((
            StatusCode::PARTIAL_CONTENT,
            a,
            b - a + 1,
            Some(format!("bytes {a}-{b}/{length}")),
        )),
        None => Some((StatusCode::OK, 0, length, None)),
    }
}

/// 416 for a file of `length` bytes.
fn range_not_satisfiable(length: u64) -> Response {
    let cr =
        HeaderValue::from_str(&format!("bytes */{length}")).unwrap_or(HeaderValue::from_static(""));
    (
        StatusCode::RANGE_NOT_SATISFIABLE,
        [(header::CONTENT_RANGE, cr)],
    )
        .into_response()
}

/// The byte range asked for, unless `If-Range` names another validator (the file changed: send
/// all of it).
fn requested_range(headers: &HeaderMap, entry: &FileEntry) -> Option<Result<(u64, u64), ()>> {
    let range_allowed = headers
        .get(header::IF_RANGE)
        .map(|v| v.to_str().map(|s| s.trim() == entry.etag).unwrap_or(false))
        .unwrap_or(true);
    headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| range_allowed)
        .and_then(|v| parse_range(v, entry.length))
}

/// `len` bytes of the target from `start`: from memory, streamed from its stored object, or
/// nothing for HEAD.
async fn target_body(
    shared: &Shared,
    entry: &FileEntry,
    method: &Method,
    start: u64,
    len: u64,
) -> Result<Body, Response> {
    if *method == Method::HEAD {
        return Ok(Body::empty());
    }
    if let Some(bytes) = &entry.memory {
        shared.metrics.bytes_sent.fetch_add(len, Ordering::Relaxed);
        let (a, b) = (start as usize, (start + len) as usize);
        return Ok(Body::from(bytes.slice(a..b.min(bytes.len()))));
    }
    let mut file = match tokio::fs::File::open(&entry.path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(path = %entry.path.display(), error = %e, "stored object unreadable");
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "stored object unreadable\n",
            )
                .into_response());
        }
    };
    if start > 0 && file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return Err((StatusCode::INTERNAL_SERVER_ERROR, "seek failed\n").into_response());
    }
    shared.metrics.bytes_sent.fetch_add(len, Ordering::Relaxed);
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 * 1024);
    Ok(Body::from_stream(stream))
}

/// The `/status` document.
pub fn status_json(shared: &Shared) -> serde_json::Value {
    let view = shared.current();
    let sync = shared.sync.read().map(|s| s.clone()).unwrap_or_default();
    let lag = sync
        .last_success_at
        .map(|t| (node::clock::now() - t).whole_seconds());
    let warnings = status_warnings(shared, view.as_deref());
    serde_json::json!({
        "view": view.as_ref().map(|v| serde_json::json!({
            "id": v.manifest.id,
            "created": v.manifest.created,
            "source": v.manifest.source,
            "targets": v.targets.len(),
            "metadata_files": v.metadata.len(),
        })),
        "trusted_versions": view.as_ref().map(|v| &v.manifest.versions),
        "upstream_in_use": sync.upstream_in_use,
        "last_sync": {
            "started": sync.last_sync_started,
            "finished": sync.last_sync_finished,
            "result": sync.last_sync_result,
            "error": sync.last_error,
            "upstream_errors": sync.upstream_errors,
            "lagging_upstreams": sync.lagging_upstreams,
            "in_progress": sync.syncing,
        },
        "last_success": sync.last_success,
        "manager": sync.manager,
        "lag_seconds": lag,
        "warnings": warnings,
    })
}

/// The view's own warnings, then expired timestamp or snapshot in service and the offline grace.
fn status_warnings(shared: &Shared, view: Option<&ServedView>) -> Vec<String> {
    let mut warnings: Vec<String> = view
        .map(|v| v.manifest.warnings.clone())
        .unwrap_or_default();
    if let Some(v) = view {
        let now = node::clock::now();
        for (role, expires) in [
            ("timestamp", &v.manifest.versions.timestamp_expires),
            ("snapshot", &v.manifest.versions.snapshot_expires),
        ] {
            if let Ok(t) = tuf::metadata::parse_expires(role, expires) {
                if t <= now {
                    let days = (now - t).whole_days();
                    let beyond =
                        days >= i64::try_from(shared.offline_grace_days).unwrap_or(i64::MAX);
                    warnings.push(format!(
                        "{role} in service expired at {expires}{}",
                        if beyond {
                            "; clients will reject it: sync or import a newer bundle"
                        } else {
                            " (within the offline grace)"
                        }
                    ));
                }
            }
        }
    }
    if shared.offline_grace_days > 0 {
        warnings.push(format!(
            "offline grace: expired timestamp/snapshot are served up to {} day(s) past expiry",
            shared.offline_grace_days
        ));
    }
    warnings
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let body = serde_json::to_vec_pretty(&status_json(&shared)).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=50-1000", 100), Some(Ok((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=-0", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=x-1", 100), None);
    }
}
