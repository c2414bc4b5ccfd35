//! The console's read-only pages: fleet overview, hosts and one host, groups and policy, the
//! relay tree, the audit log. Every list is paged; what hosts reported about themselves is
//! shown as reported (escaped like everything else).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use model::protocol::{ModuleState, Role};
use serde::Deserialize;

use super::layout::{next_link, page, status, urlencode};
use super::{blocking, Viewer};
use crate::api::AppState;
use crate::db::Group;
use crate::fleet::{self, HostFilter, HostView, Page};

/// Hosts on one console page by default.
const PAGE: u32 = 50;

pub(super) fn state_word(s: &ModuleState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// Whether a timestamp expiring at `expires` runs out within a day (or has).
fn expiring(expires: &str) -> bool {
    tuf::metadata::parse_expires("timestamp", expires)
        .is_ok_and(|t| t - time::OffsetDateTime::now_utc() < time::Duration::days(1))
}

/// The newest timestamp version any of `hosts` trusts.
fn newest_timestamp(hosts: &[HostView]) -> u64 {
    hosts
        .iter()
        .filter_map(|h| h.host.trust.as_ref().map(|t| t.timestamp_version))
        .max()
        .unwrap_or(0)
}

/// Hosts behind their channel: a host whose group follows `latest` (or `n-1`) runs an older
/// version of a component than the newest (or newest but one) any host runs, where no pin and
/// no rollout hold of its policy explains it. The manager sees only what hosts report, so
/// "newest" is the newest in use.
fn behind_channel(hosts: &[HostView], versions: &Adoption) -> usize {
    let newest = |c: &str, skip: usize| -> Option<model::Version> {
        let mut all: Vec<model::Version> = versions
            .get(c)?
            .keys()
            .filter_map(|v| v.parse().ok())
            .collect();
        all.sort();
        all.into_iter().rev().nth(skip)
    };
    hosts
        .iter()
        .filter(|h| {
            let Some(p) = &h.host.applied_policy else {
                return false;
            };
            let skip = usize::from(p.channel == model::protocol::Channel::Previous);
            h.host.components.iter().any(|(c, v)| {
                let free = !p.pinned.contains_key(c) && !p.holds.contains_key(c);
                let (Ok(v), Some(want)) = (v.parse::<model::Version>(), newest(c, skip)) else {
                    return false;
                };
                free && v < want
            })
        })
        .count()
}

/// Versions in use per component: component → version → hosts.
type Adoption = BTreeMap<String, BTreeMap<String, usize>>;

fn adoption(hosts: &[HostView]) -> (Adoption, BTreeMap<String, usize>) {
    let mut versions: Adoption = BTreeMap::new();
    let mut builds: BTreeMap<String, usize> = BTreeMap::new();
    for v in hosts {
        for (c, ver) in &v.host.components {
            *versions
                .entry(c.clone())
                .or_default()
                .entry(ver.clone())
                .or_default() += 1;
        }
        if let Some(b) = v.host.builds.get("updraft") {
            *builds.entry(format!("{} {b}", v.host.role)).or_default() += 1;
        }
    }
    (versions, builds)
}

pub async fn overview(State(s): State<Arc<AppState>>, v: Viewer) -> Response {
    let (db, off) = (s.db.clone(), s.offline_after);
    let loaded = blocking(move || {
        Ok((
            fleet::hosts(&db, &HostFilter::default(), off)?,
            db.active_rollouts()?,
        ))
    })
    .await;
    let (hosts, rollouts) = match loaded {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (versions, builds) = adoption(&hosts);
    let body = html! {
        (fleet_section(&hosts, &versions))
        section aria-labelledby="content" {
            h2 #content { "Content versions in use" }
            @for (component, per) in &versions { (adoption_table(component, per)) }
        }
        section aria-labelledby="builds" {
            h2 #builds { "Updraft builds" }
            ul { @for (b, count) in &builds { li { (b) ": " (count) } } }
        }
        section aria-labelledby="active" {
            h2 #active { "Rollouts in progress" }
            @if rollouts.is_empty() { p { "None." } }
            ul { @for r in &rollouts {
                li { a href={ "/console/rollouts/" (r.id) } { (r.spec.component) " " (r.spec.version) } " — " (r.state.as_str()) ", wave " (r.wave + 1) " of " (r.spec.waves.len()) }
            } }
        }
    };
    page(&v, "/console/", "Fleet overview", body).into_response()
}

/// Counts of the fleet, with the warnings that need someone's attention.
fn fleet_section(hosts: &[HostView], versions: &Adoption) -> Markup {
    let total = hosts.len();
    let count = |f: &dyn Fn(&HostView) -> bool| hosts.iter().filter(|h| f(h)).count();
    let offline = count(&|h| h.status == ModuleState::Offline);
    let online_trust = |f: &dyn Fn(&model::protocol::TrustState) -> bool| {
        count(&|h| h.status == ModuleState::Online && h.host.trust.as_ref().is_some_and(f))
    };
    let newest = newest_timestamp(hosts);
    let behind = online_trust(&|t| t.timestamp_version < newest);
    let running_out = online_trust(&|t| expiring(&t.timestamp_expires));
    let lagging_channel = behind_channel(hosts, versions);
    let duplicates = count(&|h| h.host.duplicate_hostname);
    html! {
        section aria-labelledby="fleet" {
            h2 #fleet { "Fleet" }
            dl.counts {
                dt { "Hosts" } dd { (total) }
                dt { "Relays" } dd { (count(&|h| h.host.role == Role::Relay)) }
                dt { "Online" } dd { (total - offline) }
                dt { "Offline" } dd { a href="/console/hosts?status=offline" { (offline) } }
            }
            @if lagging_channel > 0 {
                p.warning role="status" { (lagging_channel) " hosts run an older version than their channel asks for (the newest in use, or the newest but one), with no pin or rollout hold explaining it" }
            }
            @if behind > 0 {
                p.warning role="status" { (behind) " online hosts trust an older publication than timestamp v" (newest) " (behind their relay, or their relay behind)" }
            }
            @if running_out > 0 {
                p.warning role="status" { (running_out) " online hosts trust a timestamp that expires within a day: they stop taking updates when it does unless the publisher signs a new one" }
            }
            @if duplicates > 0 {
                p.warning role="status" { (duplicates) " hosts report a hostname another host reports too (a copied credential?)" }
            }
        }
    }
}

/// One component's versions in use, newest first, with their share of the hosts reporting it.
fn adoption_table(component: &str, per: &BTreeMap<String, usize>) -> Markup {
    let n: usize = per.values().sum();
    html! {
        table {
            caption { (component) }
            thead { tr { th scope="col" { "Version" } th scope="col" { "Hosts" } th scope="col" { "Adoption" } } }
            tbody {
                @for (version, count) in per.iter().rev() {
                    tr {
                        td { a href={ "/console/hosts?component=" (urlencode(component)) "&version=" (urlencode(version)) } { (version) } }
                        td { (count) }
                        td { meter min="0" max=(n) value=(count) aria-label={ (component) " " (version) } { (count) "/" (n) } " " (count * 100 / n.max(1)) " %" }
                    }
                }
            }
        }
    }
}

pub async fn hosts(
    State(s): State<Arc<AppState>>,
    v: Viewer,
    Query(mut f): Query<HostFilter>,
) -> Response {
    f.limit = Some(f.limit.unwrap_or(PAGE));
    let query = filter_query(&f);
    let (db, off, filter) = (s.db.clone(), s.offline_after, f.clone());
    let list = match blocking(move || fleet::host_list(&db, &filter, off)).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let body = html! {
        form.filters method="get" action="/console/hosts" {
            label for="f-group" { "Group" } input #f-group name="group" value=[f.group.as_deref()];
            label for="f-component" { "Component" } input #f-component name="component" value=[f.component.as_deref()];
            label for="f-version" { "Version" } input #f-version name="version" value=[f.version.as_deref()];
            label for="f-status" { "Status" }
            select #f-status name="status" {
                option value="" { "any" }
                @for st in ["online", "offline"] {
                    option value=(st) selected[f.status.as_ref().map(state_word).as_deref() == Some(st)] { (st) }
                }
            }
            button type="submit" { "Filter" }
        }
        table {
            caption { (list.count) " hosts on this page" }
            thead { tr { th scope="col" { "Host" } th scope="col" { "Role" } th scope="col" { "Group" } th scope="col" { "Status" } th scope="col" { "Last seen" } th scope="col" { "Components" } } }
            tbody {
                @for h in &list.hosts {
                    tr {
                        td { a href={ "/console/hosts/" (urlencode(&h.host.id)) } { (h.host.hostname) } }
                        td { (h.host.role) }
                        td { (h.host.group) }
                        td { (status(&state_word(&h.status))) }
                        td { (h.host.last_seen.as_deref().unwrap_or("never")) }
                        td { @for (c, ver) in &h.host.components { (c) " " (ver) br; } }
                    }
                }
            }
        }
        (next_link("/console/hosts", &query, list.next.as_deref()))
    };
    page(&v, "/console/hosts", "Hosts", body).into_response()
}

/// The filters of `f` as a query string prefix (`k=v&…&`), for the next page's link.
fn filter_query(f: &HostFilter) -> String {
    let mut q = String::new();
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            q.push_str(&format!("{k}={}&", urlencode(&v)));
        }
    };
    add("group", f.group.clone());
    add("component", f.component.clone());
    add("version", f.version.clone());
    add("status", f.status.as_ref().map(state_word));
    add("limit", f.limit.map(|l| l.to_string()));
    q
}

pub async fn host(
    State(s): State<Arc<AppState>>,
    v: Viewer,
    Path(id): Path<String>,
    Query(p): Query<Page>,
) -> Response {
    let (db, off) = (s.db.clone(), s.offline_after);
    let d = match blocking(move || fleet::host_detail(&db, &id, &p, off)).await {
        Ok(Some(d)) => d,
        Ok(None) => return super::page_error(axum::http::StatusCode::NOT_FOUND, "No such host."),
        Err(r) => return r,
    };
    let h = &d.host;
    let policy = h.applied_policy.as_ref();
    let body = html! {
        p.note { "What a host reports about itself is shown as it reported it." }
        @if v.may(crate::db::UserRole::Operator) {
            section.actions aria-labelledby="host-act" {
                h2 #host-act { "Act" }
                @if h.revoked.is_none() {
                    form method="post" action={ "/console/hosts/" (urlencode(&h.id)) "/revoke" } { (super::layout::csrf(&v)) button type="submit" { "Revoke its credential" } }
                }
                form method="post" action={ "/console/hosts/" (urlencode(&h.id)) "/delete" } { (super::layout::csrf(&v)) button type="submit" { "Delete the host" } }
            }
        }
        dl.facts {
            dt { "Role" } dd { (h.role) }
            dt { "Group" } dd { (h.group) }
            dt { "Status" } dd { (status(&state_word(&d.status))) }
            dt { "Last seen" } dd { (h.last_seen.as_deref().unwrap_or("never")) }
            @if let Some(r) = &h.revoked { dt { "Revoked" } dd { (r) } }
            dt { "Trusted metadata" } dd {
                @if let Some(t) = &h.trust {
                    "root v" (t.root_version) ", timestamp v" (t.timestamp_version) ", expires " (t.timestamp_expires)
                    @if expiring(&t.timestamp_expires) { " " span.warning { "(within a day)" } }
                } @else { "not reported" }
            }
            dt { "Upstream in use" } dd { (h.upstream.as_deref().unwrap_or("-")) }
            dt { "Last result" } dd { (h.last_result.as_deref().unwrap_or("-")) }
            dt { "Policy applied" } dd { @if let Some(p) = policy { "group " (p.group) ", channel " (p.channel.as_str()) ", poll " (p.poll_interval) " s" } @else { "none yet" } }
        }
        h2 { "Builds" }
        ul { @for (p, b) in &h.builds { li { (p) " " (b) } } }
        h2 { "Modules" }
        table {
            thead { tr { th scope="col" { "Module" } th scope="col" { "Status" } th scope="col" { "Components" } th scope="col" { "Reason" } } }
            tbody { @for m in &h.modules {
                tr {
                    td { (m.name) }
                    td { (status(&state_word(&m.status))) }
                    td { @for (c, ver) in &m.components { (c) " " (ver.as_deref().unwrap_or("-")) br; } }
                    td { (m.reason.as_deref().unwrap_or("")) }
                }
            } }
        }
        h2 { "Hotfix history" }
        p { (d.history_count) " entries in all." }
        table {
            thead { tr { th scope="col" { "Time" } th scope="col" { "Patch" } th scope="col" { "Product" } th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "Outcome" } th scope="col" { "Message" } } }
            tbody { @for r in &d.hotfix_history {
                tr { td { (r.entry.time) } td { (r.entry.patch_id) } td { (r.entry.product) } td { (r.entry.from_build) } td { (r.entry.to_build) } td { (r.entry.outcome) } td { (r.entry.message) } }
            } }
        }
        (next_link(&format!("/console/hosts/{}", urlencode(&h.id)), "", d.history_next.as_deref()))
    };
    page(&v, "/console/hosts", &format!("Host {}", h.hostname), body).into_response()
}

pub async fn groups(State(s): State<Arc<AppState>>, v: Viewer) -> Response {
    let db = s.db.clone();
    let groups = match blocking(move || db.groups()).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let body = html! {
        table {
            thead { tr { th scope="col" { "Group" } th scope="col" { "Role" } th scope="col" { "Parent" } th scope="col" { "Relays" } th scope="col" { "Poll" } th scope="col" { "Channel" } th scope="col" { "Pins" } th scope="col" { "Window" } } }
            tbody { @for g in &groups { (group_row(g)) } }
        }
    };
    page(&v, "/console/groups", "Groups and policy", body).into_response()
}

fn group_row(g: &Group) -> Markup {
    html! {
        tr {
            td { (g.name) }
            td { (g.role) }
            td { (g.parent.as_deref().unwrap_or("-")) }
            td { @for r in &g.relays { (r) br; } }
            td { (g.poll_interval) " s" }
            td { (g.channel.as_str()) }
            td { @for (c, ver) in &g.pinned { (c) " = " (ver) br; } }
            td { @if let Some(w) = &g.maintenance {
                (w.days.join(",")) " " (w.start) "–" (w.end) " " (w.time_zone.as_deref().unwrap_or(&w.utc_offset))
            } @else { "any time" } }
        }
    }
}

pub async fn relays(State(s): State<Arc<AppState>>, v: Viewer) -> Response {
    let (db, off) = (s.db.clone(), s.offline_after);
    let filter = HostFilter {
        role: Some(Role::Relay),
        ..Default::default()
    };
    let loaded = blocking(move || Ok((db.groups()?, fleet::hosts(&db, &filter, off)?))).await;
    let (groups, relays) = match loaded {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = html! {
        p { "Relay groups, parents before their children, with the relays that reported in each and how far each is behind the newest publication a relay serves." }
        (tree(&groups, &relays, None, 0))
    };
    page(&v, "/console/relays", "Relay tree", body).into_response()
}

/// The relay groups under `parent` as nested lists (bounded depth: the manager refuses cycles).
fn tree(groups: &[Group], relays: &[HostView], parent: Option<&str>, depth: usize) -> Markup {
    let children: Vec<&Group> = groups
        .iter()
        .filter(|g| g.role == Role::Relay && g.parent.as_deref() == parent)
        .collect();
    html! {
        @if !children.is_empty() && depth < 32 {
            ul.tree {
                @for g in children {
                    li {
                        strong { (g.name) }
                        ul { @for r in relays.iter().filter(|r| r.host.group == g.name) {
                            li {
                                a href={ "/console/hosts/" (urlencode(&r.host.id)) } { (r.host.hostname) } " "
                                (status(&state_word(&r.status)))
                                " last report " (r.host.last_seen.as_deref().unwrap_or("never"))
                                @if let Some(t) = &r.host.trust {
                                    " · timestamp v" (t.timestamp_version)
                                    @let lag = newest_timestamp(relays).saturating_sub(t.timestamp_version);
                                    @if lag > 0 { " " span.warning { "(" (lag) " behind)" } }
                                }
                                " · " (r.host.last_result.as_deref().unwrap_or("-"))
                            }
                        } }
                        (tree(groups, relays, Some(&g.name), depth + 1))
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct AuditQuery {
    after: Option<i64>,
}

pub async fn audit(
    State(s): State<Arc<AppState>>,
    v: Viewer,
    Query(q): Query<AuditQuery>,
) -> Response {
    let db = s.db.clone();
    let mut entries = match blocking(move || db.audit_page(q.after, PAGE + 1)).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let more = entries.len() > PAGE as usize;
    entries.truncate(PAGE as usize);
    let next = more
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    let body = html! {
        table {
            thead { tr { th scope="col" { "Time" } th scope="col" { "Who" } th scope="col" { "Action" } th scope="col" { "Detail" } } }
            tbody { @for e in &entries {
                tr { td { (e.time) } td { (e.actor) } td { (e.action) } td.detail { (e.detail) } }
            } }
        }
        (next_link("/console/audit", "", next.as_deref()))
    };
    page(&v, "/console/audit", "Audit log", body).into_response()
}
