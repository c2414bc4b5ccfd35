//! The fleet questions: which hosts run what, which an advisory affects, who lacks a patch and
//! why, and in what order to upgrade.

use std::collections::{BTreeMap, HashSet};

use model::{Requirement, Version};
use serde::{Deserialize, Serialize};

use crate::db::{Db, Group, Host};
use crate::error::{Error, Result};

/// A host with its computed status.
#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    #[serde(flatten)]
    pub host: Host,
    /// "online", or "offline" when no heartbeat came within `offline_after`.
    pub status: String,
}

pub fn online(h: &Host, offline_after: u64) -> bool {
    let Some(seen) = h
        .last_seen
        .as_deref()
        .and_then(|s| tuf::metadata::parse_expires("host", s).ok())
    else {
        return false;
    };
    (time::OffsetDateTime::now_utc() - seen).whole_seconds() <= offline_after as i64
}

/// Filters for the host list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFilter {
    pub role: Option<String>,
    pub group: Option<String>,
    /// `product` with optional `build` (exact) or `build_below`.
    pub product: Option<String>,
    pub build: Option<String>,
    pub build_below: Option<String>,
    pub component: Option<String>,
    pub version: Option<String>,
    pub status: Option<String>,
}

pub fn hosts(db: &Db, f: &HostFilter, offline_after: u64) -> Result<Vec<HostView>> {
    let below = f
        .build_below
        .as_deref()
        .map(str::parse::<Version>)
        .transpose()
        .map_err(|e| Error::BadRequest {
            field: "build_below".into(),
            reason: e.to_string(),
        })?;
    Ok(db
        .hosts()?
        .into_iter()
        .filter(|h| f.role.as_ref().is_none_or(|r| &h.role == r))
        .filter(|h| f.group.as_ref().is_none_or(|g| &h.group == g))
        .filter(|h| match &f.product {
            None => true,
            Some(p) => match h.builds.get(p) {
                None => false,
                Some(b) => {
                    f.build.as_ref().is_none_or(|want| b == want)
                        && below
                            .as_ref()
                            .is_none_or(|lim| b.parse::<Version>().is_ok_and(|v| &v < lim))
                }
            },
        })
        .filter(|h| match &f.component {
            None => true,
            Some(c) => h
                .components
                .get(c)
                .is_some_and(|v| f.version.as_ref().is_none_or(|want| v == want)),
        })
        .map(|h| {
            let status = if online(&h, offline_after) {
                "online"
            } else {
                "offline"
            }
            .to_string();
            HostView { host: h, status }
        })
        .filter(|v| f.status.as_ref().is_none_or(|s| &v.status == s))
        .collect())
}

/// Hosts an advisory affects: role matches and the product's build is in the affected range.
pub fn affected(db: &Db, advisory_id: &str, offline_after: u64) -> Result<serde_json::Value> {
    let a = db
        .advisories()?
        .into_iter()
        .find(|a| a.id == advisory_id)
        .ok_or_else(|| Error::BadRequest {
            field: "id".into(),
            reason: format!("no advisory {advisory_id:?}"),
        })?;
    let req: Requirement = a
        .affected
        .parse()
        .map_err(|e: model::Error| Error::Other(e.to_string()))?;
    let mut hosts = Vec::new();
    let mut by_build: BTreeMap<String, u64> = BTreeMap::new();
    for v in self::hosts(db, &HostFilter::default(), offline_after)? {
        if a.role != "any" && v.host.role != a.role {
            continue;
        }
        let Some(b) = v.host.builds.get(&a.product) else {
            continue;
        };
        if b.parse::<Version>().is_ok_and(|bv| req.matches(&bv)) {
            *by_build.entry(b.clone()).or_default() += 1;
            hosts.push(serde_json::json!({"id": v.host.id, "hostname": v.host.hostname, "role": v.host.role,
                "group": v.host.group, "build": b, "status": v.status}));
        }
    }
    Ok(
        serde_json::json!({"advisory": a, "count": hosts.len(), "by_build": by_build, "hosts": hosts}),
    )
}

/// Patch coverage: hosts that have `patch_id`, hosts eligible without it, hosts not eligible.
pub fn coverage(
    db: &Db,
    patch_id: &str,
    product: &str,
    requires_build: &str,
    offline_after: u64,
) -> Result<serde_json::Value> {
    let req: Requirement = requires_build
        .parse()
        .map_err(|e: model::Error| Error::BadRequest {
            field: "requires_build".into(),
            reason: e.to_string(),
        })?;
    let applied: HashSet<String> = db
        .history(None, Some(patch_id))?
        .into_iter()
        .filter(|(_, h)| h.outcome == "applied")
        .map(|(id, _)| id)
        .collect();
    let (mut have, mut eligible, mut not_eligible, mut unknown) = (vec![], vec![], vec![], vec![]);
    for v in hosts(db, &HostFilter::default(), offline_after)? {
        let h = &v.host;
        let entry = |reason: Option<String>| {
            serde_json::json!({"id": h.id, "hostname": h.hostname, "group": h.group,
                "build": h.builds.get(product), "status": v.status, "reason": reason})
        };
        if applied.contains(&h.id) {
            have.push(entry(None));
            continue;
        }
        match h.builds.get(product).map(|b| (b, b.parse::<Version>())) {
            Some((_, Ok(bv))) if req.matches(&bv) => eligible.push(entry(None)),
            Some((b, _)) => not_eligible.push(entry(Some(format!(
                "build {b} does not satisfy {requires_build}"
            )))),
            None if h.role == "agent" => {
                unknown.push(entry(Some(format!("no build of {product} reported"))))
            }
            None => {}
        }
    }
    Ok(serde_json::json!({
        "patch_id": patch_id, "product": product, "requires_build": requires_build,
        "counts": {"have": have.len(), "eligible_without": eligible.len(), "not_eligible": not_eligible.len(), "unknown": unknown.len()},
        "have": have, "eligible_without": eligible, "not_eligible": not_eligible, "unknown": unknown,
    }))
}

/// Input of an upgrade plan: the target build per product (e.g. `{"updraft": "0.2.0"}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    pub targets: BTreeMap<String, String>,
}

/// An ordered upgrade plan that respects the support policy: the manager first; relay groups
/// parents before children; relays before the agents they serve; no agent newer than the
/// manager. Hosts already violating the policy are flagged.
pub fn plan(
    db: &Db,
    req: &PlanRequest,
    manager_build: &str,
    offline_after: u64,
) -> Result<serde_json::Value> {
    for (p, b) in &req.targets {
        b.parse::<Version>().map_err(|e| Error::BadRequest {
            field: format!("targets.{p}"),
            reason: e.to_string(),
        })?;
    }
    let groups = db.groups()?;
    let all = hosts(db, &HostFilter::default(), offline_after)?;
    let mut steps = Vec::new();
    let mut n = 1;
    let needs = |h: &Host| -> Vec<(String, String, String)> {
        req.targets
            .iter()
            .filter_map(|(p, t)| {
                let cur = h.builds.get(p)?;
                let (cv, tv) = (cur.parse::<Version>().ok()?, t.parse::<Version>().ok()?);
                (cv < tv).then(|| (p.clone(), cur.clone(), t.clone()))
            })
            .collect()
    };
    if let Some(t) = req.targets.get("updraft") {
        if manager_build.parse::<Version>().ok() < t.parse::<Version>().ok() {
            steps.push(
                serde_json::json!({"step": n, "what": "manager", "from": manager_build, "to": t}),
            );
            n += 1;
        }
    }
    // Relay groups in tree order: roots first, then children (breadth first).
    let relay_groups: Vec<&Group> = groups.iter().filter(|g| g.role == "relay").collect();
    let mut ordered: Vec<&Group> = Vec::new();
    let mut frontier: Vec<Option<String>> = vec![None];
    while let Some(parent) = frontier.pop() {
        let mut children: Vec<&Group> = relay_groups
            .iter()
            .copied()
            .filter(|g| g.parent == parent)
            .collect();
        children.sort_by(|a, b| a.name.cmp(&b.name));
        for c in children.iter().rev() {
            frontier.insert(0, Some(c.name.clone()));
        }
        ordered.extend(children);
    }
    let group_steps = |kind: &str,
                       gs: &[&Group],
                       steps: &mut Vec<serde_json::Value>,
                       n: &mut i32| {
        for g in gs {
            let hosts: Vec<serde_json::Value> = all
                .iter()
                .filter(|v| v.host.group == g.name && v.host.role == kind)
                .filter_map(|v| {
                    let need = needs(&v.host);
                    (!need.is_empty()).then(|| {
                        serde_json::json!({"id": v.host.id, "hostname": v.host.hostname, "status": v.status,
                            "upgrades": need.iter().map(|(p, f, t)| serde_json::json!({"product": p, "from": f, "to": t})).collect::<Vec<_>>()})
                    })
                })
                .collect();
            if !hosts.is_empty() {
                steps.push(serde_json::json!({"step": *n, "what": format!("{kind} group {}", g.name), "group": g.name,
                    "parent": g.parent, "hosts": hosts}));
                *n += 1;
            }
        }
    };
    group_steps("relay", &ordered, &mut steps, &mut n);
    let agent_groups: Vec<&Group> = groups.iter().filter(|g| g.role == "agent").collect();
    group_steps("agent", &agent_groups, &mut steps, &mut n);
    // Policy violations now: agents (or relays) newer than the manager.
    let mgr = manager_build.parse::<Version>().ok();
    let violations: Vec<serde_json::Value> = all
        .iter()
        .filter_map(|v| {
            let b = v.host.builds.get("updraft")?;
            (b.parse::<Version>().ok() > mgr).then(|| {
                serde_json::json!({"id": v.host.id, "hostname": v.host.hostname, "role": v.host.role, "build": b,
                    "violation": format!("{} build {b} is newer than the manager ({manager_build})", v.host.role)})
            })
        })
        .collect();
    Ok(
        serde_json::json!({"manager_build": manager_build, "targets": req.targets, "steps": steps, "violations": violations}),
    )
}
