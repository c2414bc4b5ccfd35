//! Review (wt-review2): a *later* relay that holds a genuine newer timestamp but withholds the
//! snapshot it names. `catch_up` refreshes from it with the agent's trusted state, so the newer
//! timestamp is verified and persisted (spec 5.4.5) before the snapshot step fails. From the
//! next poll on the first relay (one timestamp behind) fails the rollback check and the later
//! relay fails the snapshot step: the agent has no usable source, every module turns `offline`
//! ("update source unreachable") although the first relay still serves a valid, unexpired view
//! and the agent was told nothing new it could use. The attacker needs no key: a timestamp is
//! public, and every publication or timestamp refresh opens the window (until the first relay
//! syncs). Both tests FAIL TODAY (agent `catch_up` in crates/agent/src/lib.rs; relay `sync::probe`).

use crate::common::*;

const PATTERN: &str = "antimalware.pattern";

/// (stale first, hostile second): both as `updraft serve` origins.
fn bed_with_stale_and_withholding() -> (AgentBed, Server, Server) {
    let bed = AgentBed::new();
    let stale_dir = bed.path("stale-repo");
    copy_dir(&bed.repo.dir, &stale_dir);
    bed.repo
        .add(PATTERN, "18.524.00", "pattern", b"pattern 18.524.00");
    bed.repo.publish();
    let hostile_dir = bed.path("hostile-repo");
    copy_dir(&bed.repo.dir, &hostile_dir);
    for e in std::fs::read_dir(hostile_dir.join("metadata")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if name.contains("snapshot") && !stale_dir.join("metadata").join(&name).exists() {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let _ = std::fs::remove_file(hostile_dir.join("metadata/snapshot.json"));
    let stale = Server::start(&stale_dir);
    let hostile = Server::start(&hostile_dir);
    (bed, stale, hostile)
}

/// The same against a child relay (`probe` persists into the relay's trusted state): the second
/// sync fails on every upstream although the first still serves a valid view. FAILS TODAY.
#[test]
fn a_later_upstream_withholding_the_new_snapshot_does_not_fail_the_child_relays_sync() {
    let (bed, stale, hostile) = bed_with_stale_and_withholding();
    let cache = bed.path("relay-cache");
    let first = relay_once(&[&stale.base, &hostile.base], &bed.repo.root_v1, &cache);
    eprintln!("sync 1: {first:?}");
    assert!(first.is_ok(), "{first:?}");
    let second = relay_once(&[&stale.base, &hostile.base], &bed.repo.root_v1, &cache);
    eprintln!("sync 2: {second:?}");
    assert!(
        second.is_ok(),
        "an upstream that could not be compared must not fail the next sync: {second:?}"
    );
}

#[test]
fn a_later_relay_withholding_the_new_snapshot_does_not_take_the_agent_offline() {
    let bed = AgentBed::new();
    // Relay 1: the view before the new publication (valid, unexpired): it lags by one.
    let stale_dir = bed.path("stale-repo");
    copy_dir(&bed.repo.dir, &stale_dir);
    bed.repo
        .add(PATTERN, "18.524.00", "pattern", b"pattern 18.524.00");
    bed.repo.publish();
    // Relay 2 (hostile): the current repository with every snapshot the stale copy lacks removed.
    let hostile_dir = bed.path("hostile-repo");
    copy_dir(&bed.repo.dir, &hostile_dir);
    for e in std::fs::read_dir(hostile_dir.join("metadata")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if name.contains("snapshot") && !stale_dir.join("metadata").join(&name).exists() {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    // An unversioned snapshot.json (if any) is the new one: withhold it too.
    let _ = std::fs::remove_file(hostile_dir.join("metadata/snapshot.json"));
    let stale = Server::start(&stale_dir);
    let hostile = Server::start(&hostile_dir);
    let cfg = bed.config(&AgentOpts {
        relays: vec![stale.base.clone(), hostile.base.clone()],
        ..bed.opts()
    });
    let r1 = bed.once(&cfg).unwrap();
    let st1 = bed.status(&cfg);
    eprintln!("cycle 1: {r1:#}\nstatus: {st1:#}");
    let r2 = bed.once(&cfg).unwrap();
    let st2 = bed.status(&cfg);
    eprintln!("cycle 2: {r2:#}\nstatus: {st2:#}");
    assert_eq!(
        st2["modules"][0]["status"].as_str().unwrap_or_default(),
        "online",
        "a relay that could not be compared must not take the agent offline: {st2:#}"
    );
    assert_eq!(st2["source"], stale.base.as_str(), "{st2:#}");
}
