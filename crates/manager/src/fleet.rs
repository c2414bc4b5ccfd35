//! The fleet questions: which hosts run what, which an advisory affects, who lacks a patch and
//! why, and in what order to upgrade. Each answer is a typed struct (the API serializes it as it
//! is; the admin CLI prints it).

mod plan;

use std::collections::{BTreeMap, HashSet};

use model::protocol::{HistoryEntry, ModuleState, Outcome, Role};
use model::{Requirement, Version};
use serde::{Deserialize, Serialize};

pub use plan::{plan, Plan, PlanHost, PlanRequest, PlanStep, StepKind, Upgrade, Violation};

use crate::db::{Advisory, Db, Host};
use crate::error::{Error, Result};

/// A host with its computed status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostView {
    #[serde(flatten)]
    pub host: Host,
    /// Online, or offline when no heartbeat came within `offline_after`.
    pub status: ModuleState,
}

/// `GET /api/v1/hosts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostList {
    pub count: usize,
    pub hosts: Vec<HostView>,
}

impl HostList {
    pub fn new(hosts: Vec<HostView>) -> Self {
        HostList {
            count: hosts.len(),
            hosts,
        }
    }
}

/// `GET /api/v1/hosts/{id}`: one host with its hotfix history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostDetail {
    pub host: Host,
    pub status: ModuleState,
    pub hotfix_history: Vec<HistoryEntry>,
}

/// Whether `h` sent a heartbeat within `offline_after` seconds.
pub fn online(h: &Host, offline_after: u64) -> bool {
    let Some(seen) = h
        .last_seen
        .as_deref()
        .and_then(|s| tuf::metadata::parse_expires("host", s).ok())
    else {
        return false;
    };
    let limit = i64::try_from(offline_after).unwrap_or(i64::MAX);
    (time::OffsetDateTime::now_utc() - seen).whole_seconds() <= limit
}

pub fn status(h: &Host, offline_after: u64) -> ModuleState {
    if online(h, offline_after) {
        ModuleState::Online
    } else {
        ModuleState::Offline
    }
}

/// Filters for the host list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFilter {
    pub role: Option<Role>,
    pub group: Option<String>,
    /// `product` with optional `build` (exact) or `build_below`.
    pub product: Option<String>,
    pub build: Option<String>,
    pub build_below: Option<String>,
    pub component: Option<String>,
    pub version: Option<String>,
    pub status: Option<ModuleState>,
}

impl HostFilter {
    fn keeps(&self, h: &Host, below: Option<&Version>) -> bool {
        let product = match &self.product {
            None => true,
            Some(p) => h.builds.get(p).is_some_and(|b| {
                self.build.as_ref().is_none_or(|want| b == want)
                    && below.is_none_or(|lim| b.parse::<Version>().is_ok_and(|v| &v < lim))
            }),
        };
        let component = match &self.component {
            None => true,
            Some(c) => h
                .components
                .get(c)
                .is_some_and(|v| self.version.as_ref().is_none_or(|want| v == want)),
        };
        self.role.is_none_or(|r| h.role == r)
            && self.group.as_ref().is_none_or(|g| &h.group == g)
            && product
            && component
    }
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
        .filter(|h| f.keeps(h, below.as_ref()))
        .map(|host| HostView {
            status: status(&host, offline_after),
            host,
        })
        .filter(|v| f.status.as_ref().is_none_or(|s| &v.status == s))
        .collect())
}

/// One host with its hotfix history, or `None` if there is no such host.
pub fn host_detail(db: &Db, id: &str, offline_after: u64) -> Result<Option<HostDetail>> {
    let Some(host) = db.host(id)? else {
        return Ok(None);
    };
    let hotfix_history = db
        .history(Some(id), None)?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    Ok(Some(HostDetail {
        status: status(&host, offline_after),
        host,
        hotfix_history,
    }))
}

/// A host an advisory affects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AffectedHost {
    pub id: String,
    pub hostname: String,
    pub role: Role,
    pub group: String,
    pub build: String,
    pub status: ModuleState,
}

/// `GET /api/v1/advisories/{id}/hosts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdvisoryHosts {
    pub advisory: Advisory,
    pub count: usize,
    /// build → hosts affected running it.
    pub by_build: BTreeMap<String, u64>,
    pub hosts: Vec<AffectedHost>,
}

/// Hosts an advisory affects: role matches and the product's build is in the affected range.
pub fn affected(db: &Db, advisory_id: &str, offline_after: u64) -> Result<AdvisoryHosts> {
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
        .map_err(|e: model::Error| Error::Other(format!("advisory {advisory_id}: {e}")))?;
    let mut hosts = Vec::new();
    let mut by_build: BTreeMap<String, u64> = BTreeMap::new();
    for v in self::hosts(db, &HostFilter::default(), offline_after)? {
        let Some(b) = v.host.builds.get(&a.product) else {
            continue;
        };
        if a.role.covers(v.host.role) && b.parse::<Version>().is_ok_and(|bv| req.matches(&bv)) {
            *by_build.entry(b.clone()).or_default() += 1;
            hosts.push(AffectedHost {
                build: b.clone(),
                id: v.host.id,
                hostname: v.host.hostname,
                role: v.host.role,
                group: v.host.group,
                status: v.status,
            });
        }
    }
    Ok(AdvisoryHosts {
        advisory: a,
        count: hosts.len(),
        by_build,
        hosts,
    })
}

/// A host in a patch coverage answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoverageHost {
    pub id: String,
    pub hostname: String,
    pub group: String,
    /// Its build of the product, if it reported one.
    pub build: Option<String>,
    pub status: ModuleState,
    /// Why it is not eligible (or why that is unknown).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageCounts {
    pub have: usize,
    pub eligible_without: usize,
    pub not_eligible: usize,
    pub unknown: usize,
}

/// `GET /api/v1/patches/{patch_id}/coverage`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Coverage {
    pub patch_id: String,
    pub product: String,
    pub requires_build: String,
    pub counts: CoverageCounts,
    pub have: Vec<CoverageHost>,
    pub eligible_without: Vec<CoverageHost>,
    pub not_eligible: Vec<CoverageHost>,
    pub unknown: Vec<CoverageHost>,
}

impl Coverage {
    /// The four lists with their names, in order.
    pub fn lists(&self) -> [(&'static str, &[CoverageHost]); 4] {
        [
            ("have", &self.have),
            ("eligible_without", &self.eligible_without),
            ("not_eligible", &self.not_eligible),
            ("unknown", &self.unknown),
        ]
    }
}

/// Patch coverage: hosts that have `patch_id`, hosts eligible without it, hosts not eligible.
pub fn coverage(
    db: &Db,
    patch_id: &str,
    product: &str,
    requires_build: &str,
    offline_after: u64,
) -> Result<Coverage> {
    let req: Requirement = requires_build
        .parse()
        .map_err(|e: model::Error| Error::BadRequest {
            field: "requires_build".into(),
            reason: e.to_string(),
        })?;
    let applied: HashSet<String> = db
        .history(None, Some(patch_id))?
        .into_iter()
        .filter(|(_, h)| h.outcome == Outcome::Applied)
        .map(|(id, _)| id)
        .collect();
    let mut c = Coverage {
        patch_id: patch_id.into(),
        product: product.into(),
        requires_build: requires_build.into(),
        counts: CoverageCounts {
            have: 0,
            eligible_without: 0,
            not_eligible: 0,
            unknown: 0,
        },
        have: vec![],
        eligible_without: vec![],
        not_eligible: vec![],
        unknown: vec![],
    };
    for v in hosts(db, &HostFilter::default(), offline_after)? {
        c.place(v, &applied, &req);
    }
    c.counts = CoverageCounts {
        have: c.have.len(),
        eligible_without: c.eligible_without.len(),
        not_eligible: c.not_eligible.len(),
        unknown: c.unknown.len(),
    };
    Ok(c)
}

impl Coverage {
    /// Put one host in the list it belongs to (relays without the product are in none).
    fn place(&mut self, v: HostView, applied: &HashSet<String>, req: &Requirement) {
        let build = v.host.builds.get(&self.product).cloned();
        let entry = |reason: Option<String>| CoverageHost {
            id: v.host.id.clone(),
            hostname: v.host.hostname.clone(),
            group: v.host.group.clone(),
            build: build.clone(),
            status: v.status.clone(),
            reason,
        };
        if applied.contains(&v.host.id) {
            self.have.push(entry(None));
            return;
        }
        match build.as_deref().map(|b| (b, b.parse::<Version>())) {
            Some((_, Ok(bv))) if req.matches(&bv) => self.eligible_without.push(entry(None)),
            Some((b, _)) => {
                let why = format!("build {b} does not satisfy {}", self.requires_build);
                self.not_eligible.push(entry(Some(why)))
            }
            None if v.host.role == Role::Agent => {
                let why = format!("no build of {} reported", self.product);
                self.unknown.push(entry(Some(why)))
            }
            None => {}
        }
    }
}
