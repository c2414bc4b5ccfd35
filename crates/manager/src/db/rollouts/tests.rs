use super::*;
use crate::rollout::{Decision, Wave};
use model::protocol::Role;

fn spec() -> RolloutSpec {
    let wave = |share| Wave {
        groups: Vec::new(),
        share,
        soak: 0,
        success: 100,
        max_failures: 1,
        max_failure_share: 0,
        approval: false,
    };
    RolloutSpec {
        component: "av.pattern".into(),
        version: "2.0".into(),
        waves: vec![wave(10), wave(100)],
        auto_rollback: true,
        silent_after: 60,
        follow_plan: false,
    }
}

#[test]
fn an_abort_made_while_the_gates_decided_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
    let stale = db.create_rollout(&spec(), "test").unwrap();
    db.rollout_action(stale.id, Action::Abort, "admin a")
        .unwrap();
    // The gates decided on the rollout as they read it before the abort.
    let made = db
        .apply_decision(&stale, &Decision::Advance("wave 1 healthy".into()))
        .unwrap();
    assert!(!made);
    let now = db.rollout(stale.id).unwrap().unwrap();
    assert_eq!((now.state, now.wave), (State::Aborted, 0));
    // And an administrator acting on a stale view is told so.
    assert!(db
        .rollout_action(stale.id, Action::Pause, "admin a")
        .is_err());
}

#[test]
fn no_rollout_makes_a_host_newer_than_its_manager() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
    let mut s = spec();
    s.component = UPDRAFT.into();
    s.version = "999.0.0".into();
    let e = db.create_rollout(&s, "test").unwrap_err().to_string();
    assert!(e.contains("upgrade the manager first"), "{e}");
    s.version = env!("CARGO_PKG_VERSION").into();
    assert!(db.create_rollout(&s, "test").is_ok());
}

#[test]
fn a_withheld_version_or_an_unknown_group_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
    let r = db.create_rollout(&spec(), "test").unwrap();
    db.rollout_action(r.id, Action::AbortAndRollBack, "admin a")
        .unwrap();
    let e = db.create_rollout(&spec(), "test").unwrap_err().to_string();
    assert!(e.contains("withheld"), "{e}");
    let mut s = spec();
    s.version = "2.1".into();
    s.waves[0].groups = vec!["canry".into()];
    let e = db.create_rollout(&s, "test").unwrap_err().to_string();
    assert!(e.contains("no group"), "{e}");
}

#[test]
fn a_rollout_of_updraft_that_follows_the_plan_releases_relay_levels_then_agents() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
    let group = |name: &str, role, parent: Option<&str>| crate::db::Group {
        name: name.into(),
        role,
        parent: parent.map(str::to_string),
        poll_interval: 60,
        ..Default::default()
    };
    for g in [
        group("core", Role::Relay, None),
        group("edge", Role::Relay, Some("core")),
        group("branch", Role::Relay, Some("core")),
        group("canary", Role::Agent, None),
        group("fleet", Role::Agent, None),
    ] {
        db.put_group(&g, "test").unwrap();
    }
    // The tree the plan follows keeps its shape: a parent stays a relay group.
    let e = db
        .put_group(&group("core", Role::Agent, None), "test")
        .unwrap_err()
        .to_string();
    assert!(e.contains("parent of"), "{e}");
    let mut s = spec();
    s.follow_plan = true;
    s.waves[0].soak = 600;
    s.waves[0].groups = vec!["canary".into()];
    s.waves[0].share = 100;
    let e = db.create_rollout(&s, "test").unwrap_err().to_string();
    assert!(e.contains("follow_plan"), "{e}");
    s.component = UPDRAFT.into();
    s.version = env!("CARGO_PKG_VERSION").into();
    let r = db.create_rollout(&s, "test").unwrap();
    let waves: Vec<(Vec<&str>, u8, u64)> = r
        .spec
        .waves
        .iter()
        .map(|w| {
            (
                w.groups.iter().map(String::as_str).collect(),
                w.share,
                w.soak,
            )
        })
        .collect();
    assert_eq!(
        waves,
        vec![
            (vec!["core"], 100, 600),
            (vec!["branch", "edge"], 100, 600),
            (vec!["canary"], 100, 600),
            (vec![], 100, 0),
        ]
    );
}

#[test]
fn a_revoked_host_is_not_judged_so_revoking_a_stolen_one_halts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
    db.put_group(
        &crate::db::Group {
            name: "fleet".into(),
            role: Role::Agent,
            poll_interval: 60,
            ..Default::default()
        },
        "test",
    )
    .unwrap();
    let mut s = spec();
    s.waves = vec![Wave {
        share: 100,
        ..s.waves[1].clone()
    }];
    let r = db.create_rollout(&s, "test").unwrap();
    let token = db.create_enroll_token("fleet", None, None).unwrap();
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        let e = db.enroll(&token, name, Role::Agent).unwrap().unwrap();
        let hb: model::protocol::Heartbeat = serde_json::from_value(serde_json::json!({
            "hostname": name, "role": "agent", "components": {"av.pattern": "2.0"},
            "modules": [{"name": "av", "status": "online", "components": {"av.pattern": "2.0"}}]
        }))
        .unwrap();
        let active = db.active_rollouts().unwrap();
        db.heartbeat(&e.host_id, &hb, &active).unwrap();
        ids.push(e.host_id);
    }
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(
        db.rollout_status(r.id, now).unwrap().unwrap().hosts_total,
        2
    );
    db.revoke_host(&ids[1], "test").unwrap();
    // Silent for ever after: not a failure of the version, and not waited for.
    let later = now + time::Duration::hours(2);
    let st = db.rollout_status(r.id, later).unwrap().unwrap();
    assert_eq!(st.hosts_total, 1, "{st:?}");
    // A heartbeat that authenticated before the revocation records nothing.
    let hb: model::protocol::Heartbeat = serde_json::from_value(serde_json::json!({
        "hostname": "b", "role": "agent", "last_result": "after revoke"
    }))
    .unwrap();
    assert!(db.heartbeat(&ids[1], &hb, &[]).is_err());
    assert_ne!(
        db.host(&ids[1]).unwrap().unwrap().last_result.as_deref(),
        Some("after revoke")
    );
}
