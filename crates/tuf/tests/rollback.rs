//! Rollback attacks: no role may go back in version, and an unchanged timestamp is a quiet success.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use serde_json::json;
use tuf::{Error, TimestampUpdate};

#[test]
fn timestamp_version_rollback_is_rejected_and_trusted_copy_kept() {
    let mut env = Env::new();
    env.updater().refresh().unwrap();
    let trusted = std::fs::read(env.client_dir().join("timestamp.json")).unwrap();
    let old = std::fs::read(env.meta_path("timestamp.json")).unwrap();
    env.repo.refresh_timestamp().unwrap();
    env.updater().refresh().unwrap();
    // The mirror now serves the older timestamp.
    std::fs::write(env.meta_path("timestamp.json"), &old).unwrap();
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Rollback { role, .. } if role == "timestamp"),
        "old timestamp",
    );
    assert_ne!(
        std::fs::read(env.client_dir().join("timestamp.json")).unwrap(),
        trusted
    );
    assert_eq!(
        file_version(&env.client_dir().join("timestamp.json")),
        env.version("timestamp")
    );
}

#[test]
fn unchanged_timestamp_is_quiet_success_without_further_downloads() {
    let env = Env::new();
    env.updater().refresh().unwrap();
    let out = env.updater().refresh().unwrap();
    assert_eq!(out.timestamp, TimestampUpdate::Unchanged);
    let names: Vec<&str> = out
        .fetched
        .iter()
        .map(|u| u.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, ["2.root.json", "timestamp.json"]);
}

#[test]
fn snapshot_version_in_timestamp_going_back_is_rejected() {
    let mut env = Env::new();
    env.repo.publish().unwrap();
    env.updater().refresh().unwrap();
    let snap_v = env.version("snapshot");
    env.resign("timestamp.json", "timestamp", |s| {
        s["version"] = json!(s["version"].as_u64().unwrap() + 1);
        s["meta"]["snapshot.json"]["version"] = json!(snap_v - 1);
    });
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Rollback { .. }),
        "snapshot rollback in timestamp",
    );
}

#[test]
fn targets_version_going_back_in_snapshot_is_rejected() {
    let mut env = Env::new();
    env.repo
        .add_target_bytes("targets", "content/x/1/a", b"a", None)
        .unwrap();
    env.repo.publish().unwrap();
    env.updater().refresh().unwrap();
    // New snapshot that lists the previous targets version.
    let snap_v = env.version("snapshot");
    let mut s = env.signed(&format!("{snap_v}.snapshot.json"));
    s["version"] = json!(snap_v + 1);
    s["meta"]["targets.json"]["version"] = json!(env.version("targets") - 1);
    s["meta"]["targets.json"]
        .as_object_mut()
        .unwrap()
        .remove("hashes");
    s["meta"]["targets.json"]
        .as_object_mut()
        .unwrap()
        .remove("length");
    env.write_signed(&format!("{}.snapshot.json", snap_v + 1), "snapshot", &s);
    env.rechain_timestamp(snap_v + 1);
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Rollback { role, .. } if role.contains("targets.json")),
        "targets rollback",
    );
}

#[test]
fn targets_file_disappearing_from_snapshot_is_rejected() {
    let mut env = Env::new();
    env.repo
        .add_delegation(
            "targets",
            "team",
            Some(vec!["content/team/*".into()]),
            None,
            false,
            1,
            1,
        )
        .unwrap();
    env.repo.publish().unwrap();
    env.updater().refresh().unwrap();
    let snap_v = env.version("snapshot");
    let mut s = env.signed(&format!("{snap_v}.snapshot.json"));
    s["version"] = json!(snap_v + 1);
    s["meta"].as_object_mut().unwrap().remove("team.json");
    env.write_signed(&format!("{}.snapshot.json", snap_v + 1), "snapshot", &s);
    env.rechain_timestamp(snap_v + 1);
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::NotListed { what, .. } if what.contains("team.json")),
        "missing role",
    );
}

#[test]
fn root_version_must_be_exactly_n_plus_one() {
    let env = Env::new();
    // 2.root.json that claims version 3 (validly signed by the root keys).
    let mut s = env.signed("1.root.json");
    s["version"] = json!(3);
    env.write_signed("2.root.json", "root", &s);
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::VersionMismatch { role, expected: 2, got: 3 } if role == "root"),
        "root v3 as 2",
    );
    // Same version as trusted (a replayed root) is also refused.
    let mut s = env.signed("1.root.json");
    s["version"] = json!(1);
    env.write_signed("2.root.json", "root", &s);
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::VersionMismatch { .. }),
        "root v1 as 2",
    );
}
