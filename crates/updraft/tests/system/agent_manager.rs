//! An agent enrols with the manager using a one-time token (its credential stored 0600), reports
//! after every cycle (versions, module status, hotfix history), and applies the group's policy
//! from the reply at once: relay list, pinned versions; the manager shows what it applied.
use crate::common::*;
use serde_json::json;

#[test]
fn agent_enrols_reports_and_applies_policy() {
    let bed = AgentBed::new();
    let db = format!("sqlite://{}", bed.path("manager.db").display());
    let admin = ok(&["admin", "--db", &db, "token", "create"])
        .trim()
        .to_string();
    ok(&["admin", "--db", &db, "group", "put", "branch"]);
    let token = enroll_token(&db, "branch", Some(1));
    std::fs::write(bed.path("enroll.token"), token.trim()).unwrap();
    let mgr = Server::spawn(&["manager", "--db", &db, "--listen", "127.0.0.1:0"], &[]);
    let mut o = bed.opts();
    o.restart = Some("true".into());
    o.manager = Some((
        mgr.base.clone(),
        bed.path("enroll.token"),
        "branch-pc-1".into(),
    ));
    let cfg = bed.config(&o);
    bed.publish_patch(
        "CP-1519",
        "9.5.1519",
        ">=9.5.1514",
        "9.5.1519",
        "cp.tar",
        &[("bin/scanner", b"new")],
    );

    let r = bed.once(&cfg).unwrap();
    assert!(r["manager_error"].is_null(), "{r:#}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(bed.path("state/manager.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "the host credential is private");
    }
    let get = |p: &str| -> serde_json::Value {
        serde_json::from_slice(
            &http()
                .get(format!("{}{p}", mgr.base))
                .bearer_auth(&admin)
                .send()
                .unwrap()
                .bytes()
                .unwrap(),
        )
        .unwrap()
    };
    let hosts = get("/api/v1/hosts");
    assert_eq!(hosts["count"], 1);
    let h = &hosts["hosts"][0];
    assert_eq!(h["hostname"], "branch-pc-1");
    assert_eq!(h["components"]["antimalware.pattern"], "18.523.00");
    assert_eq!(h["builds"]["scanner"], "9.5.1519");
    assert_eq!(h["modules"][0]["status"], "online");
    let id = h["id"].as_str().unwrap().to_string();
    let detail = get(&format!("/api/v1/hosts/{id}"));
    assert_eq!(detail["hotfix_history"][0]["patch_id"], "CP-1519");
    let cov = get("/api/v1/patches/CP-1519/coverage?product=scanner&requires_build=%3E%3D9.5.1514");
    assert_eq!(cov["counts"]["have"], 1);
    // History is sent once: another cycle adds nothing at the manager.
    bed.once(&cfg).unwrap();
    assert_eq!(
        get(&format!("/api/v1/hosts/{id}"))["hotfix_history"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Policy: use a relay, pin an older pattern. Applied in the next cycle, reported back.
    let cache = bed.path("relay-cache");
    bed.repo.add(
        "antimalware.pattern",
        "18.600.00",
        "pattern",
        b"pattern 18.600.00",
    );
    bed.repo.publish();
    relay_once(&[&bed.origin.base], &bed.repo.root_v1, &cache).unwrap();
    let relay = relay_offline(&bed.repo.root_v1, &cache);
    let r = http()
        .put(format!("{}/api/v1/groups/branch", mgr.base))
        .bearer_auth(&admin)
        .json(&json!({"role": "agent", "relays": [relay.base], "poll_interval": 60, "pinned": {"antimalware.pattern": "18.523.00"}}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = bed.once(&cfg).unwrap();
    assert_eq!(
        r["source"],
        relay.base.as_str(),
        "the policy's relay list is used at once: {r:#}"
    );
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.523.00",
        "pinned version kept: {r:#} {}",
        std::fs::read_to_string(bed.path("state/policy.json")).unwrap_or_default()
    );
    let h = get(&format!("/api/v1/hosts/{id}"));
    assert_eq!(
        h["host"]["applied_policy"]["relays"][0],
        relay.base.as_str()
    );
    assert_eq!(h["host"]["upstream"], relay.base.as_str());
    // Unpinned: the newest version arrives.
    http()
        .put(format!("{}/api/v1/groups/branch", mgr.base))
        .bearer_auth(&admin)
        .json(&json!({"role": "agent", "relays": [relay.base], "poll_interval": 60}))
        .send()
        .unwrap();
    bed.once(&cfg).unwrap();
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.600.00"
    );
}

#[test]
fn an_unreachable_manager_never_stops_updates() {
    let bed = AgentBed::new();
    let dead = format!("http://127.0.0.1:{}", free_port());
    std::fs::write(bed.path("enroll.token"), "upd_enroll_x").unwrap();
    let mut o = bed.opts();
    o.manager = Some((dead.clone(), bed.path("enroll.token"), "lonely".into()));
    let cfg = bed.config(&o);
    let r = bed.once(&cfg).unwrap();
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.523.00"
    );
    let err = r["manager_error"].as_str().unwrap();
    assert!(err.contains(&dead), "{err}");
    assert!(
        !bed.path("state/manager.json").exists(),
        "no identity without a successful enrolment"
    );
}
