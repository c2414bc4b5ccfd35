//! The manager's policy: read once per cycle; a change of pinned versions is planned at once,
//! without forgetting which timestamp was applied.

use std::sync::{Arc, Mutex};

use model::Kind;

use crate::support::{Bed, Steered, PATTERN};

fn policy(pinned: Option<&str>) -> serde_json::Value {
    let pinned = match pinned {
        Some(v) => serde_json::json!({ PATTERN: v }),
        None => serde_json::json!({}),
    };
    serde_json::json!({"group": "branch", "relays": [], "poll_interval": 60,
                       "allow_direct": false, "pinned": pinned})
}

fn with_newer_pattern() -> Bed {
    let mut bed = Bed::new();
    bed.add(PATTERN, "18.600.00", Kind::Pattern, b"pattern 18.600.00");
    bed.repo.publish().unwrap();
    bed
}

#[test]
fn a_new_pin_is_planned_in_the_next_cycle_although_the_timestamp_did_not_change() {
    let bed = with_newer_pattern();
    let a = bed.agent();
    a.cycle().unwrap();
    assert_eq!(bed.pattern(), "pattern 18.600.00");
    let applied = bed.state().status().unwrap().applied_timestamp;
    assert!(applied > 0);

    bed.set_policy(policy(Some("18.523.00")));
    let r = a.cycle().unwrap();
    assert!(r.timestamp_unchanged, "{r:?}");
    assert_eq!(
        r.installed,
        [(PATTERN.to_string(), "18.523.00".to_string())]
    );
    assert_eq!(bed.pattern(), "pattern 18.523.00");
    assert_eq!(
        bed.state().status().unwrap().applied_timestamp,
        applied,
        "the applied timestamp is kept, not zeroed"
    );

    // Nothing changed since: nothing planned, nothing written.
    let r = a.cycle().unwrap();
    assert!(r.installed.is_empty() && !r.status_written, "{r:?}");

    // Unpinned: the newest again.
    bed.set_policy(policy(None));
    a.cycle().unwrap();
    assert_eq!(bed.pattern(), "pattern 18.600.00");
}

#[test]
fn the_policy_is_read_once_per_cycle() {
    const ENGINE: &str = "antimalware.engine";
    let mut bed = with_newer_pattern();
    bed.components.push(ENGINE.into());
    bed.add(ENGINE, "1.0", Kind::Engine, b"engine 1.0");
    bed.add(ENGINE, "2.0", Kind::Engine, b"engine 2.0");
    bed.repo.publish().unwrap();
    let pins = |pattern: &str, engine: &str| {
        serde_json::json!({"group": "g", "relays": [], "poll_interval": 60, "allow_direct": false,
                           "pinned": {PATTERN: pattern, ENGINE: engine}})
    };
    bed.set_policy(pins("18.523.00", "1.0"));
    // While the cycle downloads its first target, the stored policy changes both pins: the
    // cycle keeps the policy it started with for every component; the next cycle applies
    // the new one.
    let state = bed.path("state/policy.json");
    let newer = pins("18.600.00", "2.0").to_string();
    let fetcher = Arc::new(Steered {
        on_first_target: Mutex::new(Some(Box::new(move || {
            std::fs::write(&state, newer).unwrap();
        }))),
        ..Steered::default()
    });
    let a = bed.agent_with(fetcher);
    let mut r = a.cycle().unwrap().installed;
    r.sort();
    assert_eq!(
        r,
        [
            (ENGINE.to_string(), "1.0".to_string()),
            (PATTERN.into(), "18.523.00".into())
        ]
    );
    let mut r = a.cycle().unwrap().installed;
    r.sort();
    assert_eq!(
        r,
        [
            (ENGINE.to_string(), "2.0".to_string()),
            (PATTERN.into(), "18.600.00".into())
        ]
    );
}

#[test]
fn the_policy_relay_list_replaces_the_configurations() {
    let mut bed = Bed::new();
    let dead = "file:///nonexistent/relay".to_string();
    bed.relays = vec![dead.clone()];
    let real = bed.url();
    bed.set_policy(
        serde_json::json!({"group": "g", "relays": [real], "poll_interval": 60,
                                      "allow_direct": false, "pinned": {}}),
    );
    let fetcher = Arc::new(Steered {
        refused: vec![dead.clone()],
        ..Steered::default()
    });
    let r = bed.agent_with(fetcher.clone()).cycle().unwrap();
    assert_eq!(r.source.as_deref(), Some(bed.url().as_str()));
    assert!(
        !fetcher
            .asked
            .lock()
            .unwrap()
            .iter()
            .any(|u| u.starts_with(&dead)),
        "the configuration's relay is not asked"
    );
    assert_eq!(
        bed.agent().poll_interval(),
        60,
        "the policy's poll interval"
    );
}
