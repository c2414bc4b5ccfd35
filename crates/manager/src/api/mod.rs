//! The manager's HTTP API. Every route but `GET /healthz` requires a credential: administrators
//! an API token, hosts their own credential (heartbeat only), enrolment an enrolment token, all as
//! `Authorization: Bearer …`. Missing or wrong: 401 (and repeated failures from one address are
//! slowed down); a host credential on an administrator route: 403.

// Handlers short-circuit with a ready `Response` as the error value; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::db::{Advisory, Db, Group, HostCredential, Person, UserRole};
use crate::error::Error;
use crate::fleet;

/// Who may call a route: nobody in particular (`/healthz`), a person with at least this role
/// (an API token or a console session), a host, or the holder of an enrolment token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Person(UserRole),
    Host,
    Enroll,
}

impl Access {
    /// As the OpenAPI document's `x-access` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Person(r) => r.as_str(),
            Access::Host => "host",
            Access::Enroll => "enroll",
        }
    }
}

impl Serialize for Access {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

const READ: Access = Access::Person(UserRole::Auditor);
const OPERATE: Access = Access::Person(UserRole::Operator);
const ADMIN: Access = Access::Person(UserRole::Admin);

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Put => MethodFilter::PUT,
            Method::Delete => MethodFilter::DELETE,
        }
    }
}

type Handler = fn(MethodFilter) -> MethodRouter<Arc<AppState>>;

/// One route: the router and the OpenAPI document are both built from [`ROUTES`], and the
/// route's `access` is enforced by the router (an authentication layer in front of the
/// handler), so a route cannot be served without being documented and checked.
#[derive(Clone, Copy)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    handler: Handler,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({:?})",
            self.method.as_str(),
            self.path,
            self.access
        )
    }
}

/// Every route of the API.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { method: Method::Get, path: "/healthz", access: Access::Public, summary: "Liveness (no credential)",
        handler: |m| on(m, || async { "ok\n" }) },
    Route { method: Method::Post, path: model::protocol::ENROLL_PATH, access: Access::Enroll, summary: "Enrol a host: body {hostname, role} (role must be the token group's); returns {host_id, credential}",
        handler: |m| on(m, hosts::enroll) },
    Route { method: Method::Post, path: model::protocol::HEARTBEAT_PATH, access: Access::Host, summary: "Report state; returns the group's policy; 429 with Retry-After above the host's heartbeat rate",
        handler: |m| on(m, hosts::heartbeat) },
    Route { method: Method::Get, path: "/api/v1/openapi.json", access: READ, summary: "This document",
        handler: |m| on(m, openapi::openapi) },
    Route { method: Method::Get, path: "/api/v1/hosts", access: READ, summary: "Hosts, paged (limit 1-1000, default 100; after = the previous page's next); filters role, group, product, build, build_below, component, version, status; reported_fields names what hosts reported about themselves",
        handler: |m| on(m, admin::list_hosts) },
    Route { method: Method::Get, path: "/api/v1/hosts/{id}", access: READ, summary: "One host with a page of its hotfix history, oldest first (limit, after = history_next); history_count in all",
        handler: |m| on(m, admin::host_detail) },
    Route { method: Method::Get, path: "/api/v1/groups", access: READ, summary: "Groups and their policy",
        handler: |m| on(m, admin::list_groups) },
    Route { method: Method::Put, path: "/api/v1/groups/{name}", access: OPERATE, summary: "Create or replace a group (every field; absent ones take their defaults)",
        handler: |m| on(m, admin::put_group) },
    Route { method: Method::Post, path: "/api/v1/groups/{name}/settings", access: OPERATE, summary: "Change some settings of a group: body {parent, relays, poll_interval, allow_direct, pin: {component: version}, unpin: [component], channel, maintenance}, each optional; absent ones stay, the role never changes; returns the group as stored",
        handler: |m| on(m, lifecycle::group_settings) },
    Route { method: Method::Delete, path: "/api/v1/groups/{name}", access: OPERATE, summary: "Delete a group; refused (400 naming them) while hosts, child groups, valid enrolment tokens or unfinished rollouts use it",
        handler: |m| on(m, lifecycle::delete_group) },
    Route { method: Method::Get, path: "/api/v1/enroll-tokens", access: READ, summary: "Enrolment tokens (never the token): id, group, uses_left, expires, created, revoked, state (valid, revoked, expired, used up)",
        handler: |m| on(m, lifecycle::list_enroll_tokens) },
    Route { method: Method::Post, path: "/api/v1/enroll-tokens", access: OPERATE, summary: "Create an enrolment token: body {group, expires_days (1-3650), uses}; returns {id, token} (the token is shown only here)",
        handler: |m| on(m, lifecycle::create_enroll_token) },
    Route { method: Method::Delete, path: "/api/v1/enroll-tokens/{id}", access: OPERATE, summary: "Revoke an enrolment token: it enrols no further host (hosts it enrolled stay)",
        handler: |m| on(m, lifecycle::revoke_enroll_token) },
    Route { method: Method::Post, path: "/api/v1/hosts/{id}/revoke", access: OPERATE, summary: "Revoke a host: its credential stops working at once (heartbeats 401); its record stays until deleted",
        handler: |m| on(m, lifecycle::revoke_host) },
    Route { method: Method::Delete, path: "/api/v1/hosts/{id}", access: OPERATE, summary: "Delete a host with its credential, hotfix history and rollout reports",
        handler: |m| on(m, lifecycle::delete_host) },
    Route { method: Method::Post, path: "/api/v1/hosts/{id}/retry", access: OPERATE, summary: "Ask a host to try again a version it gave up on: body {component, version}; clears the host's rollout failure for it and hands the host the retry in its policy until it acknowledges it",
        handler: |m| on(m, lifecycle::retry) },
    Route { method: Method::Get, path: "/api/v1/tokens", access: ADMIN, summary: "API tokens (never the token): id, name, role, created, revoked",
        handler: |m| on(m, people::list_tokens) },
    Route { method: Method::Post, path: "/api/v1/tokens", access: ADMIN, summary: "Create an API token: body {name, role}; returns {id, token} (the token is shown only here)",
        handler: |m| on(m, people::create_token) },
    Route { method: Method::Delete, path: "/api/v1/tokens/{id}", access: ADMIN, summary: "Revoke an API token",
        handler: |m| on(m, people::revoke_token) },
    Route { method: Method::Get, path: "/api/v1/users", access: ADMIN, summary: "Console users with their roles",
        handler: |m| on(m, people::list_users) },
    Route { method: Method::Post, path: "/api/v1/users", access: ADMIN, summary: "Create a console user: body {name, role, password (12 to 1024 characters)}",
        handler: |m| on(m, people::create_user) },
    Route { method: Method::Post, path: "/api/v1/users/{name}/disable", access: ADMIN, summary: "Disable a console user and end their sessions",
        handler: |m| on(m, people::disable_user) },
    Route { method: Method::Post, path: "/api/v1/users/{name}/enable", access: ADMIN, summary: "Enable a disabled console user",
        handler: |m| on(m, people::enable_user) },
    Route { method: Method::Get, path: "/api/v1/advisories", access: READ, summary: "Advisories",
        handler: |m| on(m, admin::list_advisories) },
    Route { method: Method::Put, path: "/api/v1/advisories/{id}", access: OPERATE, summary: "Create or replace an advisory",
        handler: |m| on(m, admin::put_advisory) },
    Route { method: Method::Get, path: "/api/v1/advisories/{id}/hosts", access: READ, summary: "Hosts the advisory affects by their reported builds, with counts over all and one page of hosts (limit, after)",
        handler: |m| on(m, admin::advisory_hosts) },
    Route { method: Method::Get, path: "/api/v1/patches/{patch_id}/coverage", access: READ, summary: "Hosts with the patch, eligible without it, not eligible and why; query product, requires_build",
        handler: |m| on(m, admin::coverage) },
    Route { method: Method::Post, path: "/api/v1/upgrade-plan", access: READ, summary: "Ordered upgrade steps for target builds: body {targets: {product: build}}",
        handler: |m| on(m, admin::upgrade_plan) },
    Route { method: Method::Get, path: "/metrics", access: READ, summary: "Prometheus metrics: requests by kind and outcome with durations, heartbeats by outcome, authentication failures, hosts known, build",
        handler: |m| on(m, metrics::metrics) },
    Route { method: Method::Get, path: "/api/v1/rollouts", access: READ, summary: "Staged rollouts, the newest 100 first",
        handler: |m| on(m, rollouts::list) },
    Route { method: Method::Post, path: "/api/v1/rollouts", access: OPERATE, summary: "Start a rollout: body {component, version, waves: [{groups, share, soak, success, max_failures, max_failure_share, approval}], auto_rollback, silent_after}; refused while another of the component is deciding",
        handler: |m| on(m, rollouts::create) },
    Route { method: Method::Get, path: "/api/v1/rollouts/{id}", access: READ, summary: "One rollout with per-wave counts and its hosts (failed first, at most 1000) with their health",
        handler: |m| on(m, rollouts::status) },
    Route { method: Method::Post, path: "/api/v1/rollouts/{id}/{action}", access: OPERATE, summary: "Act on a rollout: pause, resume, approve (the next wave), abort, abort-and-roll-back",
        handler: |m| on(m, rollouts::act) },
    Route { method: Method::Get, path: "/api/v1/audit", access: READ, summary: "Administrative changes, newest first, paged (limit, after); groups as stored, by the token's name",
        handler: |m| on(m, admin::audit) },
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
    /// Seconds a host keeps its per-host decisions (rollout holds) without a newer reply.
    pub decision_lease: u64,
    /// Served over TLS: console cookies are `Secure`.
    pub tls: bool,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// Password checks running at once (each argon2id hash takes 19 MiB and a core): at most
    /// the number of cores, so sign-in attempts cannot exhaust memory or starve the API.
    pub(crate) hashing: tokio::sync::Semaphore,
    failure_log: limits::FailureLog,
    heartbeats: limits::HeartbeatLimiter,
    /// Requests by kind and outcome, and their durations (counted by the router's layer).
    pub http: Arc<transport::HttpMetrics>,
}

impl AppState {
    pub fn new(db: Arc<Db>, offline_after: u64, failure_delay: Duration) -> Arc<Self> {
        Self::with_host_terms(
            db,
            offline_after,
            failure_delay,
            HeartbeatRate::default(),
            model::protocol::DEFAULT_DECISION_LEASE,
            false,
        )
    }

    /// As [`AppState::new`], with each host's heartbeats limited to `rate` and its per-host
    /// decisions leased for `decision_lease` seconds.
    pub fn with_host_terms(
        db: Arc<Db>,
        offline_after: u64,
        failure_delay: Duration,
        rate: HeartbeatRate,
        decision_lease: u64,
        tls: bool,
    ) -> Arc<Self> {
        Arc::new(AppState {
            db,
            offline_after,
            failure_delay,
            decision_lease,
            tls,
            manager_build: env!("CARGO_PKG_VERSION").to_string(),
            failures: Mutex::new(HashMap::new()),
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            ),
            failure_log: limits::FailureLog::default(),
            heartbeats: limits::HeartbeatLimiter::new(rate),
            http: metrics::http(),
        })
    }

    /// Authentication failures (401 answers) since the start.
    pub fn auth_failures(&self) -> u64 {
        self.failure_log.total()
    }
}

fn json<T: Serialize + ?Sized>(status: StatusCode, v: &T) -> Response {
    match serde_json::to_vec_pretty(v) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize an answer");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// Every error answer: what went wrong, and for a bad request the field it is about.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

fn error(status: StatusCode, message: &str) -> Response {
    json(
        status,
        &ErrorBody {
            error: message,
            field: None,
        },
    )
}

fn bad_request(field: &str, message: &str) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        &ErrorBody {
            error: message,
            field: Some(field),
        },
    )
}

fn from_error(e: Error) -> Response {
    match e {
        Error::BadRequest { field, reason } => bad_request(&field, &format!("{field}: {reason}")),
        Error::NotFound(what) => error(StatusCode::NOT_FOUND, &format!("{what} not found")),
        other => {
            tracing::error!(error = %other, "request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// The caller, once authenticated.
#[derive(Clone)]
enum Caller {
    Person(Person),
    Host(HostCredential),
    Enroll(String),
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()
        // The scheme is case-insensitive (RFC 9110).
        .filter(|v| v.len() > 7 && v.is_char_boundary(7) && v[..7].eq_ignore_ascii_case("bearer "))
        .map(|v| v[7..].trim())
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

/// Run `f` on the blocking pool and answer 200 with its result as JSON (or the error).
async fn answer<T: Serialize + Send + 'static>(
    f: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> Response {
    match blocking(f).await {
        Ok(v) => json(StatusCode::OK, &v),
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
    let found = match bearer(headers).map(str::to_string) {
        None => None,
        Some(t) => {
            let st = state.clone();
            blocking(move || lookup(&st.db, access, t)).await?
        }
    };
    match (access, found) {
        (Access::Person(_), Some(Caller::Host(_))) => Err(error(
            StatusCode::FORBIDDEN,
            "a host credential cannot call administrator routes",
        )),
        (Access::Person(need), Some(Caller::Person(p))) if p.role < need => Err(error(
            StatusCode::FORBIDDEN,
            &format!(
                "this needs the {need} role; {} is {}",
                crate::text::escape(&p.name),
                p.role
            ),
        )),
        (_, Some(c)) => Ok(c),
        (Access::Enroll, None) => {
            let why = match bearer(headers).map(str::to_string) {
                Some(t) => {
                    let st = state.clone();
                    blocking(move || st.db.enroll_token_problem(&t)).await?
                }
                None => None,
            };
            let message = match why {
                Some(p) if p != "unknown" => format!("the enrolment token is {p}"),
                _ => "missing or invalid credential".to_string(),
            };
            Err(refuse(state, peer, &message).await)
        }
        (_, None) => Err(refuse(state, peer, "missing or invalid credential").await),
    }
}

/// Answer an authentication failure: 401, after the delay repeated failures from `peer` earn
/// (counted, and logged at most every few seconds).
async fn refuse(state: &AppState, peer: IpAddr, message: &str) -> Response {
    if let Err(r) = state.slow_down(peer, message).await {
        return r;
    }
    error(StatusCode::UNAUTHORIZED, message)
}

impl AppState {
    /// Wait the delay the failures already counted from `peer` earn, before doing any work for
    /// its next attempt (a sign-in's password hash).
    pub(crate) async fn owed_delay(&self, peer: IpAddr) {
        let delay = self.failures.lock().ok().and_then(|f| {
            let (n, since) = f.get(&peer)?;
            (since.elapsed() <= Duration::from_secs(60))
                .then(|| (self.failure_delay * n.saturating_sub(5)).min(Duration::from_secs(2)))
        });
        if let Some(d) = delay.filter(|d| !d.is_zero()) {
            tokio::time::sleep(d).await;
        }
    }

    /// Count an authentication failure from `peer` (logged at most every few seconds) and wait
    /// the delay repeated failures earn (API credentials and console logins alike).
    pub(crate) async fn slow_down(&self, peer: IpAddr, message: &str) -> Result<(), Response> {
        self.failure_log.record(peer, message);
        let delay = failure_delay(self, peer)?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }
}

/// Who holds `token`, among the callers `access` admits (a host on an administrator route is
/// found, so that it can be told 403).
fn lookup(db: &Db, access: Access, token: String) -> crate::error::Result<Option<Caller>> {
    Ok(match access {
        Access::Person(_) => match db.admin(&token)? {
            Some(p) => Some(Caller::Person(p)),
            None => db.host_by_credential(&token)?.map(Caller::Host),
        },
        Access::Host => db.host_by_credential(&token)?.map(Caller::Host),
        Access::Enroll => db
            .enroll_token_valid(&token)?
            .then_some(Caller::Enroll(token)),
        Access::Public => None,
    })
}

/// Count an authentication failure from `peer`: the first few answer at once, then
/// `failure_delay` more each, up to 2 s (the count restarts after a minute).
fn failure_delay(state: &AppState, peer: IpAddr) -> Result<Duration, Response> {
    let mut f = state
        .failures
        .lock()
        .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "lock"))?;
    // Bounded: addresses quiet for a minute are forgotten when many are counted.
    if f.len() > 10_000 {
        f.retain(|_, (_, since)| since.elapsed() <= Duration::from_secs(60));
    }
    let e = f.entry(peer).or_insert((0, Instant::now()));
    if e.1.elapsed() > Duration::from_secs(60) {
        *e = (0, Instant::now());
    }
    e.0 = e.0.saturating_add(1);
    Ok((state.failure_delay * e.0.saturating_sub(5)).min(Duration::from_secs(2)))
}

/// The router: every route of [`ROUTES`], each behind the authentication its `access` names;
/// every request counted in [`AppState::http`] and access-logged.
pub fn router(state: Arc<AppState>) -> Router {
    let http = state.http.clone();
    let console = crate::console::router(state.clone());
    let router = ROUTES
        .iter()
        .fold(Router::new(), |router, r| {
            let mut m = (r.handler)(r.method.filter());
            if r.access != Access::Public {
                let layer = middleware::from_fn_with_state((state.clone(), r.access), authenticate);
                m = m.route_layer(layer);
            }
            router.route(r.path, m)
        })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
        .merge(console);
    transport::observed(router, http)
}

/// The authentication layer: the caller, authenticated for the route's access, goes to the
/// handler as a request extension (read by [`AdminCaller`], [`HostCaller`], [`EnrollCaller`]).
async fn authenticate(
    State((state, access)): State<(Arc<AppState>, Access)>,
    ConnectInfo(peer): Peer,
    mut req: Request,
    next: Next,
) -> Response {
    match authorize(&state, req.headers(), peer.ip(), access).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(r) => r,
    }
}

fn caller(parts: &Parts) -> Option<&Caller> {
    parts.extensions.get::<Caller>()
}

/// An administrator, by the name of its token.
pub(super) struct AdminCaller(pub String);

impl<S: Send + Sync> FromRequestParts<S> for AdminCaller {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        match caller(parts) {
            Some(Caller::Person(p)) => Ok(AdminCaller(p.name.clone())),
            _ => Err(error(
                StatusCode::FORBIDDEN,
                "administrator credential required",
            )),
        }
    }
}

/// An enrolled host.
pub(super) struct HostCaller(pub HostCredential);

impl<S: Send + Sync> FromRequestParts<S> for HostCaller {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        match caller(parts) {
            Some(Caller::Host(h)) => Ok(HostCaller(h.clone())),
            _ => Err(error(StatusCode::FORBIDDEN, "host credential required")),
        }
    }
}

/// The holder of a valid enrolment token (the token itself).
pub(super) struct EnrollCaller(pub String);

impl<S: Send + Sync> FromRequestParts<S> for EnrollCaller {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        match caller(parts) {
            Some(Caller::Enroll(t)) => Ok(EnrollCaller(t.clone())),
            _ => Err(error(StatusCode::FORBIDDEN, "enrolment token required")),
        }
    }
}

type Peer = ConnectInfo<SocketAddr>;

/// Parse a JSON body; a malformed one is answered 400 naming the field (its path, e.g.
/// `modules[0].status`, or the missing field's name).
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = error_field(&e);
        bad_request(&field, &format!("invalid body: {field}: {}", e.inner()))
    })
}

fn error_field(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let msg = e.inner().to_string();
    // "missing field `x`" / "unknown field `x`, expected …": the field is named in the message.
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| msg.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    match (path.as_str(), named) {
        (".", Some(f)) => f.to_string(),
        (".", None) => "body".to_string(),
        (p, Some(f)) if !p.ends_with(f) => format!("{p}.{f}"),
        (p, _) => p.to_string(),
    }
}

fn bad(field: &str, reason: impl Into<String>) -> Response {
    from_error(Error::BadRequest {
        field: field.into(),
        reason: reason.into(),
    })
}

mod admin;
mod hosts;
mod lifecycle;
mod limits;
mod metrics;
mod openapi;
mod people;
mod rollouts;

pub use limits::HeartbeatRate;

pub use openapi::openapi_document;

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &str) -> String {
        let de = &mut serde_json::Deserializer::from_str(body);
        error_field(&serde_path_to_error::deserialize::<_, T>(de).unwrap_err())
    }

    /// Unknown fields are skipped, not stored: one nested as deep as the body limit allows is
    /// read without recursion (no stack overflow) and what this build knows is still checked.
    #[test]
    fn an_unknown_field_nested_to_the_body_limit_is_skipped() {
        use model::protocol::Heartbeat;
        let depth = BODY_LIMIT / 2 - 100;
        let body = format!(
            r#"{{"hostname":"h","role":"agent","future":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(body.len() <= BODY_LIMIT);
        let hb: Heartbeat = parse(body.as_bytes()).unwrap();
        assert_eq!(hb.hostname, "h");
        let unbalanced = format!(
            r#"{{"hostname":"h","role":"agent","future":{}}}"#,
            "[".repeat(depth)
        );
        assert!(parse::<Heartbeat>(unbalanced.as_bytes()).is_err());
    }

    #[test]
    fn a_malformed_body_names_the_field_by_its_path() {
        use model::protocol::Heartbeat;
        assert_eq!(field_of::<Heartbeat>(r#"{"hostname":"h"}"#), "role");
        assert_eq!(
            field_of::<Heartbeat>(r#"{"hostname":"h","role":"sensor"}"#),
            "role"
        );
        assert_eq!(
            field_of::<Heartbeat>(r#"{"hostname":"h","role":"agent","modules":[{"name":"m"}]}"#),
            "modules[0].status"
        );
        assert_eq!(
            field_of::<Heartbeat>(r#"{"hostname":"h","role":"agent","builds":{"x":1}}"#),
            "builds.x"
        );
        assert_eq!(field_of::<Heartbeat>("42"), "body");
        // Administrator input stays strict: an unknown field is refused by name.
        assert_eq!(
            field_of::<Group>(r#"{"role":"agent","colour":"red"}"#),
            "colour"
        );
    }
}
