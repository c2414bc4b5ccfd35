//! Rollback after a key rotation (issue 9.1): after the publisher rotates a role's keys, an
//! agent or relay that trusted the newer state must refuse a stale but validly signed copy of
//! the repository, after restarts (every `--once` is a new process) and across sources.

use std::path::Path;

use crate::common::*;

/// Publish pattern 18.600.00 after rotating `role`, copy the repository aside (stale but validly
/// signed), then publish 18.700.00. Returns the stale copy's directory.
fn rotate_then_publish_twice(
    repo: &Repo,
    role: &str,
    keys: &str,
    threshold: &str,
) -> std::path::PathBuf {
    repo.rotate(role, keys, threshold);
    repo.add("antimalware.pattern", "18.600.00", "pattern", b"pattern 2");
    repo.publish();
    let stale = repo.dir.parent().unwrap().join(format!("stale-{role}"));
    copy_dir(&repo.dir, &stale);
    repo.add("antimalware.pattern", "18.700.00", "pattern", b"pattern 3");
    repo.publish();
    stale
}

fn current_view(cache: &Path) -> String {
    std::fs::read_to_string(cache.join("current")).unwrap()
}

#[test]
fn agent_refuses_a_stale_copy_after_a_timestamp_rotation() {
    let bed = AgentBed::new();
    let stale_dir = rotate_then_publish_twice(&bed.repo, "timestamp", "1", "1");
    let stale = Server::start(&stale_dir);
    let good = bed.config(&bed.opts());
    bed.once(&good).unwrap();
    let installed = || std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap();
    assert_eq!(installed(), b"pattern 3");
    let mut o = bed.opts();
    o.relays = vec![stale.base.clone()];
    let bad = bed.config(&o);
    for cycle in 0..2 {
        bed.once(&bad).unwrap();
        assert_eq!(installed(), b"pattern 3", "cycle {cycle}: rolled back");
        let st = bed.status(&bad);
        assert_eq!(st["last_result"], "failed", "{st:#}");
        assert!(st.to_string().contains("rollback"), "{st:#}");
        let version = &st["modules"][0]["components"]["antimalware.pattern"];
        assert_eq!(version, "18.700.00", "{st:#}");
    }
    // Back on the real source: an unchanged repository, and no root is "updated" again.
    let out = launcher()
        .rust_log("info")
        .command(&[
            "agent",
            "--config",
            bed.config(&bed.opts()).to_str().unwrap(),
            "--once",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("root updated"), "{log}");
    assert!(!log.contains("discarding trusted timestamp"), "{log}");
    assert_eq!(bed.status(&good)["last_result"], "ok");
}

#[test]
fn agent_refuses_stale_copies_after_root_and_snapshot_rotations_with_threshold_changes() {
    let bed = AgentBed::new();
    bed.repo.rotate("root", "3", "2");
    let stale_dir = rotate_then_publish_twice(&bed.repo, "snapshot", "2", "2");
    let stale = Server::start(&stale_dir);
    // Stale first, current second: the agent must end on the current content and stay there.
    let mut o = bed.opts();
    o.relays = vec![bed.origin.base.clone()];
    bed.once(&bed.config(&o)).unwrap();
    o.relays = vec![stale.base.clone(), bed.origin.base.clone()];
    let cfg = bed.config(&o);
    bed.once(&cfg).unwrap();
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 3"
    );
    let st = bed.status(&cfg);
    assert_eq!(
        st["source"].as_str(),
        Some(bed.origin.base.as_str()),
        "{st:#}"
    );
    assert!(
        st["lagging"].to_string().contains("rollback refused"),
        "{st:#}"
    );
}

#[test]
fn relay_refuses_a_stale_copy_after_a_timestamp_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let stale_dir = rotate_then_publish_twice(&repo, "timestamp", "1", "1");
    let (origin, stale) = (Server::start(&repo.dir), Server::start(&stale_dir));
    let cache = tmp.path().join("cache");
    let first = relay_once(&[&origin.base], &repo.root_v1, &cache).unwrap();
    let view = current_view(&cache);
    for _ in 0..2 {
        let err = relay_once(&[&stale.base], &repo.root_v1, &cache).unwrap_err();
        assert!(err.contains("rollback"), "{err}");
        assert_eq!(current_view(&cache), view);
    }
    let relay = relay_offline(&repo.root_v1, &cache);
    let st = get_json(&format!("{}/status", relay.base));
    assert_eq!(st["view"]["id"], first["view"], "{st:#}");
    let served = http()
        .get(format!(
            "{}/targets/content/antimalware.pattern/18.700.00/antimalware.pattern.dat",
            relay.base
        ))
        .send()
        .unwrap();
    assert_eq!(served.bytes().unwrap().as_ref(), b"pattern 3");
}
