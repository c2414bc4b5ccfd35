//! What every server (origin, relay, manager) shows of itself: the Prometheus text format
//! ([`Exposition`]), duration histograms in seconds ([`Histogram`]), and the request layer
//! ([`observed`]) that counts each request by kind and outcome, times it, and writes one access
//! log line (target `access`, so `RUST_LOG=access=off` silences them).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Upper bounds (seconds) of the histogram buckets: a cached 304 to a sync of minutes.
pub const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0,
    600.0,
];

/// A duration histogram (seconds in the exposition), lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Prometheus text exposition (format 0.0.4), written one metric family at a time.
#[derive(Debug, Default)]
pub struct Exposition(String);

/// Escape a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)], extra: Option<(&str, &str)>) -> String {
    let all: Vec<String> = pairs
        .iter()
        .chain(extra.as_ref())
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if all.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", all.join(","))
    }
}

impl Exposition {
    /// Start a family: `kind` is `counter`, `gauge` or `histogram`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels_: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{name}{} {value}", labels(labels_, None));
    }

    /// A family of one sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// One histogram series of the current family (`_bucket`, `_sum`, `_count`).
    pub fn histogram(&mut self, name: &str, labels_: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0u64;
        for (i, b) in h.buckets.iter().enumerate() {
            cumulative = cumulative.saturating_add(b.load(Ordering::Relaxed));
            let le = BUCKETS
                .get(i)
                .map(|v| v.to_string())
                .unwrap_or_else(|| "+Inf".into());
            let l = labels(labels_, Some(("le", &le)));
            let _ = writeln!(self.0, "{name}_bucket{l} {cumulative}");
        }
        let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let l = labels(labels_, None);
        let _ = writeln!(self.0, "{name}_sum{l} {sum}");
        let _ = writeln!(self.0, "{name}_count{l} {cumulative}");
    }

    /// `updraft_build_info{version="…"} 1`.
    pub fn build_info(&mut self) {
        self.family("updraft_build_info", "gauge", "The running build.");
        self.sample(
            "updraft_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1,
        );
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The exposition as an HTTP answer.
    pub fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            self.0,
        )
            .into_response()
    }
}

/// How a request ended, by its status: a label separate from the request's kind.
pub const OUTCOMES: [&str; 6] = [
    "ok",
    "not_modified",
    "not_found",
    "denied",
    "rejected",
    "error",
];

/// The outcome (index into [`OUTCOMES`]) of a status: 304 not_modified, 404 not_found (the
/// routine next-root probe of every poll), 401/403 denied, other 4xx rejected, 5xx error.
pub fn outcome(status: StatusCode) -> usize {
    match status.as_u16() {
        304 => 1,
        404 => 2,
        401 | 403 => 3,
        400..=499 => 4,
        500..=599 => 5,
        _ => 0,
    }
}

/// Requests of one server by kind and outcome, and their durations by kind.
#[derive(Debug)]
pub struct HttpMetrics {
    server: &'static str,
    kinds: &'static [&'static str],
    classify: fn(&str) -> usize,
    counts: Vec<[AtomicU64; OUTCOMES.len()]>,
    durations: Vec<Histogram>,
    /// Response body bytes by kind, as each response's `Content-Length` declares them.
    bytes: Vec<AtomicU64>,
}

impl HttpMetrics {
    /// Metrics of `server`, whose request paths `classify` maps to an index into `kinds`
    /// (anything out of range counts as the last kind).
    pub fn new(
        server: &'static str,
        kinds: &'static [&'static str],
        classify: fn(&str) -> usize,
    ) -> Arc<Self> {
        Arc::new(HttpMetrics {
            server,
            kinds,
            classify,
            counts: kinds.iter().map(|_| Default::default()).collect(),
            durations: kinds.iter().map(|_| Histogram::default()).collect(),
            bytes: kinds.iter().map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn kind_of(&self, path: &str) -> usize {
        (self.classify)(path).min(self.kinds.len().saturating_sub(1))
    }

    /// Count one request of `path` that ended with `status` after `took`.
    pub fn record(&self, path: &str, status: StatusCode, took: Duration) {
        let k = self.kind_of(path);
        if let Some(c) = self.counts.get(k).and_then(|c| c.get(outcome(status))) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(h) = self.durations.get(k) {
            h.observe(took);
        }
    }

    /// Count `n` response body bytes of a request of `path`.
    pub fn record_bytes(&self, path: &str, n: u64) {
        if let Some(b) = self.bytes.get(self.kind_of(path)) {
            b.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Response body bytes sent for requests of `kind` (0 for unknown names).
    pub fn bytes(&self, kind: &str) -> u64 {
        self.kinds
            .iter()
            .position(|x| *x == kind)
            .and_then(|k| self.bytes.get(k))
            .map(|b| b.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Requests of `kind` that ended with `outcome` (0 for unknown names).
    pub fn count(&self, kind: &str, outcome: &str) -> u64 {
        let k = self.kinds.iter().position(|x| *x == kind);
        let o = OUTCOMES.iter().position(|x| *x == outcome);
        k.zip(o)
            .and_then(|(k, o)| self.counts.get(k)?.get(o))
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// `updraft_http_requests_total` and `updraft_http_request_duration_seconds`.
    pub fn write(&self, out: &mut Exposition) {
        let name = "updraft_http_requests_total";
        out.family(name, "counter", "HTTP requests by kind and outcome.");
        for (kind, counts) in self.kinds.iter().zip(&self.counts) {
            for (outcome, c) in OUTCOMES.iter().zip(counts) {
                let l = [
                    ("server", self.server),
                    ("kind", kind),
                    ("outcome", outcome),
                ];
                out.sample(name, &l, c.load(Ordering::Relaxed));
            }
        }
        let name = "updraft_http_response_bytes_total";
        out.family(
            name,
            "counter",
            "Response body bytes by kind (as each response's Content-Length declares them).",
        );
        for (kind, b) in self.kinds.iter().zip(&self.bytes) {
            let l = [("server", self.server), ("kind", kind)];
            out.sample(name, &l, b.load(Ordering::Relaxed));
        }
        let name = "updraft_http_request_duration_seconds";
        out.family(
            name,
            "histogram",
            "Time from a complete request head to the response head, by kind.",
        );
        for (kind, h) in self.kinds.iter().zip(&self.durations) {
            out.histogram(name, &[("server", self.server), ("kind", kind)], h);
        }
    }
}

/// The request kinds of a repository server (origin, relay).
pub const REPOSITORY_KINDS: &[&str] =
    &["metadata", "target", "status", "health", "metrics", "other"];

/// The kind (index into [`REPOSITORY_KINDS`]) of a request path on a repository server.
pub fn repository_kind(path: &str) -> usize {
    if path.starts_with("/metadata/") {
        0
    } else if path.starts_with("/targets/") {
        1
    } else {
        match path {
            "/status" => 2,
            "/healthz" => 3,
            "/metrics" => 4,
            _ => 5,
        }
    }
}

/// `router` with every request counted in `metrics` and access-logged.
pub fn observed<S>(router: axum::Router<S>, metrics: Arc<HttpMetrics>) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(axum::middleware::from_fn_with_state(metrics, track))
}

async fn track(State(m): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let resp = next.run(req).await;
    let took = started.elapsed();
    let status = resp.status();
    m.record(&path, status, took);
    let declared = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(n), false) = (declared, method == axum::http::Method::HEAD) {
        m.record_bytes(&path, n);
    }
    tracing::info!(
        target: "access",
        server = m.server,
        method = %method,
        path = %path.escape_debug(),
        status = status.as_u16(),
        duration_ms = took.as_secs_f64() * 1000.0,
        peer = peer.map(|p| p.to_string()).unwrap_or_default(),
        "request"
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_with_inf_sum_and_count() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(20));
        h.observe(Duration::from_secs(1000));
        let mut out = Exposition::default();
        out.histogram("x", &[("k", "a\"b")], &h);
        let s = out.into_string();
        assert!(
            s.contains("x_bucket{k=\"a\\\"b\",le=\"0.0005\"} 1\n"),
            "{s}"
        );
        assert!(s.contains("x_bucket{k=\"a\\\"b\",le=\"0.025\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{k=\"a\\\"b\",le=\"600\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{k=\"a\\\"b\",le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("x_count{k=\"a\\\"b\"} 3\n"), "{s}");
        assert!(s.contains("x_sum{k=\"a\\\"b\"} 1000.0203"), "{s}");
    }

    #[test]
    fn a_404_is_not_found_not_an_error() {
        assert_eq!(OUTCOMES[outcome(StatusCode::NOT_FOUND)], "not_found");
        assert_eq!(OUTCOMES[outcome(StatusCode::NOT_MODIFIED)], "not_modified");
        assert_eq!(OUTCOMES[outcome(StatusCode::UNAUTHORIZED)], "denied");
        assert_eq!(OUTCOMES[outcome(StatusCode::TOO_MANY_REQUESTS)], "rejected");
        assert_eq!(OUTCOMES[outcome(StatusCode::BAD_GATEWAY)], "error");
        assert_eq!(OUTCOMES[outcome(StatusCode::PARTIAL_CONTENT)], "ok");
    }
}
