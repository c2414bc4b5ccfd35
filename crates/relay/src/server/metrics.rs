//! `/metrics`: the relay's counters and the view in service in the Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{Metrics, Shared};
use crate::view::ServedView;

pub(super) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let view = shared.current();
    let mut out = Exposition(String::with_capacity(2048));
    traffic_metrics(&mut out, &shared.metrics);
    sync_metrics(&mut out, &shared.metrics);
    view_metrics(&mut out, view.as_deref());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out.0).into_response()
}

/// Prometheus text exposition, written one metric family at a time.
struct Exposition(String);

impl Exposition {
    fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
        self.0
            .push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, v) in samples {
            self.0.push_str(&format!("{name}{labels} {v}\n"));
        }
    }
}

fn g(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Requests served and bytes sent.
fn traffic_metrics(out: &mut Exposition, m: &Metrics) {
    out.metric(
        "updraft_relay_requests_total",
        "counter",
        "Requests served, by kind.",
        &[
            ("{kind=\"metadata\"}", g(&m.metadata_requests)),
            (
                "{kind=\"metadata_not_modified\"}",
                g(&m.metadata_not_modified),
            ),
            ("{kind=\"target\"}", g(&m.target_requests)),
            ("{kind=\"target_partial\"}", g(&m.target_partial)),
            ("{kind=\"not_found\"}", g(&m.not_found)),
        ],
    );
    out.metric(
        "updraft_relay_sent_bytes_total",
        "counter",
        "Body bytes sent.",
        &[("", g(&m.bytes_sent))],
    );
}

/// Sync cycles and what they mirrored.
fn sync_metrics(out: &mut Exposition, m: &Metrics) {
    out.metric(
        "updraft_relay_syncs_total",
        "counter",
        "Sync cycles by result.",
        &[
            ("{result=\"ok\"}", g(&m.syncs_ok)),
            ("{result=\"unchanged\"}", g(&m.syncs_unchanged)),
            ("{result=\"failed\"}", g(&m.syncs_failed)),
        ],
    );
    out.metric(
        "updraft_relay_sync_duration_microseconds_total",
        "counter",
        "Time spent in sync cycles.",
        &[("", g(&m.sync_micros_total))],
    );
    out.metric(
        "updraft_relay_last_sync_duration_microseconds",
        "gauge",
        "Duration of the last sync cycle.",
        &[("", g(&m.last_sync_micros))],
    );
    out.metric(
        "updraft_relay_downloaded_bytes_total",
        "counter",
        "Verified target bytes mirrored from upstreams.",
        &[("", g(&m.downloaded_bytes))],
    );
}

/// The view in service (0 for both without one).
fn view_metrics(out: &mut Exposition, view: Option<&ServedView>) {
    let (id, targets) = view
        .map(|v| (v.manifest.id, v.targets.len() as u64))
        .unwrap_or((0, 0));
    out.metric(
        "updraft_relay_view_id",
        "gauge",
        "View in service.",
        &[("", id)],
    );
    out.metric(
        "updraft_relay_view_targets",
        "gauge",
        "Target paths in the view.",
        &[("", targets)],
    );
}
