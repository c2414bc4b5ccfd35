//! Freeze attacks: every role's expiry is checked against the fixed update start time.
use crate::common::*;
use serde_json::json;
use tuf::Error;

const PAST: &str = "2001-01-01T00:00:00Z";

fn expired(role: &'static str) -> impl Fn(&Error) -> bool {
    move |e| matches!(e, Error::Expired { role: r, .. } if r == role)
}

#[test]
fn expired_timestamp_is_rejected_and_not_persisted() {
    let env = Env::new();
    env.resign("timestamp.json", "timestamp", |s| {
        s["expires"] = json!(PAST)
    });
    assert_err(
        env.updater().refresh(),
        expired("timestamp"),
        "expired timestamp",
    );
    assert!(!env.client_dir().join("timestamp.json").exists());
}

#[test]
fn expired_snapshot_is_rejected() {
    let env = Env::new();
    let v = env.version("snapshot");
    env.resign(&format!("{v}.snapshot.json"), "snapshot", |s| {
        s["expires"] = json!(PAST)
    });
    env.rechain_timestamp(v);
    assert_err(
        env.updater().refresh(),
        expired("snapshot"),
        "expired snapshot",
    );
    assert!(!env.client_dir().join("snapshot.json").exists());
}

#[test]
fn expired_targets_is_rejected() {
    let env = Env::new();
    let v = env.version("targets");
    env.resign(&format!("{v}.targets.json"), "targets", |s| {
        s["expires"] = json!(PAST)
    });
    env.rechain_snapshot("targets", v);
    assert_err(
        env.updater().refresh(),
        expired("targets"),
        "expired targets",
    );
}

#[test]
fn expired_delegated_targets_is_rejected_at_lookup() {
    let mut env = Env::new();
    env.repo
        .add_delegation(
            "targets",
            "team",
            Some(vec!["team/*".into()]),
            None,
            false,
            1,
            1,
        )
        .unwrap();
    env.repo
        .add_target_bytes("team", "team/a", b"a", None)
        .unwrap();
    env.repo.publish().unwrap();
    let v = env.version("team");
    env.resign(&format!("{v}.team.json"), "team", |s| {
        s["expires"] = json!(PAST)
    });
    env.rechain_snapshot("team", v);
    let mut up = env.updater();
    up.refresh().unwrap();
    assert_err(
        up.target_info("team/a"),
        expired("team"),
        "expired delegated role",
    );
}

#[test]
fn expired_final_root_is_rejected_but_expired_intermediate_root_is_fine() {
    let mut env = Env::new();
    env.repo.rotate("root", 1, 1).unwrap(); // 2.root.json
    env.repo.rotate("root", 1, 1).unwrap(); // 3.root.json
                                            // Make root 2 expired (re-signed by the keys that signed it: root 1's and root 2's keys are
                                            // needed; the engine kept only retired copies, so sign with both sets from keys/retired).
    let retired = env.repo.dir().join("keys/retired");
    let keys: Vec<tuf::crypto::PrivateKey> = std::fs::read_dir(&retired)
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    let mut s = env.signed("2.root.json");
    s["expires"] = json!(PAST);
    let refs: Vec<&tuf::crypto::PrivateKey> = keys.iter().collect();
    std::fs::write(
        env.meta_path("2.root.json"),
        tuf::repo::Repository::sign_with(&refs, &s).unwrap(),
    )
    .unwrap();
    // Intermediate expiry does not matter (5.3.6).
    let out = env.updater().refresh().unwrap();
    assert_eq!(out.root_version, 3);
    // A final root that is expired is a freeze attack (5.3.10).
    std::fs::remove_file(env.meta_path("3.root.json")).unwrap();
    let env2_client = env.tmp.path().join("client2");
    let mut up = tuf::Updater::new(
        &env2_client,
        &env.meta_url(),
        env.root_v1.clone(),
        tuf::FileFetcher,
        Default::default(),
    )
    .unwrap();
    assert_err(up.refresh(), expired("root"), "expired final root");
    // The verified (expired) root 2 was still persisted: it is trusted for the next walk.
    assert_eq!(file_version(&env2_client.join("root.json")), 2);
}

#[test]
fn fixed_start_time_in_the_future_sees_every_role_expired() {
    let env = Env::new();
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(2);
    assert_err(
        env.updater().refresh_at(later),
        expired("timestamp"),
        "timestamp after 2 days",
    );
    let much_later = time::OffsetDateTime::now_utc() + time::Duration::days(400);
    assert_err(
        env.updater().refresh_at(much_later),
        expired("root"),
        "root after 400 days",
    );
}

#[test]
fn locally_trusted_timestamp_that_expired_is_not_accepted_as_unchanged() {
    let env = Env::new();
    env.updater().refresh().unwrap();
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(2);
    // The repository was not refreshed: same timestamp version, now expired.
    assert_err(
        env.updater().refresh_at(later),
        expired("timestamp"),
        "stale unchanged timestamp",
    );
}

#[test]
fn expired_local_metadata_still_guards_rollback_and_a_newer_remote_is_accepted() {
    let mut env = Env::new();
    env.updater().refresh().unwrap(); // local timestamp expires in 1 day
    env.repo.expiry_mut().timestamp_days = 30;
    env.repo
        .add_target_bytes("targets", "content/new/2/f", b"new", None)
        .unwrap();
    env.repo.publish().unwrap();
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(3);
    let out = env.updater().refresh_at(later).unwrap();
    assert_eq!(out.timestamp_version, env.version("timestamp"));
    assert_eq!(out.targets_version, env.version("targets"));
}
