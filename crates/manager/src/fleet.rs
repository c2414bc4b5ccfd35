//! The fleet questions: which hosts run what, which an advisory affects, who lacks a patch and
//! why, and in what order to upgrade. Each answer is a typed struct (the API serializes it as it
//! is; the admin CLI prints it).

mod plan;

use std::collections::{BTreeMap, HashSet};

use model::protocol::{ModuleState, Outcome, Role};
use model::{Requirement, Version};
use serde::{Deserialize, Serialize};

pub use plan::{
    plan, plan_waves, Plan, PlanHost, PlanRequest, PlanStep, StepKind, Upgrade, Violation,
};

use crate::db::{Advisory, Db, HistoryRow, Host};
use crate::error::{Error, Result};

/// A host with its computed status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostView {
    #[serde(flatten)]
    pub host: Host,
    /// Online, or offline when no heartbeat came within `offline_after`.
    pub status: ModuleState,
}

/// What the host reported about itself (unverified: a host credential can claim anything): these
/// fields of a host are shown as reported, in the API and by `updraft admin`.
pub const REPORTED_FIELDS: &[&str] = &[
    "hostname",
    "upstream",
    "builds",
    "components",
    "modules",
    "last_result",
    "applied_policy",
    "hotfix_history",
];

fn reported_fields() -> Vec<String> {
    REPORTED_FIELDS.iter().map(|f| f.to_string()).collect()
}

/// `GET /api/v1/hosts`: one page, ordered by hostname and id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostList {
    /// Hosts on this page.
    pub count: usize,
    pub hosts: Vec<HostView>,
    /// The cursor of the next page (`?after=`), if there are more hosts.
    pub next: Option<String>,
    /// Fields of each host as the host reported them ([`REPORTED_FIELDS`]).
    pub reported_fields: Vec<String>,
}

impl HostList {
    pub fn new(hosts: Vec<HostView>) -> Self {
        HostList::page(hosts, None)
    }

    fn page(hosts: Vec<HostView>, next: Option<String>) -> Self {
        HostList {
            count: hosts.len(),
            hosts,
            next,
            reported_fields: reported_fields(),
        }
    }
}

/// `GET /api/v1/hosts/{id}`: one host with one page of its hotfix history (oldest first).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostDetail {
    pub host: Host,
    pub status: ModuleState,
    pub hotfix_history: Vec<HistoryRow>,
    /// Entries the manager keeps for this host in all.
    pub history_count: u64,
    /// The cursor of the next page of history (`?after=`), if there is more.
    pub history_next: Option<String>,
    /// Fields as the host reported them ([`REPORTED_FIELDS`]).
    pub reported_fields: Vec<String>,
}

/// Items per page when the request names no `limit`, and the most it may ask for.
pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;

/// A page request: `?limit=&after=` (`after` is the `next` cursor of the previous page).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub limit: Option<u32>,
    pub after: Option<String>,
}

impl Page {
    /// The page size asked for, checked against [`MAX_PAGE`].
    pub fn limit(&self) -> Result<u32> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(Error::BadRequest {
                field: "limit".into(),
                reason: format!("{n}: give 1 to {MAX_PAGE}"),
            }),
        }
    }

    /// The cursor as a row id (history, audit).
    pub fn after_id(&self) -> Result<Option<i64>> {
        self.after
            .as_deref()
            .map(|a| {
                a.parse::<i64>().map_err(|_| Error::BadRequest {
                    field: "after".into(),
                    reason: format!("{a:?} is not a cursor this list returned"),
                })
            })
            .transpose()
    }

    /// This page of `items` (ordered, each with a unique `key`), and the next cursor.
    fn of<T>(&self, items: Vec<T>, key: impl Fn(&T) -> &str) -> Result<(Vec<T>, Option<String>)> {
        let limit = usize::try_from(self.limit()?).unwrap_or(usize::MAX);
        let start = match &self.after {
            None => 0,
            Some(a) => match items.iter().position(|x| key(x) == a) {
                Some(i) => i + 1,
                None => {
                    return Err(Error::BadRequest {
                        field: "after".into(),
                        reason: format!("{a:?} is not a cursor this list returned"),
                    })
                }
            },
        };
        let more = items.len().saturating_sub(start) > limit;
        let page: Vec<T> = items.into_iter().skip(start).take(limit).collect();
        let next = more
            .then(|| page.last().map(|x| key(x).to_string()))
            .flatten();
        Ok((page, next))
    }
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

/// Filters for the host list (and the page: `limit`, `after`, which [`hosts`] ignores).
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
    pub limit: Option<u32>,
    pub after: Option<String>,
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

/// One page of the hosts `f` keeps (`f.limit`, `f.after`).
pub fn host_list(db: &Db, f: &HostFilter, offline_after: u64) -> Result<HostList> {
    let page = Page {
        limit: f.limit,
        after: f.after.clone(),
    };
    page.limit()?;
    let (hosts, next) = page.of(hosts(db, f, offline_after)?, |v| v.host.id.as_str())?;
    Ok(HostList::page(hosts, next))
}

/// One host with a page of its hotfix history, or `None` if there is no such host.
pub fn host_detail(
    db: &Db,
    id: &str,
    page: &Page,
    offline_after: u64,
) -> Result<Option<HostDetail>> {
    let limit = page.limit()?;
    let after = page.after_id()?;
    let Some(host) = db.host(id)? else {
        return Ok(None);
    };
    // One more than asked tells whether there is a next page.
    let mut hotfix_history = db.history_page(id, after, limit.saturating_add(1))?;
    let more = hotfix_history.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    hotfix_history.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let history_next = more
        .then(|| hotfix_history.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(Some(HostDetail {
        status: status(&host, offline_after),
        history_count: db.history_count(id)?,
        host,
        hotfix_history,
        history_next,
        reported_fields: reported_fields(),
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

/// `GET /api/v1/advisories/{id}/hosts`: the counts over every affected host, one page of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdvisoryHosts {
    pub advisory: Advisory,
    /// Hosts affected in all (by their reported builds).
    pub count: usize,
    /// build → hosts affected running it.
    pub by_build: BTreeMap<String, u64>,
    pub hosts: Vec<AffectedHost>,
    /// The cursor of the next page of hosts (`?after=`), if there are more.
    #[serde(default)]
    pub next: Option<String>,
}

/// Hosts an advisory affects (every one: the CLI and the demo), see [`affected_page`].
pub fn affected(db: &Db, advisory_id: &str, offline_after: u64) -> Result<AdvisoryHosts> {
    affected_page(db, advisory_id, None, offline_after)
}

/// Hosts an advisory affects: role matches and the product's build is in the affected range;
/// with `page`, only that page of hosts (the counts stay over all).
pub fn affected_page(
    db: &Db,
    advisory_id: &str,
    page: Option<&Page>,
    offline_after: u64,
) -> Result<AdvisoryHosts> {
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
    let count = hosts.len();
    let (hosts, next) = match page {
        Some(p) => p.of(hosts, |h| h.id.as_str())?,
        None => (hosts, None),
    };
    Ok(AdvisoryHosts {
        advisory: a,
        count,
        by_build,
        hosts,
        next,
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
    let applied = db.hosts_reporting(patch_id, Outcome::Applied.as_str())?;
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
