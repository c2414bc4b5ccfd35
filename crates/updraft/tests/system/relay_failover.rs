//! Upstream failover: connection errors, tampered data and rollbacks make the relay try the next
//! upstream while it keeps serving its last good view; it returns to the first upstream once that
//! one answers again, and `/status` says which upstream served the last sync.
use crate::common::*;

#[test]
fn unreachable_and_tampering_upstreams_are_skipped_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    // A mirror of the repository whose pattern file was replaced (same length, other bytes).
    let evil_dir = tmp.path().join("evil");
    copy_dir(&repo.dir, &evil_dir);
    let hash = tuf::crypto::sha256_hex(b"pattern 18.523.00");
    let stored = evil_dir.join(format!(
        "targets/content/antimalware.pattern/18.523.00/{hash}.antimalware.pattern.dat"
    ));
    std::fs::write(&stored, b"pattern 66.666.66").unwrap();
    let evil = Server::start(&evil_dir);
    let good = Server::start(&repo.dir);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let cache = tmp.path().join("cache");

    let out = relay_once(&[&dead, &evil.base, &good.base], &repo.root_v1, &cache).unwrap();
    assert_eq!(out["source"], good.base.as_str());
    // Nothing from the tampering mirror was stored.
    assert!(!cache
        .join("objects/sha256")
        .join(tuf::crypto::sha256_hex(b"pattern 66.666.66"))
        .exists());
    let err = relay_once(&[&dead, &evil.base], &repo.root_v1, &cache);
    // The good view is already there and unchanged upstream: the evil mirror's metadata matches,
    // so this sync is "unchanged" from it — but a new publication it tampers with is refused.
    assert!(err.is_ok());
    repo.add(
        "antimalware.pattern",
        "18.524.00",
        "pattern",
        b"pattern 18.524.00",
    );
    repo.publish();
    copy_dir(&repo.dir.join("metadata"), &evil_dir.join("metadata"));
    // The new target is missing from the mirror (a 404 for a listed target).
    let err = relay_once(&[&dead, &evil.base], &repo.root_v1, &cache).unwrap_err();
    assert!(err.contains("every upstream failed"), "{err}");
    assert!(err.contains(&dead) && err.contains(&evil.base), "{err}");
    let relay = relay_offline(&repo.root_v1, &cache);
    let status = get_json(&format!("{}/status", relay.base));
    assert_eq!(
        status["view"]["id"], out["view"],
        "the last good view is still served"
    );
}

#[test]
fn rollback_from_an_upstream_keeps_the_newer_view() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let old_dir = tmp.path().join("old");
    copy_dir(&repo.dir, &old_dir);
    repo.add("ips.rules", "2026.11.9", "rules", b"newer rules");
    repo.publish();
    let (current, stale) = (Server::start(&repo.dir), Server::start(&old_dir));
    let cache = tmp.path().join("cache");
    let out = relay_once(&[&current.base], &repo.root_v1, &cache).unwrap();
    let err = relay_once(&[&stale.base], &repo.root_v1, &cache).unwrap_err();
    assert!(err.contains("rollback"), "{err}");
    let relay = relay_offline(&repo.root_v1, &cache);
    assert_eq!(
        get_json(&format!("{}/status", relay.base))["view"]["id"],
        out["view"]
    );
}

#[test]
fn daemon_fails_over_and_returns_to_the_first_upstream() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let second = Server::start(&repo.dir);
    let port = free_port();
    let first_url = format!("http://127.0.0.1:{port}");
    let (r, c) = (
        repo.root_v1.to_str().unwrap().to_string(),
        tmp.path().join("cache"),
    );
    let relay = Server::spawn(
        &[
            "relay",
            "--upstream",
            &first_url,
            "--upstream",
            &second.base,
            "--trusted-root",
            &r,
            "--cache",
            c.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "1",
        ],
        &[],
    );
    let st = wait_status(&relay.base, "sync from the second upstream", |v| {
        v["upstream_in_use"] == second.base.as_str()
    });
    let errors = st["last_sync"]["upstream_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0][0], first_url.as_str());
    // The first upstream comes up: the relay goes back to it.
    let _first = Server::spawn(
        &[
            "serve",
            repo.dir.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &[],
    );
    let st = wait_status(&relay.base, "back on the first upstream", |v| {
        v["upstream_in_use"] == first_url.as_str()
    });
    assert!(st["last_sync"]["upstream_errors"]
        .as_array()
        .unwrap()
        .is_empty());
    // Every upstream down: still serving, status says why.
    drop(_first);
    second.kill();
    let st = wait_status(&relay.base, "all upstreams down", |v| {
        v["last_sync"]["result"] == "failed"
    });
    assert!(st["last_sync"]["error"]
        .as_str()
        .unwrap()
        .contains("every upstream failed"));
    assert!(st["view"]["id"].as_u64().is_some());
    let target = "content/ips.rules/2026.11.1/ips.rules.dat";
    assert_eq!(
        client_download(
            &tmp.path().join("md"),
            &repo.root_v1,
            &relay.base,
            target,
            &tmp.path().join("dl")
        )
        .unwrap(),
        b"rules 2026.11.1"
    );
}
