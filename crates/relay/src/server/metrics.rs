//! `/metrics`: the relay's requests, syncs and the view in service in the Prometheus text
//! format (the writer is shared with the origin and the manager: [`transport::Exposition`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use axum::extract::State;
use axum::response::Response;
use transport::Exposition;

use super::{Metrics, Shared};
use crate::view::ServedView;

/// The top-level roles whose expiry is shown.
const ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

pub(super) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let view = shared.current();
    let mut out = Exposition::default();
    out.build_info();
    shared.http.write(&mut out);
    traffic_metrics(&mut out, &shared.metrics);
    sync_metrics(&mut out, &shared);
    view_metrics(&mut out, view.as_deref());
    expiry_metrics(&mut out, &shared, view.as_deref());
    out.into_response()
}

fn g(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Partial answers and bytes sent.
fn traffic_metrics(out: &mut Exposition, m: &Metrics) {
    out.single(
        "updraft_relay_partial_responses_total",
        "counter",
        "Target answers of a byte range (206).",
        g(&m.target_partial),
    );
    out.single(
        "updraft_relay_sent_bytes_total",
        "counter",
        "Body bytes sent.",
        g(&m.bytes_sent),
    );
}

/// Sync cycles, their durations, the last success and what they mirrored.
fn sync_metrics(out: &mut Exposition, shared: &Shared) {
    let m = &shared.metrics;
    let name = "updraft_relay_syncs_total";
    out.family(name, "counter", "Sync cycles by result.");
    for (result, c) in [
        ("ok", &m.syncs_ok),
        ("unchanged", &m.syncs_unchanged),
        ("failed", &m.syncs_failed),
    ] {
        out.sample(name, &[("result", result)], g(c));
    }
    let name = "updraft_relay_sync_duration_seconds";
    out.family(name, "histogram", "Duration of sync cycles.");
    out.histogram(name, &[], &m.sync_duration);
    out.single(
        "updraft_relay_last_sync_duration_seconds",
        "gauge",
        "Duration of the last sync cycle.",
        g(&m.last_sync_micros) as f64 / 1e6,
    );
    let last_success = shared
        .sync
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .last_success_at
        .map(|t| t.unix_timestamp())
        .unwrap_or(0);
    out.single(
        "updraft_relay_last_sync_success_timestamp_seconds",
        "gauge",
        "When the last sync succeeded (unix seconds; 0: not since the start).",
        last_success,
    );
    out.single(
        "updraft_relay_downloaded_bytes_total",
        "counter",
        "Verified target bytes mirrored from upstreams (deltas included).",
        g(&m.downloaded_bytes),
    );
    out.single(
        "updraft_relay_rebuilt_targets_total",
        "counter",
        "Targets rebuilt from a stored version and deltas instead of downloaded whole.",
        g(&m.rebuilt_targets),
    );
    out.single(
        "updraft_relay_rebuilt_full_bytes_total",
        "counter",
        "What the rebuilt targets' full files would have cost to download.",
        g(&m.rebuilt_full_bytes),
    );
}

/// The view in service (0 for all without one).
fn view_metrics(out: &mut Exposition, view: Option<&ServedView>) {
    let (id, targets) = view
        .map(|v| (v.manifest.id, v.targets.len() as u64))
        .unwrap_or((0, 0));
    out.single("updraft_relay_view_id", "gauge", "View in service.", id);
    out.single(
        "updraft_relay_view_targets",
        "gauge",
        "Target paths in the view.",
        targets,
    );
    let v = view.map(|v| &v.manifest.versions);
    out.single(
        "updraft_trusted_root_version",
        "gauge",
        "Version of the trusted root in service.",
        v.map(|v| v.root).unwrap_or(0),
    );
    let name = "updraft_metadata_version";
    out.family(name, "gauge", "Version of each top-level role in service.");
    let versions = [
        ("root", v.map(|v| v.root)),
        ("timestamp", v.map(|v| v.timestamp)),
        ("snapshot", v.map(|v| v.snapshot)),
        ("targets", v.and_then(|v| v.targets.get("targets").copied())),
    ];
    for (role, version) in versions {
        out.sample(name, &[("role", role)], version.unwrap_or(0));
    }
}

/// `updraft_metadata_expiry_timestamp_seconds{role}` of the view in service.
fn expiry_metrics(out: &mut Exposition, shared: &Shared, view: Option<&ServedView>) {
    let name = "updraft_metadata_expiry_timestamp_seconds";
    out.family(
        name,
        "gauge",
        "When each top-level role in service expires (unix seconds).",
    );
    let Some(view) = view else { return };
    let mut cache = shared
        .expiries
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let fresh = match cache.take() {
        Some((id, e)) if id == view.manifest.id => e,
        _ => expiries(view),
    };
    for (role, t) in &fresh {
        out.sample(name, &[("role", role)], t);
    }
    *cache = Some((view.manifest.id, fresh));
}

/// The expiry of each top-level role the view serves, read from its verified metadata.
fn expiries(view: &ServedView) -> Vec<(String, i64)> {
    #[derive(serde::Deserialize)]
    struct Signed {
        expires: String,
    }
    #[derive(serde::Deserialize)]
    struct Doc {
        signed: Signed,
    }
    let root = format!("{}.root.json", view.manifest.versions.root);
    ROLES
        .iter()
        .filter_map(|role| {
            let entry = match *role {
                "root" => view.metadata.get(&root),
                r => view.metadata.get(&format!("{r}.json")),
            }?;
            let doc: Doc = serde_json::from_slice(&entry.bytes).ok()?;
            let t = tuf::metadata::parse_expires(role, &doc.signed.expires).ok()?;
            Some((role.to_string(), t.unix_timestamp()))
        })
        .collect()
}
