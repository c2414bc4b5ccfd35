//! The fleet questions in the console: advisories and the hosts they affect, patch coverage,
//! the upgrade plan. All read-only (GET forms), for every role.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{next_link, page, status, urlencode};
use super::{blocking, Viewer};
use crate::api::AppState;
use crate::fleet::{self, Page};

pub async fn advisories(State(s): State<Arc<AppState>>, v: Viewer) -> Response {
    let db = s.db.clone();
    let list = match blocking(move || db.advisories()).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let body = html! {
        @if list.is_empty() { p { "No advisory yet (the API's PUT /api/v1/advisories/{id} adds one)." } }
        table {
            thead { tr { th scope="col" { "Advisory" } th scope="col" { "Title" } th scope="col" { "Product" } th scope="col" { "Affected builds" } th scope="col" { "Fixed in" } } }
            tbody { @for a in &list {
                tr {
                    td { a href={ "/console/advisories/" (urlencode(&a.id)) } { (a.id) } }
                    td { (a.title) } td { (a.product) } td { (a.affected) }
                    td { (a.fixed.as_deref().unwrap_or("-")) }
                }
            } }
        }
    };
    page(&v, "/console/advisories", "Advisories", body).into_response()
}

pub async fn advisory(
    State(s): State<Arc<AppState>>,
    v: Viewer,
    Path(id): Path<String>,
    Query(p): Query<Page>,
) -> Response {
    let (db, off, key) = (s.db.clone(), s.offline_after, id.clone());
    let p = Page {
        limit: Some(p.limit.unwrap_or(50)),
        after: p.after,
    };
    let a = match blocking(move || fleet::affected_page(&db, &key, Some(&p), off)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let body = html! {
        p { (a.advisory.title) " — " (a.advisory.product) " " (a.advisory.affected) }
        p { strong { (a.count) } " hosts affected." }
        h2 { "By build" }
        ul { @for (b, n) in &a.by_build { li { (b) ": " (n) } } }
        h2 { "Hosts" }
        table {
            thead { tr { th scope="col" { "Host" } th scope="col" { "Group" } th scope="col" { "Build" } th scope="col" { "Status" } } }
            tbody { @for h in &a.hosts {
                tr {
                    td { a href={ "/console/hosts/" (urlencode(&h.id)) } { (h.hostname) } }
                    td { (h.group) } td { (h.build) }
                    td { (status(&super::pages::state_word(&h.status))) }
                }
            } }
        }
        (next_link(&format!("/console/advisories/{}", urlencode(&id)), "", a.next.as_deref()))
    };
    page(&v, "/console/advisories", &format!("Advisory {id}"), body).into_response()
}

#[derive(Deserialize)]
pub struct CoverageQuery {
    patch_id: Option<String>,
    product: Option<String>,
    requires_build: Option<String>,
}

/// Host lines shown per coverage list (the counts are over all).
const COVERAGE_LINES: usize = 100;

pub async fn coverage(
    State(s): State<Arc<AppState>>,
    v: Viewer,
    Query(q): Query<CoverageQuery>,
) -> Response {
    let asked = match (&q.patch_id, &q.product, &q.requires_build) {
        (Some(p), Some(pr), Some(r)) if !p.is_empty() && !pr.is_empty() && !r.is_empty() => {
            Some((p.clone(), pr.clone(), r.clone()))
        }
        _ => None,
    };
    let answer = match asked {
        None => None,
        Some((p, pr, r)) => {
            let (db, off) = (s.db.clone(), s.offline_after);
            match blocking(move || fleet::coverage(&db, &p, &pr, &r, off)).await {
                Ok(c) => Some(c),
                Err(r) => return r,
            }
        }
    };
    let body = html! {
        form.filters method="get" action="/console/coverage" {
            label for="c-patch" { "Patch" } input #c-patch name="patch_id" value=[q.patch_id.as_deref()] required;
            label for="c-product" { "Product" } input #c-product name="product" value=[q.product.as_deref()] required;
            label for="c-req" { "Requires build" } input #c-req name="requires_build" value=[q.requires_build.as_deref()] required;
            button type="submit" { "Show coverage" }
        }
        @if let Some(c) = &answer {
            dl.counts {
                dt { "Have it" } dd { (c.counts.have) }
                dt { "Eligible, without it" } dd { (c.counts.eligible_without) }
                dt { "Not eligible" } dd { (c.counts.not_eligible) }
                dt { "Unknown" } dd { (c.counts.unknown) }
            }
            @for (name, hosts) in c.lists() {
                @if !hosts.is_empty() {
                    h2 { (name.replace('_', " ")) }
                    ul { @for h in hosts.iter().take(COVERAGE_LINES) {
                        li {
                            a href={ "/console/hosts/" (urlencode(&h.id)) } { (h.hostname) }
                            " (" (h.group) ", build " (h.build.as_deref().unwrap_or("-")) ")"
                            @if let Some(r) = &h.reason { " — " (r) }
                        }
                    } }
                }
            }
        }
    };
    page(&v, "/console/coverage", "Patch coverage", body).into_response()
}

#[derive(Deserialize)]
pub struct PlanQuery {
    updraft: Option<String>,
}

pub async fn plan(
    State(s): State<Arc<AppState>>,
    v: Viewer,
    Query(q): Query<PlanQuery>,
) -> Response {
    let target = q
        .updraft
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| s.manager_build.clone());
    let (db, off, build) = (s.db.clone(), s.offline_after, s.manager_build.clone());
    let req = fleet::PlanRequest {
        targets: BTreeMap::from([("updraft".to_string(), target.clone())]),
    };
    let plan = match blocking(move || fleet::plan(&db, &req, &build, off)).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let body = html! {
        form.filters method="get" action="/console/plan" {
            label for="p-build" { "Target Updraft build" }
            input #p-build name="updraft" value=(target);
            button type="submit" { "Plan" }
        }
        p { "The manager runs " (plan.manager_build) ". Order: the manager first, relay groups parents before children, relays before the agents they serve." }
        ol { @for step in &plan.steps {
            li { (step.what) @if let fleet::StepKind::Group { hosts, .. } = &step.kind { " — " (hosts.len()) " hosts to upgrade" } }
        } }
        @if plan.steps.is_empty() { p { "Every host runs the target build or newer." } }
        @if !plan.violations.is_empty() {
            h2 { "Hosts newer than the manager" }
            ul { @for x in &plan.violations { li { a href={ "/console/hosts/" (urlencode(&x.id)) } { (x.hostname) } ": " (x.violation) } } }
        }
    };
    page(&v, "/console/plan", "Upgrade plan", body).into_response()
}
