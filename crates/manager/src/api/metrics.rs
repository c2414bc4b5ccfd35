//! `/metrics` of the manager (administrator credential, like every route but `/healthz`):
//! requests by kind and outcome with their durations, heartbeats by outcome, authentication
//! failures, hosts known and the build, in the Prometheus text format.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use transport::{Exposition, HttpMetrics, OUTCOMES};

use super::{blocking, AppState};

/// The manager's request kinds.
const KINDS: &[&str] = &["heartbeat", "enroll", "admin", "health", "metrics", "other"];

fn kind(path: &str) -> usize {
    if path == model::protocol::HEARTBEAT_PATH {
        0
    } else if path == model::protocol::ENROLL_PATH {
        1
    } else if path.starts_with("/api/") {
        2
    } else {
        match path {
            "/healthz" => 3,
            "/metrics" => 4,
            _ => 5,
        }
    }
}

/// The manager's request metrics.
pub(super) fn http() -> Arc<HttpMetrics> {
    HttpMetrics::new("manager", KINDS, kind)
}

pub(super) async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    let db = s.db.clone();
    let hosts = match blocking(move || db.host_count()).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let mut out = Exposition::default();
    out.build_info();
    s.http.write(&mut out);
    let name = "updraft_manager_heartbeats_total";
    out.family(name, "counter", "Heartbeats received, by outcome.");
    for outcome in OUTCOMES {
        let n = s.http.count("heartbeat", outcome);
        out.sample(name, &[("outcome", outcome)], n);
    }
    out.single(
        "updraft_manager_auth_failures_total",
        "counter",
        "Requests refused for a missing or wrong credential (401).",
        s.auth_failures(),
    );
    out.single("updraft_manager_hosts", "gauge", "Hosts enrolled.", hosts);
    out.into_response()
}
