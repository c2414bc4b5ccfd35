//! The manager's HTTP API. Every route but `GET /healthz` requires a credential: administrators
//! an API token, hosts their own credential (heartbeat only), enrolment an enrolment token, all as
//! `Authorization: Bearer …`. Missing or wrong: 401 (and repeated failures from one address are
//! slowed down); a host credential on an administrator route: 403.

// Handlers short-circuit with a ready `Response` as the error value; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::Deserialize;

use crate::db::{Advisory, Beat, Db, Group, HistoryEntry};
use crate::error::Error;
use crate::fleet;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Public,
    Admin,
    Host,
    Enroll,
}

/// One documented route.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
}

/// Every route of the API (the router is built from the same paths; the OpenAPI document and
/// the authentication test walk this list).
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc { method: "GET", path: "/healthz", access: Access::Public, summary: "Liveness (no credential)" },
    RouteDoc { method: "POST", path: "/api/v1/enroll", access: Access::Enroll, summary: "Enrol a host: body {hostname, role}; returns {host_id, credential}" },
    RouteDoc { method: "POST", path: "/api/v1/heartbeat", access: Access::Host, summary: "Report state; returns the group's policy" },
    RouteDoc { method: "GET", path: "/api/v1/openapi.json", access: Access::Admin, summary: "This document" },
    RouteDoc { method: "GET", path: "/api/v1/hosts", access: Access::Admin, summary: "Hosts; filters role, group, product, build, build_below, component, version, status" },
    RouteDoc { method: "GET", path: "/api/v1/hosts/{id}", access: Access::Admin, summary: "One host with its hotfix history" },
    RouteDoc { method: "GET", path: "/api/v1/groups", access: Access::Admin, summary: "Groups and their policy" },
    RouteDoc { method: "PUT", path: "/api/v1/groups/{name}", access: Access::Admin, summary: "Create or replace a group" },
    RouteDoc { method: "GET", path: "/api/v1/advisories", access: Access::Admin, summary: "Advisories" },
    RouteDoc { method: "PUT", path: "/api/v1/advisories/{id}", access: Access::Admin, summary: "Create or replace an advisory" },
    RouteDoc { method: "GET", path: "/api/v1/advisories/{id}/hosts", access: Access::Admin, summary: "Hosts the advisory affects, with counts" },
    RouteDoc { method: "GET", path: "/api/v1/patches/{patch_id}/coverage", access: Access::Admin, summary: "Hosts with the patch, eligible without it, not eligible and why; query product, requires_build" },
    RouteDoc { method: "POST", path: "/api/v1/upgrade-plan", access: Access::Admin, summary: "Ordered upgrade steps for target builds: body {targets: {product: build}}" },
    RouteDoc { method: "GET", path: "/api/v1/audit", access: Access::Admin, summary: "Administrative changes, newest first" },
];

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 256 * 1024;

#[derive(Debug)]
pub struct AppState {
    pub db: Arc<Db>,
    pub offline_after: u64,
    pub manager_build: String,
    /// Added per authentication failure from one address beyond the fifth in a minute (max 2 s).
    pub failure_delay: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AppState {
    pub fn new(db: Arc<Db>, offline_after: u64, failure_delay: Duration) -> Arc<Self> {
        Arc::new(AppState {
            db,
            offline_after,
            failure_delay,
            manager_build: env!("CARGO_PKG_VERSION").to_string(),
            failures: Mutex::new(HashMap::new()),
        })
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    let body = serde_json::to_vec_pretty(&v).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, serde_json::json!({ "error": message }))
}

fn from_error(e: Error) -> Response {
    match e {
        Error::BadRequest { field, reason } => json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": format!("{field}: {reason}"), "field": field}),
        ),
        other => {
            tracing::error!(error = %other, "request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// The caller, once authenticated.
enum Caller {
    Admin(String),
    Host {
        id: String,
        group: String,
        role: String,
    },
    Enroll(String),
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(from_error(e)),
        Err(_) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
    }
}

/// Run `f` on the blocking pool and answer 200 with `to_json` of its result (or the error).
async fn answer<T: Send + 'static>(
    f: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
    to_json: impl FnOnce(T) -> serde_json::Value,
) -> Response {
    match blocking(f).await {
        Ok(v) => json(StatusCode::OK, to_json(v)),
        Err(r) => r,
    }
}

/// Authenticate for `access`; failures are counted per address and slowed down.
async fn authorize(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    peer: IpAddr,
    access: Access,
) -> Result<Caller, Response> {
    let token = bearer(headers).map(str::to_string);
    let st = state.clone();
    let found = match token {
        None => None,
        Some(t) => {
            blocking(move || -> crate::error::Result<Option<Caller>> {
                Ok(match access {
                    Access::Admin => match st.db.admin(&t)? {
                        Some(name) => Some(Caller::Admin(name)),
                        None => st
                            .db
                            .host_by_credential(&t)?
                            .map(|(id, group, role)| Caller::Host { id, group, role }),
                    },
                    Access::Host => st
                        .db
                        .host_by_credential(&t)?
                        .map(|(id, group, role)| Caller::Host { id, group, role }),
                    Access::Enroll => st.db.enroll_token_valid(&t)?.then_some(Caller::Enroll(t)),
                    Access::Public => None,
                })
            })
            .await?
        }
    };
    match (access, found) {
        (Access::Admin, Some(Caller::Host { .. })) => Err(error(
            StatusCode::FORBIDDEN,
            "a host credential cannot call administrator routes",
        )),
        (_, Some(c)) => Ok(c),
        (_, None) => {
            let delay = {
                let mut f = state
                    .failures
                    .lock()
                    .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "lock"))?;
                let e = f.entry(peer).or_insert((0, Instant::now()));
                if e.1.elapsed() > Duration::from_secs(60) {
                    *e = (0, Instant::now());
                }
                e.0 += 1;
                // The first few failures answer at once; then `failure_delay` more each, up to 2 s.
                (state.failure_delay * e.0.saturating_sub(5)).min(Duration::from_secs(2))
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Err(error(
                StatusCode::UNAUTHORIZED,
                "missing or invalid credential",
            ))
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/enroll", post(enroll))
        .route("/api/v1/heartbeat", post(heartbeat))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/hosts", get(list_hosts))
        .route("/api/v1/hosts/{id}", get(host_detail))
        .route("/api/v1/groups", get(list_groups))
        .route("/api/v1/groups/{name}", put(put_group))
        .route("/api/v1/advisories", get(list_advisories))
        .route("/api/v1/advisories/{id}", put(put_advisory))
        .route("/api/v1/advisories/{id}/hosts", get(advisory_hosts))
        .route("/api/v1/patches/{patch_id}/coverage", get(coverage))
        .route("/api/v1/upgrade-plan", post(upgrade_plan))
        .route("/api/v1/audit", get(audit))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

type Peer = ConnectInfo<SocketAddr>;

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        let field = msg
            .split('`')
            .nth(1)
            .map(str::to_string)
            .unwrap_or_else(|| "body".into());
        json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": format!("invalid body: {msg}"), "field": field}),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollBody {
    hostname: String,
    role: String,
}

async fn enroll(
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

fn bad(field: &str, reason: impl Into<String>) -> Response {
    from_error(Error::BadRequest {
        field: field.into(),
        reason: reason.into(),
    })
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

async fn heartbeat(
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

macro_rules! admin {
    ($s:expr, $peer:expr, $headers:expr) => {
        match authorize(&$s, &$headers, $peer.ip(), Access::Admin).await {
            Ok(Caller::Admin(name)) => name,
            Ok(_) => return error(StatusCode::FORBIDDEN, "administrator credential required"),
            Err(r) => return r,
        }
    };
}

async fn openapi(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
    admin!(s, peer, headers);
    json(StatusCode::OK, openapi_document())
}

/// The OpenAPI 3 document for [`ROUTES`].
pub fn openapi_document() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let entry = paths
            .entry(r.path.to_string())
            .or_insert_with(|| serde_json::json!({}));
        let security = match r.access {
            Access::Public => serde_json::json!([]),
            _ => serde_json::json!([{"bearer": []}]),
        };
        entry[r.method.to_lowercase()] = serde_json::json!({
            "summary": r.summary,
            "x-access": r.access,
            "security": security,
            "responses": {"200": {"description": "OK"}, "400": {"description": "Invalid body or query (names the field)"},
                "401": {"description": "Missing or invalid credential"}, "403": {"description": "Credential of the wrong kind"}},
        });
    }
    serde_json::json!({
        "openapi": "3.0.3",
        "info": {"title": "Updraft manager", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    })
}

async fn list_hosts(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    q: Result<Query<fleet::HostFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    admin!(s, peer, headers);
    let Ok(Query(f)) = q else {
        return bad("query", "unknown or malformed filter");
    };
    let (db, off) = (s.db.clone(), s.offline_after);
    answer(
        move || fleet::hosts(&db, &f, off),
        |h| serde_json::json!({"count": h.len(), "hosts": h}),
    )
    .await
}

async fn host_detail(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    admin!(s, peer, headers);
    let (db, off) = (s.db.clone(), s.offline_after);
    let r = blocking(move || {
        let h = db.host(&id)?;
        let hist: Vec<HistoryEntry> = db
            .history(Some(&id), None)?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        Ok(h.map(|h| {
            let status = if fleet::online(&h, off) {
                "online"
            } else {
                "offline"
            };
            serde_json::json!({"host": h, "status": status, "hotfix_history": hist})
        }))
    })
    .await;
    match r {
        Ok(Some(v)) => json(StatusCode::OK, v),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such host"),
        Err(r) => r,
    }
}

async fn list_groups(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
    admin!(s, peer, headers);
    let db = s.db.clone();
    answer(move || db.groups(), |g| serde_json::json!({"groups": g})).await
}

async fn put_group(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let admin = admin!(s, peer, headers);
    let mut g: Group = match parse(&body) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !g.name.is_empty() && g.name != name {
        return bad("name", "differs from the path");
    }
    g.name = name;
    let db = s.db.clone();
    answer(
        move || db.put_group(&g, &format!("admin {admin}")),
        |_| serde_json::json!({"ok": true}),
    )
    .await
}

async fn list_advisories(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
    admin!(s, peer, headers);
    let db = s.db.clone();
    answer(
        move || db.advisories(),
        |a| serde_json::json!({"advisories": a}),
    )
    .await
}

async fn put_advisory(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let admin = admin!(s, peer, headers);
    let mut a: Advisory = match parse(&body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    a.id = id;
    let db = s.db.clone();
    answer(
        move || db.put_advisory(&a, &format!("admin {admin}")),
        |_| serde_json::json!({"ok": true}),
    )
    .await
}

async fn advisory_hosts(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    admin!(s, peer, headers);
    let (db, off) = (s.db.clone(), s.offline_after);
    answer(move || fleet::affected(&db, &id, off), |v| v).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CoverageQuery {
    product: String,
    requires_build: String,
}

async fn coverage(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(patch_id): Path<String>,
    q: Result<Query<CoverageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    admin!(s, peer, headers);
    let Ok(Query(q)) = q else {
        return bad("query", "product and requires_build are required");
    };
    let (db, off) = (s.db.clone(), s.offline_after);
    answer(
        move || fleet::coverage(&db, &patch_id, &q.product, &q.requires_build, off),
        |v| v,
    )
    .await
}

async fn upgrade_plan(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    admin!(s, peer, headers);
    let req: fleet::PlanRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (db, off, build) = (s.db.clone(), s.offline_after, s.manager_build.clone());
    answer(move || fleet::plan(&db, &req, &build, off), |v| v).await
}

async fn audit(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
    admin!(s, peer, headers);
    let db = s.db.clone();
    answer(
        move || db.audit_log(1000),
        |v| serde_json::json!({"audit": v}),
    )
    .await
}
