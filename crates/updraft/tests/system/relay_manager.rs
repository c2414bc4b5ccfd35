//! A relay enrols with the manager, reports after every sync, and takes its upstreams and poll
//! interval from its group's policy: here the configured upstream is dead and the policy names
//! the origin, so the relay recovers through the manager alone.
use crate::common::*;
use serde_json::json;

#[test]
fn relay_reports_and_follows_the_policy_upstreams() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let origin = Server::start(&repo.dir);
    let db = format!("sqlite://{}", tmp.path().join("manager.db").display());
    let admin = ok(&["admin", "--db", &db, "token", "create"])
        .trim()
        .to_string();
    let mgr = Server::spawn(&["manager", "--db", &db, "--listen", "127.0.0.1:0"], &[]);
    let r = http()
        .put(format!("{}/api/v1/groups/core", mgr.base))
        .bearer_auth(&admin)
        .json(&json!({"role": "relay", "relays": [origin.base], "poll_interval": 1}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // The relay belongs to "site", whose parent group "core" lists the upstream to use.
    let r = http()
        .put(format!("{}/api/v1/groups/site", mgr.base))
        .bearer_auth(&admin)
        .json(&json!({"role": "relay", "parent": "core", "poll_interval": 1}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = enroll_token(&db, "site", None);
    let token_file = tmp.path().join("relay.token");
    std::fs::write(&token_file, token.trim()).unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let cache = tmp.path().join("cache");
    let relay = Server::spawn(
        &[
            "relay",
            "--upstream",
            &dead,
            "--trusted-root",
            repo.root_v1.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "1",
            "--manager",
            &mgr.base,
            "--enroll-token-file",
            token_file.to_str().unwrap(),
            "--hostname",
            "relay-core-1",
        ],
        &[],
    );
    let st = wait_status(&relay.base, "sync through the policy's upstream", |v| {
        v["upstream_in_use"] == origin.base.as_str()
    });
    assert!(st["view"]["id"].as_u64().is_some());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cache.join("manager.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    // The manager knows the relay, its build and what it applied.
    let h = eventually("the manager to see the relay's upstream", || {
        let v: serde_json::Value = serde_json::from_slice(
            &http()
                .get(format!("{}/api/v1/hosts?role=relay", mgr.base))
                .bearer_auth(&admin)
                .send()
                .unwrap()
                .bytes()
                .unwrap(),
        )
        .unwrap();
        let h = &v["hosts"][0];
        if h["upstream"] == origin.base.as_str() {
            Ok(h.clone())
        } else {
            Err(format!("{v:#}"))
        }
    });
    assert_eq!(h["hostname"], "relay-core-1");
    assert_eq!(h["builds"]["updraft"], env!("CARGO_PKG_VERSION"));
    assert_eq!(h["applied_policy"]["relays"][0], origin.base.as_str());
}
