//! The upgrade plan: an order that respects the support policy (the manager first; relay groups
//! parents before children; relays before the agents they serve; no agent newer than the
//! manager), with the hosts already violating it.

use std::collections::BTreeMap;

use model::protocol::{ModuleState, Role};
use model::Version;
use serde::{Deserialize, Serialize};

use super::{hosts, HostFilter, HostView};
use crate::db::{Db, Group, Host};
use crate::error::{Error, Result};
use crate::rollout::Wave;

/// Input of an upgrade plan: the target build per product (e.g. `{"updraft": "0.2.0"}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    pub targets: BTreeMap<String, String>,
}

/// `POST /api/v1/upgrade-plan`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub manager_build: String,
    pub targets: BTreeMap<String, String>,
    pub steps: Vec<PlanStep>,
    pub violations: Vec<Violation>,
}

/// One step of the plan, numbered from 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanStep {
    pub step: u32,
    /// "manager", "relay group NAME" or "agent group NAME".
    pub what: String,
    #[serde(flatten)]
    pub kind: StepKind,
}

/// What a step upgrades.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StepKind {
    /// The hosts of one group that are below a target.
    Group {
        group: String,
        parent: Option<String>,
        hosts: Vec<PlanHost>,
    },
    /// The manager itself.
    Manager { from: String, to: String },
}

/// A host of a group step and what it needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanHost {
    pub id: String,
    pub hostname: String,
    pub status: ModuleState,
    pub upgrades: Vec<Upgrade>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upgrade {
    pub product: String,
    pub from: String,
    pub to: String,
}

/// A host that already breaks the support policy (newer than the manager).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Violation {
    pub id: String,
    pub hostname: String,
    pub role: Role,
    pub build: String,
    pub violation: String,
}

/// An ordered upgrade plan for `req` (see the module documentation).
pub fn plan(db: &Db, req: &PlanRequest, manager_build: &str, offline_after: u64) -> Result<Plan> {
    for (p, b) in &req.targets {
        b.parse::<Version>().map_err(|e| Error::BadRequest {
            field: format!("targets.{p}"),
            reason: e.to_string(),
        })?;
    }
    let groups = db.groups()?;
    let all = hosts(db, &HostFilter::default(), offline_after)?;
    let mut steps = Vec::new();
    if let Some(t) = req.targets.get("updraft") {
        if manager_build.parse::<Version>().ok() < t.parse::<Version>().ok() {
            steps.push(PlanStep {
                step: 1,
                what: "manager".into(),
                kind: StepKind::Manager {
                    from: manager_build.into(),
                    to: t.clone(),
                },
            });
        }
    }
    let agent_groups = groups.iter().filter(|g| g.role == Role::Agent);
    for g in relay_tree_order(&groups).into_iter().chain(agent_groups) {
        let hosts = group_hosts(&all, g, &req.targets);
        if !hosts.is_empty() {
            steps.push(PlanStep {
                step: u32::try_from(steps.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(1),
                what: format!("{} group {}", g.role, g.name),
                kind: StepKind::Group {
                    group: g.name.clone(),
                    parent: g.parent.clone(),
                    hosts,
                },
            });
        }
    }
    Ok(Plan {
        manager_build: manager_build.into(),
        targets: req.targets.clone(),
        steps,
        violations: violations(&all, manager_build),
    })
}

/// The waves of a rollout of Updraft's own build that follows the upgrade plan: one wave per
/// level of the relay tree (roots first, all hosts of those groups, gated like `agent_waves[0]`),
/// then `agent_waves` as given (a host is in the first wave it matches, so a wave naming no
/// group reaches only agents: every relay group came before). The manager is not a wave: a
/// rollout newer than it is refused before this.
pub fn plan_waves(groups: &[Group], agent_waves: &[Wave]) -> Vec<Wave> {
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    let mut levels: Vec<Vec<String>> = Vec::new();
    for g in relay_tree_order(groups) {
        let depth = g
            .parent
            .as_deref()
            .and_then(|p| level.get(p))
            .map_or(0, |d| d.saturating_add(1));
        level.insert(&g.name, depth);
        if levels.len() <= depth {
            levels.resize(depth.saturating_add(1), Vec::new());
        }
        if let Some(l) = levels.get_mut(depth) {
            l.push(g.name.clone());
        }
    }
    // A relay group the tree walk did not reach (its parent gone) still goes before agents.
    let unreached: Vec<String> = groups
        .iter()
        .filter(|g| g.role == Role::Relay && !level.contains_key(g.name.as_str()))
        .map(|g| g.name.clone())
        .collect();
    if !unreached.is_empty() {
        levels.push(unreached);
    }
    let Some(gates) = agent_waves.first() else {
        return Vec::new();
    };
    let relay_waves = levels.into_iter().map(|groups| Wave {
        groups,
        share: 100,
        approval: false,
        ..gates.clone()
    });
    relay_waves.chain(agent_waves.iter().cloned()).collect()
}

/// Relay groups in tree order: roots first (by name), every group after its parent.
fn relay_tree_order(groups: &[Group]) -> Vec<&Group> {
    let relay_groups: Vec<&Group> = groups.iter().filter(|g| g.role == Role::Relay).collect();
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
    ordered
}

/// The hosts of group `g` (of its role) below a target, with what each needs.
fn group_hosts(all: &[HostView], g: &Group, targets: &BTreeMap<String, String>) -> Vec<PlanHost> {
    all.iter()
        .filter(|v| v.host.group == g.name && v.host.role == g.role)
        .filter_map(|v| {
            let upgrades = needs(&v.host, targets);
            (!upgrades.is_empty()).then(|| PlanHost {
                id: v.host.id.clone(),
                hostname: v.host.hostname.clone(),
                status: v.status.clone(),
                upgrades,
            })
        })
        .collect()
}

/// The products of `h` whose build is below their target.
fn needs(h: &Host, targets: &BTreeMap<String, String>) -> Vec<Upgrade> {
    targets
        .iter()
        .filter_map(|(p, t)| {
            let cur = h.builds.get(p)?;
            let (cv, tv) = (cur.parse::<Version>().ok()?, t.parse::<Version>().ok()?);
            (cv < tv).then(|| Upgrade {
                product: p.clone(),
                from: cur.clone(),
                to: t.clone(),
            })
        })
        .collect()
}

/// Hosts (agents or relays) whose own build is newer than the manager's.
fn violations(all: &[HostView], manager_build: &str) -> Vec<Violation> {
    let mgr = manager_build.parse::<Version>().ok();
    all.iter()
        .filter_map(|v| {
            let b = v.host.builds.get("updraft")?;
            (b.parse::<Version>().ok() > mgr).then(|| Violation {
                id: v.host.id.clone(),
                hostname: v.host.hostname.clone(),
                role: v.host.role,
                build: b.clone(),
                violation: format!(
                    "{} build {b} is newer than the manager ({manager_build})",
                    v.host.role
                ),
            })
        })
        .collect()
}
