//! Lifecycle in the console: enrolment tokens (operators: create, shown once; revoke), hosts
//! (operators: revoke the credential, delete the record) and console users (admins: create,
//! disable, enable). Every change through a CSRF-checked form, audited with the user's name.

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{csrf, page, urlencode};
use super::{blocking, change, check_form, page_error, CsrfForm, Viewer};
use crate::api::AppState;
use crate::db::UserRole;

pub async fn tokens(State(s): State<Arc<AppState>>, v: Viewer) -> Response {
    tokens_page(&s, &v, None).await
}

async fn tokens_page(s: &AppState, v: &Viewer, created: Option<Markup>) -> Response {
    let db = s.db.clone();
    let (tokens, groups) = match blocking(move || Ok((db.enroll_tokens()?, db.groups()?))).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let operator = v.may(UserRole::Operator);
    let body = html! {
        @if let Some(c) = created { (c) }
        @if operator {
            h2 { "New enrolment token" }
            form.filters method="post" action="/console/tokens" {
                (csrf(v))
                label for="t-group" { "Group" }
                select #t-group name="group" { @for g in &groups { option value=(g.name) { (g.name) " (" (g.role) ")" } } }
                label for="t-uses" { "Uses" } input #t-uses name="uses" inputmode="numeric" placeholder="unlimited";
                label for="t-days" { "Valid days" } input #t-days name="expires" inputmode="numeric" placeholder="for ever";
                button type="submit" { "Create" }
            }
        }
        h2 { "Enrolment tokens" }
        table {
            thead { tr { th scope="col" { "Id" } th scope="col" { "Group" } th scope="col" { "Uses left" } th scope="col" { "Expires" } th scope="col" { "Created" } th scope="col" { "State" } @if operator { th scope="col" { "Act" } } } }
            tbody { @for t in &tokens {
                tr {
                    td { (t.id) } td { (t.group) }
                    td { @if let Some(u) = t.uses_left { (u) } @else { "unlimited" } }
                    td { (t.expires.as_deref().unwrap_or("never")) } td { (t.created) } td { (t.state) }
                    @if operator { td { @if !t.revoked {
                        form method="post" action={ "/console/tokens/" (t.id) "/revoke" } { (csrf(v)) button type="submit" { "Revoke" } }
                    } } }
                }
            } }
        }
    };
    page(v, "/console/tokens", "Enrolment tokens", body).into_response()
}

#[derive(Deserialize)]
pub struct NewToken {
    csrf: String,
    group: String,
    uses: String,
    expires: String,
}

/// An optional whole number from a form field (empty: none).
fn number(field: &str, text: &str) -> Result<Option<u32>, Response> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse().map(Some).map_err(|_| {
        page_error(
            StatusCode::BAD_REQUEST,
            &format!("{field}: {t:?} is not a whole number"),
        )
    })
}

pub async fn create_token(
    State(s): State<Arc<AppState>>,
    v: Viewer,
    headers: HeaderMap,
    Form(f): Form<NewToken>,
) -> Response {
    if let Err(r) = check_form(&v, &headers, &f.csrf, UserRole::Operator) {
        return r;
    }
    let (uses, days) = match (number("uses", &f.uses), number("expires", &f.expires)) {
        (Ok(u), Ok(d)) => (u, d),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let (db, who, group) = (s.db.clone(), v.actor(), f.group.clone());
    let created = match blocking(move || db.create_enroll_token_by(&group, days, uses, &who)).await
    {
        Ok((_, token)) => token,
        Err(r) => return r,
    };
    let shown = html! {
        section.created role="status" {
            p { "Enrolment token for group " strong { (f.group) } " (shown once, copy it now):" }
            p { code { (created) } }
        }
    };
    tokens_page(&s, &v, Some(shown)).await
}

pub async fn revoke_token(
    State(s): State<Arc<AppState>>,
    v: Viewer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_form(&v, &headers, &f.csrf, UserRole::Operator) {
        return r;
    }
    let (db, who) = (s.db.clone(), v.actor());
    change("/console/tokens".into(), move || {
        db.revoke_enroll_token(id, &who)
    })
    .await
}

/// `revoke`: the host's credential stops working; `delete`: its record goes too.
pub async fn host_action(
    State(s): State<Arc<AppState>>,
    v: Viewer,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_form(&v, &headers, &f.csrf, UserRole::Operator) {
        return r;
    }
    let (db, who) = (s.db.clone(), v.actor());
    let page = format!("/console/hosts/{}", urlencode(&id));
    match action.as_str() {
        "revoke" => change(page, move || db.revoke_host(&id, &who)).await,
        "delete" => change("/console/hosts".into(), move || db.delete_host(&id, &who)).await,
        _ => page_error(StatusCode::BAD_REQUEST, "Unknown action."),
    }
}

pub async fn users(State(s): State<Arc<AppState>>, v: Viewer) -> Response {
    if !v.may(UserRole::Admin) {
        return page_error(StatusCode::FORBIDDEN, "Users are for the admin role.");
    }
    let db = s.db.clone();
    let users = match blocking(move || db.users()).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let body = html! {
        h2 { "New user" }
        form.filters method="post" action="/console/users" {
            (csrf(&v))
            label for="u-name" { "Name" } input #u-name name="name" required;
            label for="u-role" { "Role" }
            select #u-role name="role" { @for r in ["auditor", "operator", "admin"] { option value=(r) { (r) } } }
            label for="u-password" { "Password (12 characters at least)" }
            input #u-password name="password" type="password" autocomplete="new-password" required;
            button type="submit" { "Create" }
        }
        table {
            thead { tr { th scope="col" { "User" } th scope="col" { "Role" } th scope="col" { "Created" } th scope="col" { "State" } th scope="col" { "Act" } } }
            tbody { @for u in &users {
                tr {
                    td { (u.name) } td { (u.role) } td { (u.created) }
                    td { @if u.disabled { "disabled" } @else { "active" } }
                    td { form method="post" action={ "/console/users/" (urlencode(&u.name)) "/" (if u.disabled { "enable" } else { "disable" }) } {
                        (csrf(&v)) button type="submit" { @if u.disabled { "Enable" } @else { "Disable" } }
                    } }
                }
            } }
        }
    };
    page(&v, "/console/users", "Users", body).into_response()
}

#[derive(Deserialize)]
pub struct NewUser {
    csrf: String,
    name: String,
    role: String,
    password: String,
}

pub async fn create_user(
    State(s): State<Arc<AppState>>,
    v: Viewer,
    headers: HeaderMap,
    Form(f): Form<NewUser>,
) -> Response {
    if let Err(r) = check_form(&v, &headers, &f.csrf, UserRole::Admin) {
        return r;
    }
    let (db, who) = (s.db.clone(), v.actor());
    change("/console/users".into(), move || {
        let role: UserRole = f.role.parse()?;
        db.create_user(&f.name, role, &f.password, &who)
    })
    .await
}

pub async fn user_action(
    State(s): State<Arc<AppState>>,
    v: Viewer,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_form(&v, &headers, &f.csrf, UserRole::Admin) {
        return r;
    }
    let disabled = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return page_error(StatusCode::BAD_REQUEST, "Unknown action."),
    };
    let (db, who) = (s.db.clone(), v.actor());
    change("/console/users".into(), move || {
        db.set_user_disabled(&name, disabled, &who)
    })
    .await
}
