//! Key rotation of every role (threshold up and down), far-behind clients, the root walk cap,
//! and fast-forward recovery.
use crate::common::*;
use serde_json::json;
use tuf::{Error, UpdaterConfig};

#[test]
fn client_on_root_v1_follows_rotations_of_every_role_with_threshold_changes() {
    let mut env = Env::new();
    env.updater().refresh().unwrap();
    for (role, keys, threshold) in [
        ("root", 3, 2),
        ("targets", 2, 2),
        ("snapshot", 3, 3),
        ("timestamp", 2, 1),
        ("root", 1, 1),
        ("snapshot", 1, 1),
        ("targets", 1, 1),
        ("timestamp", 3, 2),
    ] {
        env.repo.rotate(role, keys, threshold).unwrap();
        let mut up = env.updater();
        let out = up
            .refresh()
            .unwrap_or_else(|e| panic!("after rotating {role}: {e}"));
        assert_eq!(out.root_version, env.version("root"));
        assert_eq!(out.timestamp_version, env.version("timestamp"));
        let info = up.target_info(TARGET).unwrap().unwrap();
        up.download_target(&info, &env.download_dir(), &env.target_url())
            .unwrap();
    }
    assert_eq!(env.version("root"), 9);
}

#[test]
fn far_behind_client_walks_more_than_256_roots_only_with_a_higher_cap() {
    let mut env = Env::new();
    for _ in 0..300 {
        env.repo.rotate("root", 1, 1).unwrap();
    }
    // The default cap (256) stops at root 257: a valid root, but the walk is not complete.
    let mut up = env.updater();
    let _ = up.refresh();
    assert_eq!(up.trusted().unwrap().root().version, 257);
    // The next refresh continues from root 257 and finishes.
    assert_eq!(up.refresh().unwrap().root_version, 301);
    // A fresh client with a larger cap walks all 300 in one refresh.
    let client = env.tmp.path().join("client-2");
    let config = UpdaterConfig {
        max_root_rotations: 400,
        ..Default::default()
    };
    let mut up2 = tuf::Updater::new(
        &client,
        &env.meta_url(),
        env.root_v1.clone(),
        tuf::FileFetcher,
        config,
    )
    .unwrap();
    assert_eq!(up2.refresh().unwrap().root_version, 301);
}

#[test]
fn new_root_needs_threshold_of_old_and_of_new_keys() {
    let mut env = Env::new();
    env.repo.rotate("root", 1, 1).unwrap();
    // 2.root.json signed only by the new root key (not by root 1's key): rejected.
    let s = env.signed("2.root.json");
    env.write_signed("2.root.json", "root", &s);
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Threshold { role, .. } if role == "root"),
        "only new keys",
    );
    // Signed only by the old key: rejected too.
    let old: Vec<tuf::crypto::PrivateKey> = std::fs::read_dir(env.repo.dir().join("keys/retired"))
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    let refs: Vec<&tuf::crypto::PrivateKey> = old.iter().collect();
    std::fs::write(
        env.meta_path("2.root.json"),
        tuf::repo::Repository::sign_with(&refs, &s).unwrap(),
    )
    .unwrap();
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Threshold { role, .. } if role == "root"),
        "only old keys",
    );
}

#[test]
fn fast_forward_recovery_after_timestamp_key_rotation() {
    let mut env = Env::new();
    // An attacker with the timestamp key pushed the client's timestamp version far ahead.
    env.resign("timestamp.json", "timestamp", |s| {
        s["version"] = json!(1_000_000)
    });
    env.updater().refresh().unwrap();
    assert_eq!(
        file_version(&env.client_dir().join("timestamp.json")),
        1_000_000
    );
    // Publisher recovers: rotates the timestamp key; versions continue from the real value.
    env.repo.rotate("timestamp", 1, 1).unwrap();
    let out = env.updater().refresh().unwrap();
    assert!(out.timestamp_version < 1_000);
    assert_eq!(
        file_version(&env.client_dir().join("timestamp.json")),
        out.timestamp_version
    );
}

#[test]
fn fast_forward_recovery_after_snapshot_key_rotation() {
    let mut env = Env::new();
    // The snapshot version was pushed ahead (a compromised snapshot key + timestamp listing it).
    let v = env.version("snapshot");
    env.resign(&format!("{v}.snapshot.json"), "snapshot", |s| {
        s["version"] = json!(500_000)
    });
    std::fs::copy(
        env.meta_path(&format!("{v}.snapshot.json")),
        env.meta_path("500000.snapshot.json"),
    )
    .unwrap();
    env.rechain_timestamp(500_000);
    env.updater().refresh().unwrap();
    env.repo.rotate("snapshot", 1, 1).unwrap();
    let out = env.updater().refresh().unwrap();
    assert_eq!(out.snapshot_version, env.version("snapshot"));
    assert!(out.snapshot_version < 500_000);
}

#[test]
fn without_rotation_a_fast_forwarded_timestamp_blocks_updates() {
    let mut env = Env::new();
    env.resign("timestamp.json", "timestamp", |s| {
        s["version"] = json!(1_000_000)
    });
    env.updater().refresh().unwrap();
    env.repo.refresh_timestamp().unwrap();
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Rollback { .. }),
        "no recovery without rotation",
    );
}

/// Attack (publisher safety): a rotation that does not say how many keys and which threshold
/// keeps the role's; lowering a threshold or a threshold above the keys is refused before
/// anything changes.
#[test]
fn rotation_keeps_counts_unless_told_and_never_lowers_silently() {
    use tuf::repo::RotateOptions;
    let mut env = Env::new();
    env.repo.rotate("timestamp", 3, 2).unwrap();
    let r = env
        .repo
        .rotate_with("timestamp", &RotateOptions::default())
        .unwrap();
    assert_eq!((r.new_keyids.len(), r.previous_keys), (3, 3));
    assert_eq!((r.threshold, r.previous_threshold), (2, 2));
    assert!(!r.lowered_threshold());
    assert_eq!(
        env.repo.role_keyids("timestamp").unwrap(),
        (r.new_keyids, 2)
    );

    let root_version = env.version("root");
    let lower = RotateOptions {
        threshold: Some(1),
        ..Default::default()
    };
    assert_err(
        env.repo.rotate_with("timestamp", &lower),
        |e| matches!(e, Error::ThresholdLowered { role, from: 2, to: 1 } if role == "timestamp"),
        "lowered",
    );
    let too_few = RotateOptions {
        keys: Some(1),
        ..Default::default()
    };
    assert_err(
        env.repo.rotate_with("timestamp", &too_few),
        |e| {
            matches!(
                e,
                Error::ThresholdAboveKeys {
                    threshold: 2,
                    keys: 1,
                    ..
                }
            )
        },
        "above keys",
    );
    assert_eq!(
        env.version("root"),
        root_version,
        "a refused rotation changed root"
    );

    let r = env
        .repo
        .rotate_with(
            "timestamp",
            &RotateOptions {
                allow_lower_threshold: true,
                ..lower
            },
        )
        .unwrap();
    assert!(r.lowered_threshold());
    assert_eq!(env.repo.role_keyids("timestamp").unwrap().1, 1);
    env.updater().refresh().unwrap();
}
