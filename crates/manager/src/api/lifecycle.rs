//! Operator routes for the life of groups, enrolment tokens and hosts: change some settings of
//! a group, delete a group, list, create and revoke enrolment tokens, revoke and delete hosts,
//! and ask a host to retry a version it gave up on. Every change is audited with the caller's
//! name.

// Handlers short-circuit with a ready `Response` as the error value.
#![allow(clippy::result_large_err)]

use super::admin::Saved;
use super::*;
use crate::db::{EnrollToken, GroupSettings};

fn actor(name: &str) -> String {
    format!("admin {name}")
}

pub(super) async fn group_settings(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let settings: GroupSettings = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let db = s.db.clone();
    answer(move || db.update_group(&name, &settings, &actor(&admin))).await
}

pub(super) async fn delete_group(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    Path(name): Path<String>,
) -> Response {
    let db = s.db.clone();
    answer(move || {
        db.delete_group(&name, &actor(&admin))
            .map(|()| Saved { ok: true })
    })
    .await
}

/// `GET /api/v1/enroll-tokens`.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrollTokenList {
    pub tokens: Vec<EnrollToken>,
}

pub(super) async fn list_enroll_tokens(State(s): State<Arc<AppState>>, _: AdminCaller) -> Response {
    let db = s.db.clone();
    answer(move || {
        Ok(EnrollTokenList {
            tokens: db.enroll_tokens()?,
        })
    })
    .await
}

/// `POST /api/v1/enroll-tokens`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEnrollToken {
    pub group: String,
    /// Days it is valid (1 to 3650; none: it does not expire).
    #[serde(default)]
    pub expires_days: Option<u32>,
    /// Hosts it may enrol (at least 1; none: unlimited).
    #[serde(default)]
    pub uses: Option<u32>,
}

/// A new secret, shown once: its id and the secret itself.
#[derive(Debug, Serialize, Deserialize)]
pub struct NewSecret {
    pub id: i64,
    pub token: String,
}

pub(super) async fn create_enroll_token(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    body: Bytes,
) -> Response {
    let req: NewEnrollToken = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let db = s.db.clone();
    answer(move || {
        db.create_enroll_token_by(&req.group, req.expires_days, req.uses, &actor(&admin))
            .map(|(id, token)| NewSecret { id, token })
    })
    .await
}

fn number(field: &str, id: &str) -> Result<i64, Response> {
    id.parse::<i64>()
        .map_err(|_| bad(field, "a token id is a number (see the list)"))
}

pub(super) async fn revoke_enroll_token(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    Path(id): Path<String>,
) -> Response {
    let id = match number("id", &id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let db = s.db.clone();
    answer(move || {
        found(
            db.revoke_enroll_token(id, &actor(&admin))?,
            "enrolment token",
            id,
        )
    })
    .await
}

/// `Saved`, or 404 naming what was not found.
pub(super) fn found(yes: bool, what: &str, id: impl std::fmt::Display) -> crate::Result<Saved> {
    if yes {
        Ok(Saved { ok: true })
    } else {
        Err(Error::NotFound(format!("{what} {id}")))
    }
}

pub(super) async fn revoke_host(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    Path(id): Path<String>,
) -> Response {
    let db = s.db.clone();
    answer(move || {
        if db.revoke_host(&id, &actor(&admin))? {
            return Ok(Saved { ok: true });
        }
        match db.host(&id)? {
            Some(_) => Ok(Saved { ok: true }), // revoked already
            None => Err(Error::NotFound(format!("host {id}"))),
        }
    })
    .await
}

pub(super) async fn delete_host(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    Path(id): Path<String>,
) -> Response {
    let db = s.db.clone();
    answer(move || found(db.delete_host(&id, &actor(&admin))?, "host", &id)).await
}

/// `POST /api/v1/hosts/{id}/retry`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    pub component: String,
    pub version: String,
}

pub(super) async fn retry(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let req: RetryRequest = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let db = s.db.clone();
    answer(move || db.request_retry(&id, &req.component, &req.version, &actor(&admin))).await
}
