//! A fleet of two dozen real agents behind a real relay: a bad version halts at the canary and
//! no host outside it ever installs it; a good one then completes every wave.
use std::path::PathBuf;

use serde_json::{json, Value};

use super::*;

/// One cycle of every agent of `agents` at once (each a real `updraft agent --once`).
fn cycle_all(f: &Fleet, agents: &[(String, PathBuf)]) {
    let bed = &f.bed;
    std::thread::scope(|s| {
        for (name, cfg) in agents {
            s.spawn(move || {
                let r = bed.once(cfg).unwrap();
                assert!(r["manager_error"].is_null(), "{name}: {r:#}");
            });
        }
    });
}

/// Wait until the relay serves the newest publication (its timestamp version).
fn relay_serves(f: &Fleet, relay: &str) {
    let want: Value = serde_json::from_slice(
        &std::fs::read(f.bed.repo.dir.join("metadata/timestamp.json")).unwrap(),
    )
    .unwrap();
    let version = want["signed"]["version"].clone();
    eventually("the relay serves the new publication", || {
        let v: Value = http()
            .get(format!("{relay}/metadata/timestamp.json"))
            .send()
            .and_then(|r| r.json())
            .map_err(|e| e.to_string())?;
        match v["signed"]["version"] == version {
            true => Ok(()),
            false => Err(format!("{v}")),
        }
    });
}

#[test]
fn in_a_fleet_of_two_dozen_behind_a_relay_a_bad_version_stays_in_the_canary_and_a_good_one_reaches_all(
) {
    let f = Fleet::new();
    good_base(&f);
    let relay = f.start_relay();
    relay_serves(&f, &relay);
    let agents: Vec<(String, PathBuf)> = (0..24)
        .map(|i| {
            let (name, group) = match i {
                0 | 1 => (format!("canary-{i}"), "canary"),
                _ => (format!("prod-{i:02}"), "fleet"),
            };
            let cfg = f.agent(&name, group);
            (name, cfg)
        })
        .collect();
    cycle_all(&f, &agents);
    let waves = json!([{"groups": ["canary"], "share": 100, "soak": 0},
                       {"share": 100, "soak": 0}]);
    let bad = f.rollout(waves.clone(), 900);
    cycle_all(&f, &agents); // every host holds the version now
    f.publish_new(b"broken 18.600.00");
    relay_serves(&f, &relay);
    cycle_all(&f, &agents[..2]); // the canary tries it; its reload refuses it
    let halted = f.until(bad, "halted");
    assert_eq!(halted["waves"][0]["failed"], 2, "{halted:#}");
    cycle_all(&f, &agents);
    cycle_all(&f, &agents);
    for (name, _) in &agents {
        assert_eq!(f.pattern(name), "good 18.524.00", "{name}");
        let took = f.bed.path(&format!("{name}/state/versions/{C}/{NEW}"));
        if !name.starts_with("canary") {
            assert!(!took.exists(), "{name} downloaded the version held from it");
        }
    }

    // The publisher fixes it under a new version; its rollout completes every wave.
    let good = "18.601.00";
    let body = json!({"component": C, "version": good, "waves": waves, "silent_after": 900});
    let id = f.api("POST", "/api/v1/rollouts", Some(body))["id"]
        .as_i64()
        .unwrap();
    cycle_all(&f, &agents);
    f.bed.repo.add(C, good, "pattern", b"good 18.601.00");
    f.bed.repo.publish();
    relay_serves(&f, &relay);
    cycle_all(&f, &agents[..2]);
    eventually("wave 2 released", || {
        let v = f.api("GET", &format!("/api/v1/rollouts/{id}"), None);
        match v["wave"] == 1 {
            true => Ok(()),
            false => Err(format!("{v:#}")),
        }
    });
    cycle_all(&f, &agents);
    for (name, _) in &agents {
        assert_eq!(f.pattern(name), "good 18.601.00", "{name}");
    }
    let done = f.until(id, "complete");
    assert_eq!(done["waves"][1]["healthy"], 22, "{done:#}");
    // Each host reports what it trusts (the console's warnings and relay lag come from it): at
    // most the newest publication, which the relay serves.
    let ts: Value = serde_json::from_slice(
        &std::fs::read(f.bed.repo.dir.join("metadata/timestamp.json")).unwrap(),
    )
    .unwrap();
    let newest = ts["signed"]["version"].as_u64().unwrap();
    for h in f.api("GET", "/api/v1/hosts", None)["hosts"]
        .as_array()
        .unwrap()
    {
        assert_eq!(h["trust"]["root_version"], 1, "{h:#}");
        let v = h["trust"]["timestamp_version"].as_u64().unwrap();
        assert!((1..=newest).contains(&v), "{h:#}");
    }
}
