//! Routes hosts call: enrolment and heartbeats, in the words of [`model::protocol`]. Hosts of
//! other versions must interoperate: fields a newer host adds are accepted and ignored (within
//! [`BODY_LIMIT`]); what this build does read is validated as strictly as ever.

// Handlers short-circuit with a ready `Response` as the error value.
#![allow(clippy::result_large_err)]

use model::protocol::{
    EnrollRequest, Heartbeat, HeartbeatReply, HistoryEntry, Role, MAX_HISTORY_PER_HEARTBEAT,
};

use super::*;
use crate::db::HostCredential;
use crate::text;

/// Most modules a heartbeat may report.
const MAX_MODULES: usize = 100;
/// Most builds, components (of the host or of one module) a heartbeat may report.
const MAX_ENTRIES: usize = 1000;
/// Longest free text (a history message, a module's reason, the last result), in bytes.
const MAX_TEXT: usize = 8192;

pub(super) async fn enroll(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    EnrollCaller(token): EnrollCaller,
    body: Bytes,
) -> Response {
    let b: EnrollRequest = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = check_hostname(&b.hostname) {
        return r;
    }
    let db = s.db.clone();
    match blocking(move || db.enroll(&token, &b.hostname, b.role)).await {
        Ok(Some(reply)) => json(StatusCode::OK, &reply),
        // A token used up or expired since it was checked counts as an authentication failure.
        Ok(None) => refuse(&s, peer.ip(), "enrolment token unknown, expired or used up").await,
        Err(r) => r,
    }
}

fn check(r: crate::error::Result<()>) -> Result<(), Response> {
    r.map_err(from_error)
}

fn check_hostname(hostname: &str) -> Result<(), Response> {
    check(text::check_name("hostname", hostname, 253))
}

/// What this build reads of a heartbeat must be well-formed; `role` must be the enrolled one.
/// Names refuse control characters (400 naming the field); free text is bounded in length, kept
/// as it came and escaped when shown.
fn validate(b: &Heartbeat, role: Role) -> Result<(), Response> {
    check_hostname(&b.hostname)?;
    if b.role != role {
        return Err(bad("role", format!("this host enrolled as {role}")));
    }
    if let Some(u) = &b.upstream {
        check(text::check_name("upstream", u, 2048))?;
    }
    if let Some(r) = &b.last_result {
        check(text::check_free_text("last_result", r, MAX_TEXT))?;
    }
    if let Some(t) = &b.trust {
        if tuf::metadata::parse_expires("timestamp", &t.timestamp_expires).is_err() {
            return Err(bad("trust.timestamp_expires", "not an RFC 3339 time"));
        }
    }
    if b.builds.len() > MAX_ENTRIES || b.components.len() > MAX_ENTRIES {
        return Err(bad(
            "builds",
            format!("at most {MAX_ENTRIES} builds and components"),
        ));
    }
    for (p, v) in &b.builds {
        check(text::check_name("builds", p, 100))?;
        v.parse::<model::Version>()
            .map_err(|e| bad(&format!("builds.{}", text::escape(p)), e.to_string()))?;
    }
    for (c, v) in &b.components {
        model::check_component(c).map_err(|e| bad("components", e.to_string()))?;
        v.parse::<model::Version>()
            .map_err(|e| bad(&format!("components.{c}"), e.to_string()))?;
    }
    validate_modules(b)?;
    validate_failures(b)?;
    if b.history.len() > MAX_HISTORY_PER_HEARTBEAT {
        return Err(bad(
            "history",
            format!("at most {MAX_HISTORY_PER_HEARTBEAT} entries per heartbeat"),
        ));
    }
    for (i, h) in b.history.iter().enumerate() {
        validate_entry(&format!("history[{i}]"), h)?;
    }
    Ok(())
}

fn validate_modules(b: &Heartbeat) -> Result<(), Response> {
    if b.modules.len() > MAX_MODULES {
        return Err(bad("modules", format!("at most {MAX_MODULES}")));
    }
    for (i, m) in b.modules.iter().enumerate() {
        let field = |f: &str| format!("modules[{i}].{f}");
        check(text::check_name(&field("name"), &m.name, 100))?;
        check(text::check_name(&field("status"), m.status.as_str(), 100))?;
        if let Some(r) = &m.reason {
            check(text::check_free_text(&field("reason"), r, MAX_TEXT))?;
        }
        if m.components.len() > MAX_ENTRIES {
            return Err(bad(&field("components"), format!("at most {MAX_ENTRIES}")));
        }
        for (c, v) in &m.components {
            check(text::check_name(&field("components"), c, 200))?;
            if let Some(v) = v {
                check(text::check_name(&field("components"), v, 100))?;
            }
        }
    }
    Ok(())
}

fn validate_failures(b: &Heartbeat) -> Result<(), Response> {
    if b.failed_versions.len() > MAX_ENTRIES {
        return Err(bad("failed_versions", format!("at most {MAX_ENTRIES}")));
    }
    for (i, f) in b.failed_versions.iter().enumerate() {
        let field = |x: &str| format!("failed_versions[{i}].{x}");
        model::check_component(&f.component)
            .map_err(|e| bad(&field("component"), e.to_string()))?;
        f.version
            .parse::<model::Version>()
            .map_err(|e| bad(&field("version"), e.to_string()))?;
        check(text::check_free_text(&field("reason"), &f.reason, MAX_TEXT))?;
    }
    Ok(())
}

fn validate_entry(at: &str, h: &HistoryEntry) -> Result<(), Response> {
    let field = |f: &str| format!("{at}.{f}");
    for (name, value) in [
        ("time", &h.time),
        ("patch_id", &h.patch_id),
        ("product", &h.product),
        ("from_build", &h.from_build),
        ("to_build", &h.to_build),
    ] {
        check(text::check_name(&field(name), value, 100))?;
    }
    check(text::check_name(&field("outcome"), h.outcome.as_str(), 100))?;
    if let Some(v) = &h.version {
        check(text::check_name(&field("version"), v, 100))?;
    }
    check(text::check_free_text(
        &field("message"),
        &h.message,
        MAX_TEXT,
    ))
}

pub(super) async fn heartbeat(
    State(s): State<Arc<AppState>>,
    HostCaller(host): HostCaller,
    body: Bytes,
) -> Response {
    if let Err(wait) = s.heartbeats.take(&host.id) {
        return too_many(wait);
    }
    let b: Heartbeat = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = validate(&b, host.role) {
        return r;
    }
    let db = s.db.clone();
    let lease = s.decision_lease;
    match blocking(move || record(&db, &host, &b, lease)).await {
        Ok(reply) => json(StatusCode::OK, &reply),
        Err(r) => r,
    }
}

/// 429 with `Retry-After`: this host sent more heartbeats than its rate allows.
fn too_many(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many heartbeats from this host: retry after {secs} s"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Record the heartbeat (and what it says about running rollouts); the reply carries the
/// host's group's policy with the holds of the rollouts.
fn record(
    db: &Db,
    host: &HostCredential,
    b: &Heartbeat,
    decision_lease: u64,
) -> crate::error::Result<HeartbeatReply> {
    let active = db.active_rollouts_cached()?;
    db.heartbeat(&host.id, b, &active)?;
    let Some(group) = db.group(&host.group)? else {
        return Ok(HeartbeatReply { policy: None });
    };
    let parent = match &group.parent {
        Some(p) => db.group(p)?,
        None => None,
    };
    let mut policy = group.policy(parent.as_ref());
    policy.decision_lease = decision_lease;
    // Relays too: a relay that upgrades its own build follows the rollouts of `updraft`.
    crate::db::rollouts::add_holds(&mut policy, &host.id, &active);
    policy.retry = db.retries_to_send(&host.id)?;
    Ok(HeartbeatReply {
        policy: Some(policy),
    })
}
