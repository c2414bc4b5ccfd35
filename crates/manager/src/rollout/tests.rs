use super::*;
use model::protocol::ModuleReport;

fn at(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap()
}

fn rollout(waves: Vec<Wave>) -> Rollout {
    Rollout {
        id: 7,
        spec: RolloutSpec {
            component: "av.pattern".into(),
            version: "2.0".into(),
            waves,
            auto_rollback: true,
            silent_after: 60,
            follow_plan: false,
        },
        state: State::Running,
        wave: 0,
        wave_started: tuf::metadata::format_expires(at(0)),
        wave_times: vec![tuf::metadata::format_expires(at(0))],
        resumed: None,
        approved: 0,
        rolled_back: false,
        reason: String::new(),
        created: tuf::metadata::format_expires(at(0)),
    }
}

fn wave(groups: &[&str], share: u8, soak: u64) -> Wave {
    Wave {
        groups: groups.iter().map(|g| g.to_string()).collect(),
        share,
        soak,
        success: 100,
        max_failures: 1,
        max_failure_share: 0,
        approval: false,
    }
}

struct Host {
    id: String,
    group: String,
    components: BTreeMap<String, String>,
    builds: BTreeMap<String, String>,
    modules: Vec<ModuleReport>,
    last_seen: i64,
    took: Option<i64>,
    failed: Option<String>,
    skipped: bool,
}

fn host(id: &str, group: &str, version: &str, online: bool) -> Host {
    let components = BTreeMap::from([("av.pattern".to_string(), version.to_string())]);
    let modules = vec![ModuleReport {
        name: "scanner".into(),
        status: if online {
            ModuleState::Online
        } else {
            ModuleState::Offline
        },
        reason: None,
        components: BTreeMap::from([("av.pattern".to_string(), Some(version.to_string()))]),
    }];
    Host {
        id: id.into(),
        group: group.into(),
        components,
        builds: BTreeMap::new(),
        modules,
        last_seen: 100,
        took: (version == "2.0").then_some(50),
        failed: None,
        skipped: false,
    }
}

fn views(hosts: &[Host]) -> Vec<HostView<'_>> {
    hosts
        .iter()
        .map(|h| HostView {
            id: &h.id,
            hostname: &h.id,
            role: Role::Agent,
            group: &h.group,
            components: &h.components,
            builds: &h.builds,
            modules: &h.modules,
            last_seen: Some(at(h.last_seen)),
            took: h.took.map(at),
            failed: h.failed.as_deref(),
            skipped: h.skipped,
            held_by_group: false,
        })
        .collect()
}

#[test]
fn positions_are_stable_and_spread_waves_by_share() {
    let r = rollout(vec![wave(&[], 10, 0), wave(&[], 100, 0)]);
    assert_eq!(position(7, "host-1"), position(7, "host-1"));
    let first = (0..2000)
        .filter(|i| wave_of(&r, &format!("h{i}"), "g") == Some(0))
        .count();
    // 10 % of 2,000 is 200; a fair hash lands well within ±60.
    assert!((140..=260).contains(&first), "{first} hosts in a 10 % wave");
}

#[test]
fn a_canary_group_is_the_first_wave_and_others_wait_with_a_hold() {
    let mut r = rollout(vec![wave(&["canary"], 100, 0), wave(&[], 100, 0)]);
    assert_eq!(wave_of(&r, "c1", "canary"), Some(0));
    assert_eq!(wave_of(&r, "p1", "prod"), Some(1));
    assert_eq!(hold(&r, "c1", "canary"), Hold::None);
    assert_eq!(hold(&r, "p1", "prod"), Hold::Below("2.0"));
    r.state = State::Aborted;
    assert_eq!(
        hold(&r, "c1", "canary"),
        Hold::None,
        "an abort keeps released hosts"
    );
    assert_eq!(hold(&r, "p1", "prod"), Hold::Withheld("2.0"));
    r.state = State::Running;
    r.wave = 1;
    assert_eq!(hold(&r, "p1", "prod"), Hold::None);
    r.rolled_back = true;
    r.state = State::Halted;
    assert_eq!(
        hold(&r, "c1", "canary"),
        Hold::Withheld("2.0"),
        "a rollback withholds it from all"
    );
    r.state = State::Complete;
    assert_eq!(
        hold(&r, "c1", "canary"),
        Hold::None,
        "a complete rollout holds nobody"
    );
}

#[test]
fn a_wave_advances_after_its_soak_when_healthy_and_completes_after_the_last() {
    let r = rollout(vec![wave(&["canary"], 100, 30), wave(&[], 100, 0)]);
    let hosts = [
        host("c1", "canary", "2.0", true),
        host("p1", "prod", "1.0", true),
    ];
    let hv = views(&hosts);
    let (lines, waves) = progress(&r, &hv, at(10));
    assert_eq!(waves[0].healthy, 1);
    assert!(
        matches!(decide(&r, &lines, &waves, at(10)), Decision::Wait(w) if w.contains("soaking"))
    );
    assert!(matches!(
        decide(&r, &lines, &waves, at(31)),
        Decision::Advance(_)
    ));
    let mut last = r.clone();
    last.wave = 1;
    let (lines, waves) = progress(&last, &hv, at(40));
    assert!(
        matches!(decide(&last, &lines, &waves, at(40)), Decision::Wait(w) if w.contains("0 of 1 hosts healthy"))
    );
    let hosts = [
        host("c1", "canary", "2.0", true),
        host("p1", "prod", "2.0", true),
    ];
    let hv = views(&hosts);
    let (lines, waves) = progress(&last, &hv, at(40));
    assert!(matches!(
        decide(&last, &lines, &waves, at(40)),
        Decision::Complete(_)
    ));
}

#[test]
fn a_reported_failure_or_a_host_gone_silent_after_the_install_halts() {
    let r = rollout(vec![wave(&["canary"], 100, 30), wave(&[], 100, 0)]);
    let mut hosts = [
        host("c1", "canary", "1.0", false),
        host("p1", "prod", "1.0", true),
    ];
    hosts[0].failed = Some("reload failed: bad signature database".into());
    let hv = views(&hosts);
    let (lines, waves) = progress(&r, &hv, at(10));
    match decide(&r, &lines, &waves, at(10)) {
        Decision::Halt(why) => assert!(why.contains("c1: reload failed"), "{why}"),
        d => panic!("{d:?}"),
    }
    // Took the version, then no heartbeat for longer than silent_after (60 s): the crash case.
    let hosts = [host("c1", "canary", "2.0", true)];
    let hv = views(&hosts);
    let (lines, waves) = progress(&r, &hv, at(161));
    assert!(
        matches!(decide(&r, &lines, &waves, at(161)), Decision::Halt(w) if w.contains("silent"))
    );
    // A host of a wave not yet released is never judged.
    let mut later = [host("p1", "prod", "1.0", true)];
    later[0].failed = Some("reload failed".into());
    let hv = views(&later);
    let (lines, waves) = progress(&r, &hv, at(10));
    assert!(!matches!(
        decide(&r, &lines, &waves, at(10)),
        Decision::Halt(_)
    ));
}

#[test]
fn approval_holds_the_next_wave_until_given() {
    let mut next = wave(&[], 100, 0);
    next.approval = true;
    let mut r = rollout(vec![wave(&["canary"], 100, 0), next]);
    let hosts = [host("c1", "canary", "2.0", true)];
    let hv = views(&hosts);
    let (lines, waves) = progress(&r, &hv, at(5));
    assert!(
        matches!(decide(&r, &lines, &waves, at(5)), Decision::Wait(w) if w.contains("approval"))
    );
    r.approved = 2;
    assert!(matches!(
        decide(&r, &lines, &waves, at(5)),
        Decision::Advance(_)
    ));
}

#[test]
fn specs_are_validated() {
    let mut r = rollout(vec![wave(&["canary"], 100, 0)]);
    assert!(
        r.spec.validate().is_err(),
        "the last wave must reach everyone"
    );
    r.spec.waves = vec![wave(&[], 0, 0), wave(&[], 100, 0)];
    assert!(r.spec.validate().is_err(), "share 0");
    r.spec.waves = vec![wave(&[], 100, MAX_SECONDS + 1)];
    assert!(r.spec.validate().is_err(), "soak out of range");
    r.spec.waves = vec![wave(&[], 100, 0)];
    r.spec.version = "../2".into();
    assert!(r.spec.validate().is_err(), "version syntax");
    r.spec.version = "2.0".into();
    assert!(r.spec.validate().is_ok());
}

#[test]
fn a_wave_without_hosts_to_judge_waits_for_an_approval() {
    // A mistyped canary group: nobody is in wave 1.
    let mut r = rollout(vec![wave(&["canry"], 100, 0), wave(&[], 100, 0)]);
    let hosts = [host("p1", "prod", "1.0", true)];
    let hv = views(&hosts);
    let (lines, waves) = progress(&r, &hv, at(10));
    assert!(
        matches!(decide(&r, &lines, &waves, at(10)), Decision::Wait(w) if w.contains("no host to judge"))
    );
    r.approved = 2;
    assert!(matches!(
        decide(&r, &lines, &waves, at(10)),
        Decision::Advance(_)
    ));
}

#[test]
fn a_host_silent_before_its_release_is_absent_and_one_that_dies_after_it_fails() {
    let r = rollout(vec![wave(&["canary"], 100, 600), wave(&[], 100, 0)]);
    // Last seen before the release (at 0), never took the version: absent, not judged.
    let mut gone = [
        host("c1", "canary", "1.0", true),
        host("c2", "canary", "1.0", true),
    ];
    gone[0].last_seen = -500;
    // Seen after the release, then nothing: it died installing (no report of the version).
    gone[1].last_seen = 5;
    let hv = views(&gone);
    let (lines, waves) = progress(&r, &hv, at(100));
    assert_eq!(
        (waves[0].absent, waves[0].failed, waves[0].hosts),
        (1, 1, 1),
        "{lines:?}"
    );
    assert!(matches!(decide(&r, &lines, &waves, at(100)), Decision::Halt(w) if w.contains("c2")));
}

#[test]
fn versions_compare_by_number_not_spelling() {
    let mut r = rollout(vec![wave(&[], 100, 0)]);
    r.spec.version = "2.0.00".into();
    let hosts = [host("p1", "prod", "2.0", true)];
    let hv = views(&hosts);
    assert_eq!(health(&r, &hv[0], at(10)), Health::Healthy);
    assert!(same_version("18.600", "18.600.00"));
}

#[test]
fn first_wave_approval_and_shrinking_shares_are_refused() {
    let mut first = wave(&[], 100, 0);
    first.approval = true;
    let mut r = rollout(vec![first]);
    assert!(
        r.spec.validate().is_err(),
        "the first wave is released at once"
    );
    r.spec.waves = vec![wave(&[], 50, 0), wave(&[], 10, 0), wave(&[], 100, 0)];
    assert!(r.spec.validate().is_err(), "a later wave would be empty");
}

#[test]
fn a_patch_is_judged_by_its_reported_outcome_on_hosts_with_the_product() {
    let mut r = rollout(vec![wave(&[], 100, 0)]);
    r.spec.component = "scanner".into();
    let mut hosts = [
        host("p1", "prod", "1.0", true),
        host("p2", "prod", "1.0", true),
    ];
    for h in &mut hosts {
        h.components.clear();
        h.modules.clear();
        h.builds.insert("scanner".into(), "9.5.1514".into());
    }
    hosts[0].took = Some(5); // reported CP-1519 applied
    hosts[1].failed = Some("patch CP-1519 failed: restart failed".into());
    let hv = views(&hosts);
    assert!(eligible(&r, &hv[0]) && eligible(&r, &hv[1]));
    assert_eq!(health(&r, &hv[0], at(10)), Health::Healthy);
    assert!(
        matches!(health(&r, &hv[1], at(10)), Health::Failed(w) if w.contains("restart failed"))
    );
}

#[test]
fn hosts_a_version_does_not_apply_to_and_agents_that_do_not_upgrade_themselves_are_not_judged() {
    let mut r = rollout(vec![wave(&[], 100, 0)]);
    r.spec.component = "scanner".into();
    let mut hosts = [host("p1", "prod", "1.0", true)];
    hosts[0].components.clear();
    hosts[0].modules.clear();
    hosts[0].builds.insert("scanner".into(), "9.5.1200".into());
    hosts[0].builds.insert("updraft".into(), "0.1.0".into());
    hosts[0].skipped = true; // reported the patch not applicable
    let hv = views(&hosts);
    assert!(!eligible(&r, &hv[0]));
    r.spec.component = UPDRAFT.into();
    assert!(
        !eligible(&r, &hv[0]),
        "its build is reported, but it has no self_upgrade module"
    );
}

#[test]
fn a_relay_that_upgrades_itself_is_judged_also_after_its_first_build_died() {
    let mut r = rollout(vec![wave(&[], 100, 0)]);
    r.spec.component = UPDRAFT.into();
    let mut hosts = [host("r1", "relays", "1.0", true)];
    hosts[0].components.clear();
    hosts[0].modules.clear();
    hosts[0].builds.insert("updraft".into(), "0.1.0".into());
    fn relay(h: &Host) -> HostView<'_> {
        HostView {
            role: Role::Relay,
            ..views(std::slice::from_ref(h))[0].clone()
        }
    }
    assert!(
        !eligible(&r, &relay(&hosts[0])),
        "no self-upgrade: not judged"
    );
    // Its first build died and was put back: no component left, but the failure counts.
    hosts[0].failed = Some("the new build did not come back and report".into());
    assert!(eligible(&r, &relay(&hosts[0])));
    r.spec.component = "av.pattern".into();
    assert!(!eligible(&r, &relay(&hosts[0])), "relays take no content");
}
