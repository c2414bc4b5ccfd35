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
    /// component → version pinned by the manager's policy (wins over the newest).
    pub pinned: &'a BTreeMap<String, String>,
    pub installed: &'a Installed,
    pub ledger: &'a Ledger,
    /// product → its build now, or why it cannot be determined.
    pub builds: &'a BTreeMap<String, Result<String, String>>,
}

/// Everything a cycle does, in order: modules first, then each product's patches.
#[derive(Debug)]
pub struct Plan<'a, T = TargetInfo> {
    pub modules: Vec<ModulePlan<'a, T>>,
    pub products: Vec<ProductPlan<'a, T>>,
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
    Plan {
        modules: module_plans(content, basis),
        products: basis
            .products
            .iter()
            .map(|p| product_plan(p, content, basis))
            .collect(),
    }
}

/// component → version text → (version, files): what the repository offers this platform.
type Offered<'a, T> = HashMap<&'a str, BTreeMap<&'a str, (Version, Vec<&'a T>)>>;

fn offered<'a, T>(content: &'a Content<T>, platform: &str) -> Offered<'a, T> {
    let mut by_component: Offered<'a, T> = HashMap::new();
    for ContentTarget { info, target } in &content.usable {
        if info.kind == Kind::Patch || !for_platform(info, platform) {
            continue;
        }
        let Ok(v) = info.version.parse::<Version>() else {
            continue;
        };
        by_component
            .entry(info.component.as_str())
            .or_default()
            .entry(info.version.as_str())
            .or_insert_with(|| (v, Vec::new()))
            .1
            .push(target);
    }
    by_component
}

fn for_platform(info: &ContentInfo, platform: &str) -> bool {
    info.platforms.is_empty() || info.platforms.iter().any(|p| p == platform)
}

/// For each module, the newest version (or the pinned one) of each of its components that is
/// not installed and did not fail its reload. A component two modules use is installed once,
/// by the first.
fn module_plans<'a, T>(content: &'a Content<T>, basis: &Basis<'a>) -> Vec<ModulePlan<'a, T>> {
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
            let chosen = match basis.pinned.get(c) {
                Some(v) => versions.get_key_value(v.as_str()),
                None => versions.iter().max_by(|a, b| a.1 .0.cmp(&b.1 .0)),
            };
            let Some((&version, (_, files))) = chosen else {
                continue;
            };
            if current.get(c.as_str()) == Some(&version) || basis.ledger.reload_failed(c, version) {
                continue;
            }
            current.insert(c, version);
            installs.push(Install {
                component: c.clone(),
                version: version.to_string(),
                files: files.clone(),
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

/// Refusals of `p`'s invalid patch targets, then its patches oldest first.
fn product_plan<'a, T: Target>(
    p: &'a ProductConfig,
    content: &'a Content<T>,
    basis: &Basis<'a>,
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
mod tests {
    use super::*;
    use crate::state::InstalledComponent;

    /// A target known by its path only: the planner needs nothing else.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Fake(String);

    impl Target for Fake {
        fn path(&self) -> &str {
            &self.0
        }
    }

    fn info(kind: Kind, component: &str, version: &str) -> ContentInfo {
        ContentInfo {
            kind,
            component: component.into(),
            version: version.into(),
            product: None,
            requires_build: None,
            build: None,
            patch_id: None,
            platforms: Vec::new(),
        }
    }

    fn content(c: &str, v: &str) -> ContentTarget<Fake> {
        ContentTarget {
            info: info(Kind::Pattern, c, v),
            target: Fake(format!("content/{c}/{v}/{c}.dat")),
        }
    }

    fn patch(id: &str, requires: &str, to: &str) -> ContentTarget<Fake> {
        let mut i = info(Kind::Patch, "scanner", to);
        i.product = Some("scanner".into());
        i.requires_build = Some(requires.into());
        i.build = Some(to.into());
        i.patch_id = Some(id.into());
        ContentTarget {
            info: i,
            target: Fake(format!("content/scanner/{to}/{id}.tar")),
        }
    }

    fn modules(toml_text: &str) -> Vec<ModuleConfig> {
        #[derive(serde::Deserialize)]
        struct M {
            module: Vec<ModuleConfig>,
        }
        toml::from_str::<M>(toml_text).unwrap().module
    }

    fn scanner() -> Vec<ProductConfig> {
        vec![
            toml::from_str("name = \"scanner\"\nbuild = \"9.5.1514\"\ninstall_dir = \"/opt\"")
                .unwrap(),
        ]
    }

    const AV: &str =
        "[[module]]\nname = \"av\"\ncomponents = [\"a.pattern\"]\ninstall_dir = \"/av\"";

    /// Everything the planner reads besides the content, with defaults to change.
    struct Host {
        modules: Vec<ModuleConfig>,
        products: Vec<ProductConfig>,
        pinned: BTreeMap<String, String>,
        installed: Installed,
        ledger: Ledger,
        builds: BTreeMap<String, Result<String, String>>,
    }

    impl Host {
        fn new() -> Host {
            Host {
                modules: modules(AV),
                products: scanner(),
                pinned: BTreeMap::new(),
                installed: Installed::default(),
                ledger: Ledger::default(),
                builds: BTreeMap::from([("scanner".into(), Ok("9.5.1514".into()))]),
            }
        }

        fn plan<'a>(&'a self, content: &'a Content<Fake>) -> Plan<'a, Fake> {
            plan(
                content,
                &Basis {
                    modules: &self.modules,
                    products: &self.products,
                    platform: "linux-x86_64",
                    pinned: &self.pinned,
                    installed: &self.installed,
                    ledger: &self.ledger,
                    builds: &self.builds,
                },
            )
        }
    }

    /// (module, component, version) of every planned install.
    fn installs(p: &Plan<'_, Fake>) -> Vec<(String, String, String)> {
        p.modules
            .iter()
            .flat_map(|m| {
                m.installs.iter().map(|i| {
                    (
                        m.module.name.clone(),
                        i.component.clone(),
                        i.version.clone(),
                    )
                })
            })
            .collect()
    }

    fn av(v: &str) -> Vec<(String, String, String)> {
        vec![("av".into(), "a.pattern".into(), v.into())]
    }

    fn of(usable: Vec<ContentTarget<Fake>>) -> Content<Fake> {
        Content {
            usable,
            ..Content::default()
        }
    }

    #[test]
    fn the_newest_version_for_this_platform_is_installed_unless_one_is_pinned() {
        let mut other_platform = content("a.pattern", "18.700.00");
        other_platform.info.platforms = vec!["windows-x86_64".into()];
        let c = of(vec![
            content("a.pattern", "18.9.00"),
            content("a.pattern", "18.600.00"),
            content("a.pattern", "18.523.00"),
            other_platform,
            content("b.rules", "1.0"),
        ]);
        let mut host = Host::new();
        // Numeric order, not text order; another platform's newer build is not a candidate.
        assert_eq!(installs(&host.plan(&c)), av("18.600.00"));
        host.pinned.insert("a.pattern".into(), "18.523.00".into());
        assert_eq!(installs(&host.plan(&c)), av("18.523.00"));
        // A pin to a version the repository does not offer installs nothing.
        host.pinned.insert("a.pattern".into(), "1.0".into());
        assert_eq!(installs(&host.plan(&c)), []);
    }

    #[test]
    fn an_installed_version_or_one_whose_reload_failed_is_not_planned() {
        let c = of(vec![content("a.pattern", "18.600.00")]);
        let mut host = Host::new();
        host.installed.components.insert(
            "a.pattern".into(),
            InstalledComponent {
                module: "av".into(),
                version: "18.600.00".into(),
                ..InstalledComponent::default()
            },
        );
        assert_eq!(installs(&host.plan(&c)), []);
        host.installed.components.clear();
        host.ledger
            .set_reload_failed("a.pattern", "18.600.00", "exit 1".into());
        assert_eq!(installs(&host.plan(&c)), []);
    }

    #[test]
    fn a_component_two_modules_use_is_installed_once_by_the_first() {
        let c = of(vec![content("a.pattern", "18.600.00")]);
        let mut host = Host::new();
        host.modules = modules(&format!(
            "{AV}\n[[module]]\nname = \"second\"\ncomponents = [\"a.pattern\"]\ninstall_dir = \"/b\""
        ));
        assert_eq!(installs(&host.plan(&c)), av("18.600.00"));
    }

    /// The kind and id of each step of the one product.
    fn steps(p: &Plan<'_, Fake>) -> Vec<(&'static str, String)> {
        p.products[0]
            .steps
            .iter()
            .map(|s| match s {
                PatchStep::Refuse { id, .. } => ("refuse", id.clone()),
                PatchStep::UnknownBuild { id, .. } => ("unknown build", id.to_string()),
                PatchStep::NotApplicable { id, .. } => ("not applicable", id.to_string()),
                PatchStep::Apply { id, build, .. } => ("apply", format!("{id} on {build}")),
            })
            .collect()
    }

    #[test]
    fn patches_apply_oldest_first_each_judged_on_the_build_the_one_before_results_in() {
        let c = of(vec![
            patch("CP-1520", ">=9.5.1519", "9.5.1520"),
            patch("CP-1519", ">=9.5.1514", "9.5.1519"),
            patch("CP-OLD", "<9.5.1514", "9.5.1513"),
        ]);
        let mut host = Host::new();
        assert_eq!(
            steps(&host.plan(&c)),
            [
                ("not applicable", "CP-OLD".to_string()),
                ("apply", "CP-1519 on 9.5.1514".into()),
                ("apply", "CP-1520 on 9.5.1519".into()),
            ]
        );
        // Applied before: no step (success, no change); the next one is judged on the build.
        host.ledger
            .applied
            .insert("scanner".into(), BTreeSet::from(["CP-1519".to_string()]));
        host.builds.insert("scanner".into(), Ok("9.5.1519".into()));
        assert_eq!(
            steps(&host.plan(&c))[1..],
            [("apply", "CP-1520 on 9.5.1519".to_string())]
        );
    }

    #[test]
    fn planned_again_from_the_real_build_a_dependent_patch_is_not_applicable() {
        // What the executor does when CP-1519 did not apply: plan what follows from 9.5.1514.
        let later = patch("CP-1520", ">=9.5.1519", "9.5.1520");
        let steps = patch_steps(Ok("9.5.1514".into()), &BTreeSet::new(), &[&later]);
        assert!(matches!(
            &steps[..],
            [PatchStep::NotApplicable { build, requires, .. }] if build == "9.5.1514" && requires == ">=9.5.1519"
        ));
    }

    #[test]
    fn invalid_targets_are_refused_first_and_an_unknown_build_fails_each_patch() {
        let mut bad = info(Kind::Patch, "scanner", "9.5.1519");
        bad.product = Some("scanner".into());
        bad.patch_id = Some("../../etc".into());
        let mut c = of(vec![patch("CP-1519", ">=9.5.1514", "9.5.1519")]);
        c.invalid.push(Invalid {
            path: "content/scanner/9.5.1519/x.tar".into(),
            info: Some(bad),
            why: "patch id is a path".into(),
        });
        // Another product's invalid patch is not this product's business.
        let mut other = info(Kind::Patch, "viewer", "1.0");
        other.product = Some("viewer".into());
        c.invalid.push(Invalid {
            path: "content/viewer/1.0/x.tar".into(),
            info: Some(other),
            why: "whatever".into(),
        });
        let mut host = Host::new();
        host.builds
            .insert("scanner".into(), Err("`scanner --version` exited 1".into()));
        assert_eq!(
            steps(&host.plan(&c)),
            [
                ("refuse", "../../etc".to_string()),
                ("unknown build", "CP-1519".into())
            ]
        );
    }
}
