//! The planner on its own: no I/O, targets known by their path.

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
        urgent: false,
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
        toml::from_str("name = \"scanner\"\nbuild = \"9.5.1514\"\ninstall_dir = \"/opt\"").unwrap(),
    ]
}

const AV: &str = "[[module]]\nname = \"av\"\ncomponents = [\"a.pattern\"]\ninstall_dir = \"/av\"";

/// Everything the planner reads besides the content, with defaults to change.
struct Host {
    modules: Vec<ModuleConfig>,
    products: Vec<ProductConfig>,
    selection: Selection,
    in_window: bool,
    installed: Installed,
    ledger: Ledger,
    builds: BTreeMap<String, Result<String, String>>,
}

impl Host {
    fn new() -> Host {
        Host {
            modules: modules(AV),
            products: scanner(),
            selection: Selection::default(),
            in_window: true,
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
                selection: &self.selection,
                in_window: self.in_window,
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
    host.selection
        .pinned
        .insert("a.pattern".into(), "18.523.00".into());
    assert_eq!(installs(&host.plan(&c)), av("18.523.00"));
    // A pin to a version the repository does not offer installs nothing.
    host.selection
        .pinned
        .insert("a.pattern".into(), "1.0".into());
    assert_eq!(installs(&host.plan(&c)), []);
}

#[test]
fn channels_holds_and_withheld_versions_choose_among_the_signed_ones() {
    let c = of(vec![
        content("a.pattern", "1.0"),
        content("a.pattern", "1.1"),
        content("a.pattern", "2.0"),
    ]);
    let mut host = Host::new();
    host.selection.channel = model::protocol::Channel::Previous;
    assert_eq!(
        installs(&host.plan(&c)),
        av("1.1"),
        "n-1: the newest but one"
    );
    host.selection.channel = model::protocol::Channel::Latest;
    host.selection
        .holds
        .insert("a.pattern".into(), "2.0".into());
    assert_eq!(installs(&host.plan(&c)), av("1.1"), "held below 2.0");
    host.selection.holds.clear();
    host.selection
        .withheld
        .insert("a.pattern".into(), vec!["2.0".into()]);
    assert_eq!(installs(&host.plan(&c)), av("1.1"), "2.0 withheld");
    host.selection.channel = model::protocol::Channel::Previous;
    // n-1 of every signed version: rolling back the newest does not move n-1 hosts further.
    assert_eq!(installs(&host.plan(&c)), av("1.1"), "n-1 with 2.0 withheld");
    // A pin wins over all of it; a hold below every version installs nothing.
    host.selection
        .pinned
        .insert("a.pattern".into(), "2.0".into());
    assert_eq!(installs(&host.plan(&c)), av("2.0"));
    host.selection = Selection::default();
    host.selection
        .holds
        .insert("a.pattern".into(), "0.5".into());
    assert_eq!(installs(&host.plan(&c)), []);
    // A hold that is not a version holds everything back (fail closed).
    host.selection
        .holds
        .insert("a.pattern".into(), "not a version".into());
    assert_eq!(installs(&host.plan(&c)), []);
}

#[test]
fn a_hold_never_downgrades_a_host_but_a_withheld_version_does() {
    let c = of(vec![
        content("a.pattern", "1.1"),
        content("a.pattern", "2.0"),
    ]);
    let mut host = Host::new();
    host.installed.components.insert(
        "a.pattern".into(),
        InstalledComponent {
            module: "av".into(),
            version: "2.0".into(),
            ..InstalledComponent::default()
        },
    );
    host.selection
        .holds
        .insert("a.pattern".into(), "2.0".into());
    assert_eq!(installs(&host.plan(&c)), [], "held back, not rolled back");
    host.selection
        .withheld
        .insert("a.pattern".into(), vec!["2.0.0".into()]);
    assert_eq!(
        installs(&host.plan(&c)),
        av("1.1"),
        "withheld (any spelling): rolled back"
    );
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

#[test]
fn outside_the_window_engines_and_patches_wait_unless_urgent_patterns_never_do() {
    let mut engine = content("a.engine", "2.0");
    engine.info.kind = Kind::Engine;
    let mut urgent = content("b.engine", "3.0");
    urgent.info.kind = Kind::Engine;
    urgent.info.urgent = true;
    let c = of(vec![
        content("a.pattern", "1.0"),
        engine,
        urgent,
        patch("CP-1519", ">=9.5.1514", "9.5.1519"),
    ]);
    let mut host = Host::new();
    host.modules = modules(
        "[[module]]\nname = \"av\"\ncomponents = [\"a.pattern\", \"a.engine\", \"b.engine\"]\ninstall_dir = \"/av\"",
    );
    host.in_window = false;
    let p = host.plan(&c);
    let got: Vec<String> = installs(&p)
        .into_iter()
        .map(|(_, c, v)| format!("{c} {v}"))
        .collect();
    assert_eq!(got, ["a.pattern 1.0", "b.engine 3.0"]);
    assert_eq!(p.deferred, ["a.engine 2.0", "patch CP-1519"]);
    assert!(steps(&p).is_empty(), "{:?}", steps(&p));
    host.in_window = true;
    let p = host.plan(&c);
    assert_eq!(installs(&p).len(), 3);
    assert!(p.deferred.is_empty());
}

#[test]
fn the_window_is_judged_in_its_offset_from_utc() {
    let mut s = Selection::default();
    // 2026-12-05 is a Saturday; 23:30 UTC is 00:30 on Sunday at +01:00.
    let t = time::macros::datetime!(2026-12-05 23:30 UTC);
    assert!(s.window_open(t), "no window: always open");
    s.maintenance = Some(model::protocol::MaintenanceWindow {
        days: vec!["sun".into()],
        start: "00:00".into(),
        end: "01:00".into(),
        utc_offset: "+01:00".into(),
        time_zone: None,
    });
    assert!(s.window_open(t));
    assert!(!s.window_open(t - time::Duration::hours(1)));
    s.maintenance.as_mut().unwrap().utc_offset = "bad".into();
    assert!(!s.window_open(t), "an invalid window never opens");
}

#[test]
fn the_agents_own_build_never_goes_below_the_one_installed_but_to_the_one_it_replaced() {
    let c = of(vec![
        content("updraft", "1.0"),
        content("updraft", "2.0"),
        content("updraft", "3.0"),
    ]);
    let mut host = Host::new();
    host.modules = modules("[[module]]\nname = \"self\"\ncomponents = [\"updraft\"]\ninstall_dir = \"/bin\"\nself_upgrade = true");
    host.installed.components.insert(
        "updraft".into(),
        InstalledComponent {
            module: "self".into(),
            version: "3.0".into(),
            previous: Some("2.0".into()),
            ..InstalledComponent::default()
        },
    );
    let own = |v: &str| vec![("self".to_string(), "updraft".to_string(), v.to_string())];
    host.selection.pinned.insert("updraft".into(), "1.0".into());
    assert_eq!(
        installs(&host.plan(&c)),
        [],
        "a pin cannot take it to an old build"
    );
    host.selection.pinned.clear();
    host.selection
        .withheld
        .insert("updraft".into(), vec!["3.0".into()]);
    assert_eq!(
        installs(&host.plan(&c)),
        own("2.0"),
        "back to the build it replaced"
    );
    host.selection
        .withheld
        .insert("updraft".into(), vec!["3.0".into(), "2.0".into()]);
    assert_eq!(installs(&host.plan(&c)), [], "but no further");
}
