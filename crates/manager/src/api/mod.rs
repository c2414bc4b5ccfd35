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
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::db::{Advisory, Db, Group, HostCredential};
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
        other => {
            tracing::error!(error = %other, "request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// The caller, once authenticated.
enum Caller {
    Admin(String),
    Host(HostCredential),
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
        (Access::Admin, Some(Caller::Host(_))) => Err(error(
            StatusCode::FORBIDDEN,
            "a host credential cannot call administrator routes",
        )),
        (_, Some(c)) => Ok(c),
        (_, None) => {
            let delay = failure_delay(state, peer)?;
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

/// Who holds `token`, among the callers `access` admits (a host on an administrator route is
/// found, so that it can be told 403).
fn lookup(db: &Db, access: Access, token: String) -> crate::error::Result<Option<Caller>> {
    Ok(match access {
        Access::Admin => match db.admin(&token)? {
            Some(name) => Some(Caller::Admin(name)),
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
    let e = f.entry(peer).or_insert((0, Instant::now()));
    if e.1.elapsed() > Duration::from_secs(60) {
        *e = (0, Instant::now());
    }
    e.0 = e.0.saturating_add(1);
    Ok((state.failure_delay * e.0.saturating_sub(5)).min(Duration::from_secs(2)))
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/enroll", post(hosts::enroll))
        .route("/api/v1/heartbeat", post(hosts::heartbeat))
        .route("/api/v1/openapi.json", get(openapi::openapi))
        .route("/api/v1/hosts", get(admin::list_hosts))
        .route("/api/v1/hosts/{id}", get(admin::host_detail))
        .route("/api/v1/groups", get(admin::list_groups))
        .route("/api/v1/groups/{name}", put(admin::put_group))
        .route("/api/v1/advisories", get(admin::list_advisories))
        .route("/api/v1/advisories/{id}", put(admin::put_advisory))
        .route("/api/v1/advisories/{id}/hosts", get(admin::advisory_hosts))
        .route("/api/v1/patches/{patch_id}/coverage", get(admin::coverage))
        .route("/api/v1/upgrade-plan", post(admin::upgrade_plan))
        .route("/api/v1/audit", get(admin::audit))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
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

macro_rules! admin {
    ($s:expr, $peer:expr, $headers:expr) => {
        match authorize(&$s, &$headers, $peer.ip(), Access::Admin).await {
            Ok(Caller::Admin(name)) => name,
            Ok(_) => return error(StatusCode::FORBIDDEN, "administrator credential required"),
            Err(r) => return r,
        }
    };
}

mod admin;
mod hosts;
mod openapi;

pub use openapi::openapi_document;
