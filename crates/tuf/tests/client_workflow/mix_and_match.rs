//! Mix-and-match and URL/version mismatches: each file must be the one the parent lists.
use crate::common::*;
use serde_json::json;
use tuf::Error;

#[test]
fn snapshot_not_matching_timestamp_hash_is_rejected() {
    let env = Env::new();
    let v = env.version("snapshot");
    // A validly signed snapshot with the right version, but not the one the timestamp lists.
    env.resign(&format!("{v}.snapshot.json"), "snapshot", |s| {
        s["expires"] = json!("2099-01-01T00:00:00Z")
    });
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::HashMismatch { what, .. } if what == "snapshot"),
        "snapshot hash",
    );
    // Longer than the length the timestamp lists: cut off at that length.
    env.resign(&format!("{v}.snapshot.json"), "snapshot", |s| {
        s["x-extra"] = json!("different")
    });
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::TooLarge { .. }),
        "snapshot length",
    );
}

#[test]
fn targets_not_matching_snapshot_hash_is_rejected() {
    let env = Env::new();
    let v = env.version("targets");
    env.resign(&format!("{v}.targets.json"), "targets", |s| {
        s["targets"][TARGET]["length"] = json!(1);
    });
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::LengthMismatch { .. } | Error::HashMismatch { .. }),
        "targets hash",
    );
}

#[test]
fn snapshot_version_must_match_the_url_and_timestamp() {
    let env = Env::new();
    let v = env.version("snapshot");
    env.resign(&format!("{v}.snapshot.json"), "snapshot", |s| {
        s["version"] = json!(v + 1)
    });
    env.rechain_timestamp(v);
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::VersionMismatch { role, .. } if role == "snapshot"),
        "snapshot version",
    );
}

#[test]
fn targets_version_must_match_the_url_and_snapshot() {
    let env = Env::new();
    let v = env.version("targets");
    env.resign(&format!("{v}.targets.json"), "targets", |s| {
        s["version"] = json!(v + 7)
    });
    env.rechain_snapshot("targets", v);
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::VersionMismatch { role, .. } if role == "targets"),
        "targets version",
    );
}

#[test]
fn metadata_signed_for_another_role_is_rejected() {
    let env = Env::new();
    // Snapshot content served as the timestamp, signed by the snapshot key.
    let v = env.version("snapshot");
    let s = env.signed(&format!("{v}.snapshot.json"));
    env.write_signed("timestamp.json", "snapshot", &s);
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Malformed { .. }),
        "snapshot as timestamp",
    );
    // A genuine timestamp signed with the snapshot key instead of the timestamp key.
    let t = serde_json::to_value(env.repo.timestamp()).unwrap();
    env.write_signed("timestamp.json", "snapshot", &t);
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Threshold { role, .. } if role == "timestamp"),
        "wrong key",
    );
}
