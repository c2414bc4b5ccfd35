//! Rollouts in the console: the list, one rollout's progress per wave with the hosts that
//! failed and why, and (operators and admins) pause, resume, approve and abort.

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{adoption_chart, csrf, page, urlencode};
use super::{blocking, change, check_form, page_error, CsrfForm, Viewer};
use crate::api::AppState;
use crate::db::rollouts::Action;
use crate::db::UserRole;
use crate::rollout::{Health, State as RolloutState};

pub async fn list(State(s): State<Arc<AppState>>, v: Viewer) -> Response {
    let db = s.db.clone();
    let rollouts = match blocking(move || db.rollouts()).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let body = html! {
        table {
            caption { "The newest 100" }
            thead { tr { th scope="col" { "Rollout" } th scope="col" { "Component" } th scope="col" { "Version" } th scope="col" { "State" } th scope="col" { "Wave" } th scope="col" { "Created" } th scope="col" { "Why" } } }
            tbody { @for r in &rollouts {
                tr {
                    td { a href={ "/console/rollouts/" (r.id) } { "#" (r.id) } }
                    td { (r.spec.component) } td { (r.spec.version) }
                    td { span class={ "state " (r.state.as_str()) } { (r.state.as_str()) } @if r.rolled_back { " (rolled back)" } }
                    td { (r.wave + 1) " of " (r.spec.waves.len()) }
                    td { (r.created) }
                    td { (r.reason) }
                }
            } }
        }
    };
    page(&v, "/console/rollouts", "Rollouts", body).into_response()
}

/// The actions an operator may take on a rollout in `state`.
fn actions(state: RolloutState) -> &'static [(&'static str, &'static str)] {
    match state {
        RolloutState::Running => &[
            ("pause", "Pause"),
            ("approve", "Approve the next wave"),
            ("abort", "Abort"),
            ("abort-and-roll-back", "Abort and roll back"),
        ],
        RolloutState::Paused | RolloutState::Halted => &[
            ("resume", "Resume"),
            ("abort", "Abort"),
            ("abort-and-roll-back", "Abort and roll back"),
        ],
        RolloutState::Complete | RolloutState::Aborted => &[],
    }
}

pub async fn detail(State(s): State<Arc<AppState>>, v: Viewer, Path(id): Path<i64>) -> Response {
    let db = s.db.clone();
    let loaded = blocking(move || {
        let st = db.rollout_status(id, time::OffsetDateTime::now_utc())?;
        Ok(st.map(|st| (st, db.rollout_adoption(id))))
    })
    .await;
    let (st, took) = match loaded {
        Ok(Some((st, took))) => (st, took.unwrap_or_default()),
        Ok(None) => return page_error(StatusCode::NOT_FOUND, "No such rollout."),
        Err(r) => return r,
    };
    let r = &st.rollout;
    let failed: Vec<_> = st
        .hosts
        .iter()
        .filter(|h| matches!(h.health, Health::Failed(_)))
        .collect();
    let body = html! {
        dl.facts {
            dt { "Component" } dd { (r.spec.component) " " (r.spec.version) }
            dt { "State" } dd { span class={ "state " (r.state.as_str()) } { (r.state.as_str()) } @if r.rolled_back { " (rolled back)" } }
            dt { "Why" } dd { (r.reason) }
            dt { "Created" } dd { (r.created) }
        }
        @if v.may(UserRole::Operator) && !actions(r.state).is_empty() {
            section.actions aria-labelledby="act" {
                h2 #act { "Act" }
                @for (action, label) in actions(r.state) {
                    form method="post" action={ "/console/rollouts/" (r.id) "/" (action) } {
                        (csrf(&v))
                        button type="submit" { (label) }
                    }
                }
            }
        }
        h2 { "Adoption" }
        (adoption_chart(&r.created, &took, st.hosts_total))
        h2 { "Waves" }
        table {
            thead { tr { th scope="col" { "Wave" } th scope="col" { "Groups" } th scope="col" { "Share" } th scope="col" { "Hosts" } th scope="col" { "Healthy" } th scope="col" { "Pending" } th scope="col" { "Failed" } th scope="col" { "Progress" } } }
            tbody { @for (i, (w, p)) in r.spec.waves.iter().zip(&st.waves).enumerate() {
                tr {
                    td { (i + 1) @if i == r.wave { " (current)" } }
                    td { @if w.groups.is_empty() { "any" } @else { (w.groups.join(", ")) } }
                    td { (w.share) " %" }
                    td { (p.hosts) } td { (p.healthy) } td { (p.pending) } td { (p.failed) }
                    td { progress max=(p.hosts.max(1)) value=(p.healthy) aria-label={ "wave " (i + 1) " healthy" } { (p.healthy) "/" (p.hosts) } }
                }
            } }
        }
        h2 { "Hosts that failed" }
        @if failed.is_empty() { p { "None." } } @else {
        table {
            thead { tr { th scope="col" { "Host" } th scope="col" { "Wave" } th scope="col" { "Why" } } }
            tbody { @for h in &failed {
                tr {
                    td { a href={ "/console/hosts/" (urlencode(&h.host_id)) } { (h.hostname) } }
                    td { (h.wave.map(|w| w + 1).unwrap_or(0)) }
                    td { @if let Health::Failed(why) = &h.health { (why) } }
                }
            } }
        }
        }
        p { (st.hosts_total) " hosts judged in all." }
    };
    page(&v, "/console/rollouts", &format!("Rollout #{}", r.id), body).into_response()
}

pub async fn act(
    State(s): State<Arc<AppState>>,
    v: Viewer,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_form(&v, &headers, &f.csrf, UserRole::Operator) {
        return r;
    }
    let Ok(action) = serde_json::from_value::<Action>(serde_json::Value::String(action)) else {
        return page_error(StatusCode::BAD_REQUEST, "Unknown action.");
    };
    let (db, actor) = (s.db.clone(), v.actor());
    change(format!("/console/rollouts/{id}"), move || {
        db.rollout_action(id, action, &actor)
    })
    .await
}
