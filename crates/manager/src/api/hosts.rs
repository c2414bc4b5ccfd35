//! Routes hosts call: enrolment and heartbeats.

// Handlers short-circuit with a ready `Response` as the error value.
#![allow(clippy::result_large_err)]

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EnrollBody {
    hostname: String,
    role: String,
}

pub(super) async fn enroll(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Caller::Enroll(token) = (match authorize(&s, &headers, peer.ip(), Access::Enroll).await {
        Ok(c) => c,
        Err(r) => return r,
    }) else {
        return error(StatusCode::UNAUTHORIZED, "missing or invalid credential");
    };
    let b: EnrollBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if b.hostname.is_empty() || b.hostname.len() > 253 {
        return from_error(Error::BadRequest {
            field: "hostname".into(),
            reason: "1 to 253 characters".into(),
        });
    }
    if b.role != "agent" && b.role != "relay" {
        return from_error(Error::BadRequest {
            field: "role".into(),
            reason: "agent or relay".into(),
        });
    }
    let db = s.db.clone();
    match blocking(move || db.enroll(&token, &b.hostname, &b.role)).await {
        Ok(Some((id, cred))) => json(
            StatusCode::OK,
            serde_json::json!({"host_id": id, "credential": cred}),
        ),
        Ok(None) => {
            // An unknown, expired or used-up enrolment token counts as an authentication failure.
            let _ = authorize(&s, &HeaderMap::new(), peer.ip(), Access::Host).await;
            error(
                StatusCode::UNAUTHORIZED,
                "enrolment token unknown, expired or used up",
            )
        }
        Err(r) => r,
    }
}

/// A heartbeat as hosts send it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    pub hostname: String,
    pub role: String,
    #[serde(default)]
    pub upstream: Option<String>,
    #[serde(default)]
    pub builds: BTreeMap<String, String>,
    #[serde(default)]
    pub components: BTreeMap<String, String>,
    #[serde(default)]
    pub modules: Vec<serde_json::Value>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    #[serde(default)]
    pub last_result: Option<String>,
    #[serde(default)]
    pub applied_policy: Option<serde_json::Value>,
}

fn validate(b: &HeartbeatBody, role: &str) -> Result<(), Response> {
    if b.hostname.is_empty() || b.hostname.len() > 253 {
        return Err(bad("hostname", "1 to 253 characters"));
    }
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
    if b.modules.len() > 100 {
        return Err(bad("modules", "at most 100"));
    }
    if b.history.len() > 1000 {
        return Err(bad("history", "at most 1000 entries per heartbeat"));
    }
    Ok(())
}

pub(super) async fn heartbeat(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (id, group, role) = match authorize(&s, &headers, peer.ip(), Access::Host).await {
        Ok(Caller::Host { id, group, role }) => (id, group, role),
        Ok(_) => return error(StatusCode::UNAUTHORIZED, "missing or invalid credential"),
        Err(r) => return r,
    };
    let b: HeartbeatBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = validate(&b, &role) {
        return r;
    }
    let db = s.db.clone();
    let beat = Beat {
        hostname: b.hostname,
        upstream: b.upstream,
        builds: b.builds,
        components: b.components,
        modules: serde_json::Value::Array(b.modules),
        history: b.history,
        last_result: b.last_result,
        applied_policy: b.applied_policy,
    };
    let result = blocking(move || {
        db.heartbeat(&id, &beat)?;
        let g = db.group(&group)?;
        let parent = match g.as_ref().and_then(|g| g.parent.clone()) {
            Some(p) => db.group(&p)?,
            None => None,
        };
        Ok((g, parent))
    })
    .await;
    match result {
        Ok((Some(g), parent)) => {
            // A relay group's upstreams are its parent group's relays.
            // A relay group's upstreams are its parent group's relays; a root relay group keeps
            // the upstreams it was configured with (the origin is not a group).
            let relays = if g.role == "relay" {
                parent.map(|p| p.relays).unwrap_or_default()
            } else {
                g.relays
            };
            json(
                StatusCode::OK,
                serde_json::json!({"policy": {"group": g.name, "relays": relays, "poll_interval": g.poll_interval,
                    "allow_direct": g.allow_direct, "pinned": g.pinned}}),
            )
        }
        Ok((None, _)) => json(StatusCode::OK, serde_json::json!({"policy": null})),
        Err(r) => r,
    }
}
