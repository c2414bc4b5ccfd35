//! Rollback attacks: no role may go back in version, and an unchanged timestamp is a quiet success.
use crate::common::*;
use serde_json::json;
use tuf::{Error, FileFetcher, TimestampUpdate, Updater, UpdaterConfig};

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

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Regression (issue 9.1): a client rebuilt from its anchor each cycle replayed its local root
/// history as if new, so fast-forward recovery (5.3.11) discarded the trusted timestamp and
/// snapshot on every cycle after a rotation, and a stale but validly signed copy of the
/// repository rolled it back. The trusted state is what the last refresh verified.
#[test]
fn no_rollback_after_rotating_any_role_across_restarts_and_sources() {
    let config = UpdaterConfig {
        keep_root_history: true,
        ..UpdaterConfig::default()
    };
    for (role, keys, threshold) in [
        ("timestamp", 1, 1),
        ("snapshot", 2, 2),
        ("targets", 2, 1),
        ("root", 3, 2),
    ] {
        let mut env = Env::new();
        env.updater_with(config.clone()).refresh().unwrap();
        env.repo.rotate(role, keys, threshold).unwrap();
        env.repo
            .add_target_bytes("targets", "content/p/2.0/f", b"2.0", None)
            .unwrap();
        env.repo.publish().unwrap();
        let stale = env.tmp.path().join("stale");
        copy_dir(&env.repo.metadata_dir(), &stale);
        env.repo
            .add_target_bytes("targets", "content/p/3.0/f", b"3.0", None)
            .unwrap();
        env.repo.publish().unwrap();
        let current = env.updater_with(config.clone()).refresh().unwrap();
        assert_eq!(current.timestamp_version, env.version("timestamp"));
        // A restart (a new client from the anchor), then the stale source: refused.
        let mut up = Updater::new(
            env.client_dir(),
            stale.to_str().unwrap(),
            env.root_v1.clone(),
            FileFetcher,
            config.clone(),
        )
        .unwrap();
        assert_err(
            up.refresh(),
            |e| matches!(e, Error::Rollback { .. }),
            &format!("stale copy after rotating {role}"),
        );
        // The same client object again (no restart): still refused.
        assert_err(
            up.refresh(),
            |e| matches!(e, Error::Rollback { .. }),
            &format!("stale copy, second cycle, after rotating {role}"),
        );
        // The trusted state did not move: the real source is unchanged for the client.
        let again = env.updater_with(config.clone()).refresh().unwrap();
        assert_eq!(again.timestamp, TimestampUpdate::Unchanged, "{role}");
        assert_eq!(again.timestamp_version, current.timestamp_version);
        // Only the refresh that first trusted the new root fetched it: resumed roots are not
        // downloaded again (so they are not "new" either).
        assert!(
            !again.fetched.iter().any(|u| u.ends_with("/2.root.json")),
            "{role}: {:?}",
            again.fetched
        );
    }
}

/// A client that only verifies (`persist: false`) leaves the trusted state on disk untouched,
/// even when the source fails half-way; `adopt` persists a complete refresh, timestamp last.
#[test]
fn a_probe_changes_nothing_on_disk_until_adopted() {
    let mut env = Env::new();
    env.updater().refresh().unwrap();
    let trusted_ts = std::fs::read(env.client_dir().join("timestamp.json")).unwrap();
    env.repo
        .add_target_bytes("targets", "content/p/2.0/f", b"2.0", None)
        .unwrap();
    env.repo.publish().unwrap();
    let probe_config = UpdaterConfig {
        persist: false,
        ..UpdaterConfig::default()
    };
    // The new snapshot is withheld: the probe fails after verifying the newer timestamp.
    let snap = env.meta_path(&format!("{}.snapshot.json", env.version("snapshot")));
    let held = std::fs::read(&snap).unwrap();
    std::fs::remove_file(&snap).unwrap();
    assert!(env.updater_with(probe_config.clone()).refresh().is_err());
    assert_eq!(
        std::fs::read(env.client_dir().join("timestamp.json")).unwrap(),
        trusted_ts
    );
    // Complete: verified, still not persisted until adopted.
    std::fs::write(&snap, held).unwrap();
    let mut up = env.updater_with(probe_config);
    let out = up.refresh().unwrap();
    assert_eq!(
        std::fs::read(env.client_dir().join("timestamp.json")).unwrap(),
        trusted_ts
    );
    up.adopt().unwrap();
    let now = std::fs::read(env.client_dir().join("timestamp.json")).unwrap();
    assert_eq!(
        file_version(&env.client_dir().join("timestamp.json")),
        out.timestamp_version
    );
    assert_ne!(now, trusted_ts);
    assert_eq!(
        env.updater().refresh().unwrap().timestamp,
        TimestampUpdate::Unchanged
    );
}
