//! Administrator routes for people: API tokens and console users (admin role only). Every
//! change is audited with the caller's name; secrets are shown once, passwords never.

// Handlers short-circuit with a ready `Response` as the error value.
#![allow(clippy::result_large_err)]

use super::admin::Saved;
use super::lifecycle::{found, NewSecret};
use super::*;
use crate::db::{AdminToken, User};

fn actor(name: &str) -> String {
    format!("admin {name}")
}

/// `GET /api/v1/tokens`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenList {
    pub tokens: Vec<AdminToken>,
}

pub(super) async fn list_tokens(State(s): State<Arc<AppState>>, _: AdminCaller) -> Response {
    let db = s.db.clone();
    answer(move || {
        Ok(TokenList {
            tokens: db.admin_tokens()?,
        })
    })
    .await
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub role: UserRole,
}

pub(super) async fn create_token(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    body: Bytes,
) -> Response {
    let req: NewToken = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let db = s.db.clone();
    answer(move || {
        db.create_admin_token_by(&req.name, req.role, &actor(&admin))
            .map(|(id, token)| NewSecret { id, token })
    })
    .await
}

pub(super) async fn revoke_token(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return bad("id", "a token id is a number (see the list)");
    };
    let db = s.db.clone();
    answer(move || found(db.revoke_admin_token_by(id, &actor(&admin))?, "token", id)).await
}

/// `GET /api/v1/users`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UserList {
    pub users: Vec<User>,
}

pub(super) async fn list_users(State(s): State<Arc<AppState>>, _: AdminCaller) -> Response {
    let db = s.db.clone();
    answer(move || Ok(UserList { users: db.users()? })).await
}

/// `POST /api/v1/users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub role: UserRole,
    pub password: String,
}

pub(super) async fn create_user(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    body: Bytes,
) -> Response {
    let req: NewUser = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let db = s.db.clone();
    answer(move || {
        db.create_user(&req.name, req.role, &req.password, &actor(&admin))
            .map(|()| Saved { ok: true })
    })
    .await
}

async fn set_disabled(s: Arc<AppState>, admin: String, name: String, disabled: bool) -> Response {
    let db = s.db.clone();
    answer(move || {
        found(
            db.set_user_disabled(&name, disabled, &actor(&admin))?,
            "user",
            &name,
        )
    })
    .await
}

pub(super) async fn disable_user(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    Path(name): Path<String>,
) -> Response {
    set_disabled(s, admin, name, true).await
}

pub(super) async fn enable_user(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    Path(name): Path<String>,
) -> Response {
    set_disabled(s, admin, name, false).await
}
