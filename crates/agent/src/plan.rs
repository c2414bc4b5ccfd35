//! The plan of a cycle: from the verified targets, what is installed, the ledger, the products'
//! builds and the policy, the list of actions the cycle takes. Pure: no I/O, no clock, so every
//! decision can be tested on its own; [`crate::modules`] and [`crate::patches`] carry it out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use model::{ContentInfo, Kind, PatchId, Requirement, Version};
use tuf::TargetInfo;

use crate::config::{ModuleConfig, ProductConfig};
use crate::ledger::Ledger;
use crate::state::Installed;

/// At most this many targets roles are loaded to list what the repository offers.
pub const MAX_ROLES: usize = 10_000;

/// At most this many ignored targets are named in the status (the rest are counted).
const IGNORED_SHOWN: usize = 20;

/// What the planner needs of a target: its path. The verified [`TargetInfo`] in the agent;
/// anything with a path in the planner's tests.
pub trait Target {
    fn path(&self) -> &str;
}

impl Target for TargetInfo {
    fn path(&self) -> &str {
        TargetInfo::path(self)
    }
}

/// A target the delegation search authorised, with its content description bound to its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentTarget<T = TargetInfo> {
    pub info: ContentInfo,
    pub target: T,
}

/// An authorised target with an invalid or disagreeing description.
#[derive(Debug, Clone)]
pub struct Invalid {
    pub path: String,
    /// Its `custom.updraft` object as read, if it has the expected shape.
    pub info: Option<ContentInfo>,
    pub why: String,
}

/// What the agent makes of one listing.
#[derive(Debug)]
pub struct Content<T = TargetInfo> {
    /// Authorised targets whose `custom.updraft` is valid and agrees with their path.
    pub usable: Vec<ContentTarget<T>>,
    /// Authorised targets with an invalid or disagreeing description, and why.
    pub invalid: Vec<Invalid>,
    /// Lines for the status: everything not used (at most [`IGNORED_SHOWN`] named).
    pub ignored: Vec<String>,
}

impl<T> Default for Content<T> {
    fn default() -> Self {
        Content {
            usable: Vec::new(),
            invalid: Vec::new(),
            ignored: Vec::new(),
        }
    }
}

/// The Updraft content the agent may act on: targets the delegation search authorised whose
/// `custom.updraft` agrees with their path. Everything else is ignored and reported.
pub fn authorised_content(listing: tuf::TargetListing) -> Content {
    let mut ignored: Vec<String> = listing
        .refused
        .iter()
        .map(|r| {
            format!(
                "ignored {} (listed by {}): {}",
                r.path,
                r.listed_by.join(", "),
                r.reason
            )
        })
        .collect();
    ignored.extend(listing.truncated.iter().map(|d| {
        format!("targets below delegation {d} not all listed: more than {MAX_ROLES} roles")
    }));
    let mut content = Content::default();
    for target in listing.targets {
        match ContentInfo::for_target(target.path(), target.custom()) {
            Ok(Some(info)) => content.usable.push(ContentTarget { info, target }),
            Ok(None) => {}
            Err(e) => {
                ignored.push(format!("ignored (signed by {}): {e}", target.role()));
                let info = match ContentInfo::parse_custom(target.custom()) {
                    Some(Ok(info) | Err((info, _))) => Some(info),
                    None => None,
                };
                content.invalid.push(Invalid {
                    path: target.path().to_string(),
                    info,
                    why: e.to_string(),
                });
            }
        }
    }
    for line in &ignored {
        tracing::warn!("{line}");
    }
    if ignored.len() > IGNORED_SHOWN {
        let more = ignored.len() - IGNORED_SHOWN;
        ignored.truncate(IGNORED_SHOWN);
        ignored.push(format!("{more} more targets ignored"));
    }
    content.ignored = ignored;
    content
}

/// What a plan is made from, besides the content.
#[derive(Debug, Clone, Copy)]
pub struct Basis<'a> {
    pub modules: &'a [ModuleConfig],
    pub products: &'a [ProductConfig],
    /// This host's platform, matched against targets' `platforms`.
    pub platform: &'a str,
    /// Which verified version the manager's policy lets this host take.
    pub selection: &'a Selection,
    /// Whether the maintenance window is open now (no window: always). Outside it, engines,
    /// programs and patches wait unless their publisher marked them urgent.
    pub in_window: bool,
    pub installed: &'a Installed,
    pub ledger: &'a Ledger,
    /// product → its build now, or why it cannot be determined.
    pub builds: &'a BTreeMap<String, Result<String, String>>,
}

mod selection;
pub use selection::Selection;

/// Everything a cycle does, in order: modules first, then each product's patches.
#[derive(Debug)]
pub struct Plan<'a, T = TargetInfo> {
    pub modules: Vec<ModulePlan<'a, T>>,
    pub products: Vec<ProductPlan<'a, T>>,
    /// What waits for the maintenance window ("component version" or "patch id").
    pub deferred: Vec<String>,
}

/// Versions to install into one module (then reload it once).
#[derive(Debug)]
pub struct ModulePlan<'a, T = TargetInfo> {
    pub module: &'a ModuleConfig,
    pub installs: Vec<Install<'a, T>>,
}

/// Install `version` of `component` (its `files`) into the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install<'a, T = TargetInfo> {
    pub component: String,
    pub version: String,
    pub files: Vec<&'a T>,
}

/// One product's patch steps, and the patches they come from (oldest version first), so that
/// the rest can be planned again from what really happened when an applied step did not apply.
#[derive(Debug)]
pub struct ProductPlan<'a, T = TargetInfo> {
    pub product: &'a ProductConfig,
    pub patches: Vec<&'a ContentTarget<T>>,
    pub steps: Vec<PatchStep<'a, T>>,
}

/// What to do with one patch target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchStep<'a, T = TargetInfo> {
    /// A signed patch target whose description is invalid: recorded as refused, never
    /// downloaded. `id` is the id as published (bounded), only reported.
    Refuse {
        target: &'a str,
        id: String,
        build: String,
        to: String,
        why: String,
    },
    /// The product's build cannot be determined: recorded as failed.
    UnknownBuild {
        id: PatchId,
        to: String,
        why: String,
    },
    /// The build is outside the patch's requirement: recorded.
    NotApplicable {
        id: PatchId,
        build: String,
        to: String,
        requires: String,
    },
    /// Preflight, then download, stage, swap in, restart.
    Apply {
        id: PatchId,
        build: String,
        to: String,
        target: &'a ContentTarget<T>,
    },
}

/// The plan for `content` on this host.
pub fn plan<'a, T: Target>(content: &'a Content<T>, basis: &Basis<'a>) -> Plan<'a, T> {
    let mut deferred = Vec::new();
    let modules = module_plans(content, basis, &mut deferred);
    let products = basis
        .products
        .iter()
        .map(|p| product_plan(p, content, basis, &mut deferred))
        .collect();
    Plan {
        modules,
        products,
        deferred,
    }
}

/// Whether a target waits for the maintenance window: engines, programs and patches that
/// their publisher did not mark urgent.
fn windowed(info: &ContentInfo) -> bool {
    matches!(info.kind, Kind::Engine | Kind::Program | Kind::Patch) && !info.urgent
}

/// One offered version: its files, and whether it waits for the maintenance window.
struct Offer<'a, T> {
    files: Vec<&'a T>,
    windowed: bool,
}

/// component → version text → (version, offer): what the repository offers this platform.
type Offered<'a, T> = HashMap<&'a str, BTreeMap<&'a str, (Version, Offer<'a, T>)>>;

fn offered<'a, T>(content: &'a Content<T>, platform: &str) -> Offered<'a, T> {
    let mut by_component: Offered<'a, T> = HashMap::new();
    for ContentTarget { info, target } in &content.usable {
        if info.kind == Kind::Patch || !for_platform(info, platform) {
            continue;
        }
        let Ok(v) = info.version.parse::<Version>() else {
            continue;
        };
        let offer = &mut by_component
            .entry(info.component.as_str())
            .or_default()
            .entry(info.version.as_str())
            .or_insert_with(|| {
                (
                    v,
                    Offer {
                        files: Vec::new(),
                        windowed: true,
                    },
                )
            })
            .1;
        offer.files.push(target);
        // Urgent if any of its files is.
        offer.windowed &= windowed(info);
    }
    by_component
}

fn for_platform(info: &ContentInfo, platform: &str) -> bool {
    info.platforms.is_empty() || info.platforms.iter().any(|p| p == platform)
}

/// For each module, the version [`Selection::choose`] picks (the newest, the pinned one, the
/// channel's, below a hold) of each of its components that is not installed and did not fail
/// its reload. A component two modules use is installed once,
/// by the first.
fn module_plans<'a, T>(
    content: &'a Content<T>,
    basis: &Basis<'a>,
    deferred: &mut Vec<String>,
) -> Vec<ModulePlan<'a, T>> {
    let offered = offered(content, basis.platform);
    let mut current: BTreeMap<&str, &str> = basis
        .installed
        .components
        .iter()
        .map(|(c, i)| (c.as_str(), i.version.as_str()))
        .collect();
    let mut plans = Vec::new();
    for m in basis.modules {
        let mut installs = Vec::new();
        for c in &m.components {
            let Some(versions) = offered.get(c.as_str()) else {
                continue;
            };
            let Some(version) =
                basis
                    .selection
                    .choose(c, versions, current.get(c.as_str()).copied())
            else {
                continue;
            };
            let Some((_, offer)) = versions.get(version) else {
                continue;
            };
            if current.get(c.as_str()) == Some(&version) || basis.ledger.reload_failed(c, version) {
                continue;
            }
            if m.self_upgrade && !self_upgrade_allowed(basis, c, version) {
                continue;
            }
            if offer.windowed && !basis.in_window {
                deferred.push(format!("{c} {version}"));
                continue;
            }
            current.insert(c, version);
            installs.push(Install {
                component: c.clone(),
                version: version.to_string(),
                files: offer.files.clone(),
            });
        }
        if !installs.is_empty() {
            plans.push(ModulePlan {
                module: m,
                installs,
            });
        }
    }
    plans
}

/// The agent's own build never goes below the one installed, except back to the build it
/// replaced: a manager's pins or withheld versions cannot make it run an old, perhaps
/// vulnerable, build of itself.
fn self_upgrade_allowed(basis: &Basis<'_>, component: &str, version: &str) -> bool {
    let Some(now) = basis.installed.components.get(component) else {
        return true;
    };
    let (Ok(to), Ok(from)) = (version.parse::<Version>(), now.version.parse::<Version>()) else {
        return false;
    };
    to >= from || now.previous.as_deref() == Some(version)
}

/// Refusals of `p`'s invalid patch targets, then its patches oldest first.
fn product_plan<'a, T: Target>(
    p: &'a ProductConfig,
    content: &'a Content<T>,
    basis: &Basis<'a>,
    deferred: &mut Vec<String>,
) -> ProductPlan<'a, T> {
    let unknown = Err("no build configured".to_string());
    let build = basis.builds.get(&p.name).unwrap_or(&unknown);
    let mut steps = refusals(p, build, &content.invalid);
    let mut patches: Vec<&ContentTarget<T>> = content
        .usable
        .iter()
        .filter(|t| {
            t.info.kind == Kind::Patch
                && t.info.product.as_deref() == Some(p.name.as_str())
                && for_platform(&t.info, basis.platform)
                && t.info.version.parse::<Version>().is_ok_and(|v| {
                    basis
                        .selection
                        .allows(&t.info.component, &t.info.version, &v)
                })
        })
        .collect();
    patches.sort_by(|a, b| {
        let va = a.info.version.parse::<Version>().ok();
        let vb = b.info.version.parse::<Version>().ok();
        va.cmp(&vb)
    });
    let applied = basis
        .ledger
        .applied
        .get(&p.name)
        .cloned()
        .unwrap_or_default();
    if !basis.in_window {
        // Outside the window only urgent patches go on; the rest wait (not yet applied ones
        // are named).
        patches.retain(|t| {
            let waits = windowed(&t.info)
                && !t
                    .info
                    .patch_id
                    .as_ref()
                    .is_some_and(|id| applied.contains(id));
            if waits {
                deferred.push(format!(
                    "patch {}",
                    t.info.patch_id.as_deref().unwrap_or("?")
                ));
            }
            !waits
        });
    }
    steps.extend(patch_steps(build.clone(), &applied, &patches));
    ProductPlan {
        product: p,
        patches,
        steps,
    }
}

/// Every patch target for `p` whose `custom.updraft` fails validation or disagrees with its
/// path: refused.
fn refusals<'a, T>(
    p: &ProductConfig,
    build: &Result<String, String>,
    invalid: &'a [Invalid],
) -> Vec<PatchStep<'a, T>> {
    let mut steps = Vec::new();
    for t in invalid {
        let Some(info) = &t.info else {
            continue;
        };
        if info.kind == Kind::Patch && info.product.as_deref() == Some(p.name.as_str()) {
            steps.push(refusal(&t.path, info, build, t.why.clone()));
        }
    }
    steps
}

fn refusal<'a, T>(
    target: &'a str,
    info: &ContentInfo,
    build: &Result<String, String>,
    why: String,
) -> PatchStep<'a, T> {
    // The id as published, bounded: it is only reported, never used as a name.
    let id = info
        .patch_id
        .as_deref()
        .unwrap_or("?")
        .chars()
        .take(model::MAX_PATCH_ID_LEN.saturating_mul(2))
        .collect();
    PatchStep::Refuse {
        target,
        id,
        build: build.clone().unwrap_or_else(|_| "?".into()),
        to: info.build.clone().unwrap_or_else(|| "?".into()),
        why,
    }
}

/// The steps for `patches` (oldest first) from `build` with `applied` already applied: each
/// applicable patch is planned to apply, and the ones after it are judged on the build it
/// results in.
pub fn patch_steps<'a, T: Target>(
    mut build: Result<String, String>,
    applied: &BTreeSet<String>,
    patches: &[&'a ContentTarget<T>],
) -> Vec<PatchStep<'a, T>> {
    let mut applied = applied.clone();
    let mut steps = Vec::new();
    for &pt in patches {
        let info = &pt.info;
        let to = info.build.clone().unwrap_or_default();
        let id = match info.patch_id.as_deref().unwrap_or("").parse::<PatchId>() {
            Ok(id) => id,
            Err(e) => {
                steps.push(refusal(pt.target.path(), info, &build, e.to_string()));
                continue;
            }
        };
        if applied.contains(id.as_str()) {
            continue; // applied before: success, no change
        }
        let b = match &build {
            Ok(b) => b.clone(),
            Err(why) => {
                let why = why.clone();
                steps.push(PatchStep::UnknownBuild { id, to, why });
                continue;
            }
        };
        let requires = info.requires_build.clone().unwrap_or_default();
        if !applicable(&requires, &b) {
            steps.push(PatchStep::NotApplicable {
                id,
                build: b,
                to,
                requires,
            });
            continue;
        }
        applied.insert(id.to_string());
        build = Ok(to.clone());
        steps.push(PatchStep::Apply {
            id,
            build: b,
            to,
            target: pt,
        });
    }
    steps
}

fn applicable(requires: &str, build: &str) -> bool {
    match (requires.parse::<Requirement>(), build.parse::<Version>()) {
        (Ok(req), Ok(v)) => req.matches(&v),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
