//! Routes hosts call: enrolment and heartbeats, in the words of [`model::protocol`]. Hosts of
//! other versions must interoperate: fields a newer host adds are accepted and ignored (within
//! [`BODY_LIMIT`]); what this build does read is validated as strictly as ever.

// Handlers short-circuit with a ready `Response` as the error value.
#![allow(clippy::result_large_err)]

use model::protocol::{EnrollRequest, Heartbeat, HeartbeatReply, Role, MAX_HISTORY_PER_HEARTBEAT};

use super::*;
use crate::db::HostCredential;

/// Most modules a heartbeat may report.
const MAX_MODULES: usize = 100;

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

fn check_hostname(hostname: &str) -> Result<(), Response> {
    if hostname.is_empty() || hostname.len() > 253 {
        return Err(bad("hostname", "1 to 253 characters"));
    }
    Ok(())
}

/// What this build reads of a heartbeat must be well-formed; `role` must be the enrolled one.
fn validate(b: &Heartbeat, role: Role) -> Result<(), Response> {
    check_hostname(&b.hostname)?;
    if b.role != role {
        return Err(bad("role", format!("this host enrolled as {role}")));
    }
    for (p, v) in &b.builds {
        if p.is_empty() || p.len() > 100 {
            return Err(bad("builds", "product names are 1 to 100 characters"));
        }
        v.parse::<model::Version>()
            .map_err(|e| bad(&format!("builds.{p}"), e.to_string()))?;
    }
    for (c, v) in &b.components {
        model::check_component(c).map_err(|e| bad("components", e.to_string()))?;
        v.parse::<model::Version>()
            .map_err(|e| bad(&format!("components.{c}"), e.to_string()))?;
    }
    if b.modules.len() > MAX_MODULES {
        return Err(bad("modules", format!("at most {MAX_MODULES}")));
    }
    if b.history.len() > MAX_HISTORY_PER_HEARTBEAT {
        return Err(bad(
            "history",
            format!("at most {MAX_HISTORY_PER_HEARTBEAT} entries per heartbeat"),
        ));
    }
    Ok(())
}

pub(super) async fn heartbeat(
    State(s): State<Arc<AppState>>,
    HostCaller(host): HostCaller,
    body: Bytes,
) -> Response {
    let b: Heartbeat = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = validate(&b, host.role) {
        return r;
    }
    let db = s.db.clone();
    match blocking(move || record(&db, &host, &b)).await {
        Ok(reply) => json(StatusCode::OK, &reply),
        Err(r) => r,
    }
}

/// Record the heartbeat; the reply carries the host's group's policy.
fn record(db: &Db, host: &HostCredential, b: &Heartbeat) -> crate::error::Result<HeartbeatReply> {
    db.heartbeat(&host.id, b)?;
    let Some(group) = db.group(&host.group)? else {
        return Ok(HeartbeatReply { policy: None });
    };
    let parent = match &group.parent {
        Some(p) => db.group(p)?,
        None => None,
    };
    Ok(HeartbeatReply {
        policy: Some(group.policy(parent.as_ref())),
    })
}
