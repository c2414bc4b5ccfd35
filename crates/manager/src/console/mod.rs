//! The web console, served by the manager on its own listener: server-rendered HTML (maud,
//! escaped by construction), one stylesheet, no script at all, so the Content-Security-Policy
//! allows nothing inline. People sign in as console users (argon2id passwords); a session is a
//! random id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` under TLS) with idle and
//! absolute expiry; every state-changing form carries the session's CSRF token, and a request
//! whose `Origin` is another site is refused. Roles are those of the API: auditors read,
//! operators act on rollouts, admins everything.

// Handlers short-circuit with a ready `Response` as the error value, as the API's do.
#![allow(clippy::result_large_err)]

mod admin;
mod layout;
mod pages;
mod questions;
mod rollouts;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

use crate::api::AppState;
use crate::db::{Session, UserRole};

/// The session cookie's name.
const COOKIE: &str = "updraft_session";
/// Largest form body the console reads.
const FORM_LIMIT: usize = 16 * 1024;

/// Every response of the console carries these.
const HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    // `same-origin`: other sites learn nothing; this one keeps getting an `Origin` to check
    // (with `no-referrer` browsers send `Origin: null` even on their own forms).
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
];

/// The console's routes (state applied), each response with the security headers.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(pages::overview))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console/static/console.css", get(css))
        .route("/console/static/favicon.svg", get(favicon))
        .route("/console/hosts", get(pages::hosts))
        .route("/console/hosts/{id}", get(pages::host))
        .route("/console/groups", get(pages::groups))
        .route("/console/relays", get(pages::relays))
        .route("/console/audit", get(pages::audit))
        .route("/console/advisories", get(questions::advisories))
        .route("/console/advisories/{id}", get(questions::advisory))
        .route("/console/coverage", get(questions::coverage))
        .route("/console/plan", get(questions::plan))
        .route(
            "/console/tokens",
            get(admin::tokens).post(admin::create_token),
        )
        .route("/console/tokens/{id}/revoke", post(admin::revoke_token))
        .route("/console/hosts/{id}/{action}", post(admin::host_action))
        .route("/console/users", get(admin::users).post(admin::create_user))
        .route("/console/users/{name}/{action}", post(admin::user_action))
        .route("/console/rollouts", get(rollouts::list))
        .route("/console/rollouts/{id}", get(rollouts::detail))
        .route("/console/rollouts/{id}/{action}", post(rollouts::act))
        .layer(axum::extract::DefaultBodyLimit::max(FORM_LIMIT))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut r: Response) -> Response {
    for (name, value) in HEADERS {
        r.headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    r
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("console.css"),
    )
        .into_response()
}

async fn favicon() -> Response {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        include_str!("favicon.svg"),
    )
        .into_response()
}

/// The signed-in person of a request (from the session cookie); without a live session the
/// browser is sent to the login page.
pub struct Viewer(pub Session, bool);

impl Viewer {
    /// The viewer as the audit log names them.
    pub fn actor(&self) -> String {
        format!("user {}", self.0.person.name)
    }

    /// Whether the viewer may do what needs `role`.
    pub fn may(&self, role: UserRole) -> bool {
        self.0.person.role >= role
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 200)
}

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &Arc<AppState>) -> Result<Self, Response> {
        let to_login = || Redirect::to("/console/login").into_response();
        let Some(id) = session_id(&parts.headers) else {
            return Err(to_login());
        };
        let db = s.db.clone();
        let found =
            tokio::task::spawn_blocking(move || db.session(&id, time::OffsetDateTime::now_utc()))
                .await;
        match found {
            Ok(Ok(Some(session))) => Ok(Viewer(session, s.tls)),
            Ok(Ok(None)) => Err(to_login()),
            Ok(Err(e)) => Err(failure(e)),
            Err(_) => Err(page_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            )),
        }
    }
}

/// A request from another site (its `Origin` is not this host's) never changes anything.
fn same_origin(headers: &HeaderMap, tls: bool) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let scheme = if tls { "https://" } else { "http://" };
    origin.strip_prefix(scheme) == Some(host)
}

/// Check a state-changing form: same origin, the session's CSRF token, and the role the change
/// needs. Every console change goes through here.
fn check_form(v: &Viewer, headers: &HeaderMap, csrf: &str, role: UserRole) -> Result<(), Response> {
    // Compared as hashes: the time a comparison takes says nothing about the token.
    let digest = |t: &str| tuf::crypto::sha256_hex(t.as_bytes());
    let token_ok = digest(&v.0.csrf) == digest(csrf);
    if !same_origin(headers, v.1) || !token_ok {
        tracing::warn!(user = %v.0.person.name, "console form refused: cross-site or without its CSRF token");
        return Err(page_error(
            StatusCode::FORBIDDEN,
            "This form did not come from this console (cross-site, or a stale page): reload the page and try again.",
        ));
    }
    if !v.may(role) {
        return Err(page_error(
            StatusCode::FORBIDDEN,
            &format!("This needs the {role} role."),
        ));
    }
    Ok(())
}

/// Make a change on the blocking pool, then send the browser to `to` (the page that shows it).
async fn change<T: Send + 'static>(
    to: String,
    f: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> Response {
    match blocking(f).await {
        Ok(_) => Redirect::to(&to).into_response(),
        Err(r) => r,
    }
}

/// An error page (for people, not programs).
fn page_error(status: StatusCode, message: &str) -> Response {
    let body = layout::bare("Error", html! { h1 { "Error" } p.error { (message) } });
    (status, body).into_response()
}

/// A storage or validation error as a page.
fn failure(e: crate::error::Error) -> Response {
    match e {
        crate::error::Error::BadRequest { field, reason } => {
            page_error(StatusCode::BAD_REQUEST, &format!("{field}: {reason}"))
        }
        crate::error::Error::NotFound(what) => {
            page_error(StatusCode::NOT_FOUND, &format!("{what} not found"))
        }
        other => {
            tracing::error!(error = %other, "console request failed");
            page_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// Run `f` on the blocking pool; its error as a page.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failure(e)),
        Err(_) => Err(page_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
        )),
    }
}

async fn login_form() -> Markup {
    login_page(None)
}

fn login_page(error: Option<&str>) -> Markup {
    layout::bare(
        "Sign in",
        html! {
            main.login {
                h1 { "Updraft console" }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                form method="post" action="/console/login" {
                    label for="name" { "User" }
                    input #name name="name" autocomplete="username" required;
                    label for="password" { "Password" }
                    input #password name="password" type="password" autocomplete="current-password" required;
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
}

async fn login(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers, s.tls) {
        return page_error(
            StatusCode::FORBIDDEN,
            "Sign in from this console's own page.",
        );
    }
    // Repeated failures from this address wait first; then at most one password check per
    // core runs at a time (others wait a little, then are told to come back).
    s.owed_delay(peer.ip()).await;
    let wait = std::time::Duration::from_secs(2);
    let Ok(Ok(_permit)) = tokio::time::timeout(wait, s.hashing.acquire()).await else {
        return page_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sign-ins at once: try again in a moment.",
        );
    };
    let db = s.db.clone();
    let name = f.name.clone();
    let checked = blocking(move || {
        let Some(person) = db.check_login(&f.name, &f.password)? else {
            return Ok(None);
        };
        let id = db.create_session(&person)?;
        db.audit(
            &format!("user {}", person.name),
            "console-login",
            &person.role.to_string(),
        )?;
        Ok(Some(id))
    })
    .await;
    match checked {
        Ok(Some(id)) => {
            let secure = if s.tls { "; Secure" } else { "" };
            let cookie = format!(
                "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                crate::db::users::SESSION_MAX
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/console/")).into_response()
        }
        Ok(None) => {
            let message = format!("console login failed for {:?}", crate::text::escape(&name));
            if let Err(r) = s.slow_down(peer.ip(), &message).await {
                return r;
            }
            (
                StatusCode::UNAUTHORIZED,
                login_page(Some("Wrong user or password.")),
            )
                .into_response()
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(s): State<Arc<AppState>>,
    v: Viewer,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_form(&v, &headers, &f.csrf, UserRole::Auditor) {
        return r;
    }
    let db = s.db.clone();
    let id = session_id(&headers).unwrap_or_default();
    if let Err(r) = blocking(move || db.end_session(&id)).await {
        return r;
    }
    let gone = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, gone)], Redirect::to("/console/login")).into_response()
}
