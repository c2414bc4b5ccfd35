//! Slow retrieval: a relay that accepts the connection and then sends nothing, or sends its
//! headers and then drips one byte a second, must not hold an agent or a child relay for the
//! request timeout. The real `updraft agent --once` and `updraft relay --once` are pointed at
//! such a server (started here on 127.0.0.1) with a good source after it; they must fail over
//! within the configured first-byte / stall bounds, install from the good source, and report
//! why the slow one was left.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::hostile::{Hostile, Mode};

/// Headers, then one byte a second.
const DRIP: Mode = Mode::Drip(Duration::from_secs(1));

const PATTERN: &str = "antimalware.pattern";
/// Loose sanity bound on a whole `--once` run with 2 s bounds (the property is the failover
/// and the reported reason; without the bounds a run would take 300 s or never end).
const BOUND: Duration = Duration::from_secs(30);

/// An agent configuration with `relays`, 2 s bounds for slow sources.
fn config(bed: &AgentBed, relays: Vec<String>) -> std::path::PathBuf {
    let cfg = bed.config(&AgentOpts {
        relays,
        ..bed.opts()
    });
    bed.edit_config(&cfg, |c| {
        c.http.first_byte_timeout = 2;
        c.http.stall_timeout = 2;
    });
    cfg
}

/// The agent leaves the slow relay, installs from the good one and names the slow one with
/// `reason` in its status; the run is bounded.
fn agent_fails_over(mode: Mode, reason: &str) {
    let bed = AgentBed::new();
    let slow = Hostile::start(mode);
    let cfg = config(&bed, vec![slow.base.clone(), bed.origin.base.clone()]);
    let t = Instant::now();
    let r = bed.once(&cfg).unwrap();
    let took = t.elapsed();
    assert_eq!(
        r["installed"][0],
        serde_json::json!([PATTERN, "18.523.00"]),
        "{r:#}"
    );
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.523.00"
    );
    let st = bed.status(&cfg);
    assert_eq!(st["source"], bed.origin.base.as_str(), "{st:#}");
    let rejected = st["rejected"].to_string();
    assert!(
        rejected.contains(&slow.base) && rejected.contains(reason),
        "{st:#}"
    );
    assert!(took < BOUND, "agent --once took {took:?}");
    eprintln!("agent failed over from a {reason} source in {took:?}");
}

#[test]
fn agent_fails_over_from_a_silent_relay() {
    agent_fails_over(Mode::Silent, "first-byte timeout");
}

#[test]
fn agent_fails_over_from_a_dripping_relay() {
    agent_fails_over(DRIP, "stalled");
}

#[test]
fn child_relay_fails_over_from_silent_and_dripping_upstreams() {
    let bed = AgentBed::new();
    let silent = Hostile::start(Mode::Silent);
    let drip = Hostile::start(DRIP);
    let cache = bed.path("relay-cache");
    let t = Instant::now();
    let out = relay_once_with(
        &[&silent.base, &drip.base, &bed.origin.base],
        &bed.repo.root_v1,
        &cache,
        &["--first-byte-timeout", "2", "--stall-timeout", "2"],
        &[],
    )
    .unwrap();
    let took = t.elapsed();
    assert_eq!(out["source"], bed.origin.base.as_str(), "{out:#}");
    assert!(out["downloaded"].as_u64().unwrap() >= 2, "{out:#}");
    let errors = out["upstream_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{out:#}");
    let (e0, e1) = (errors[0].as_str().unwrap(), errors[1].as_str().unwrap());
    assert!(
        e0.contains(&silent.base) && e0.contains("first-byte timeout"),
        "{e0}"
    );
    assert!(e1.contains(&drip.base) && e1.contains("stalled"), "{e1}");
    assert!(took < BOUND, "relay --once took {took:?}");
    eprintln!("relay failed over from a silent and a dripping upstream in {took:?}");
}
