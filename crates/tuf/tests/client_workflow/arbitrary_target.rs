//! Arbitrary software and endless data: a target is written only if its signed length and
//! hashes match, reading never more than the signed length; metadata reads are bounded too.
use crate::common::*;
use tuf::{Error, Updater, UpdaterConfig};

fn stored_target(env: &Env) -> std::path::PathBuf {
    let hash = tuf::crypto::sha256_hex(BODY);
    env.repo.targets_dir().join(format!(
        "content/antimalware.pattern/1.0/{hash}.pattern.dat"
    ))
}

#[test]
fn target_downloads_verified_and_cached() {
    let env = Env::new();
    let mut up = env.updater();
    up.refresh().unwrap();
    let info = up.target_info(TARGET).unwrap().unwrap();
    assert_eq!(info.length(), BODY.len() as u64);
    let path = up
        .download_target(&info, &env.download_dir(), &env.target_url())
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), BODY);
    assert!(path.starts_with(env.download_dir()));
    // Already there with matching hashes: not fetched again.
    up.refresh().unwrap();
    let before = up.fetched().len();
    up.download_target(&info, &env.download_dir(), &env.target_url())
        .unwrap();
    assert_eq!(up.fetched().len(), before);
    assert!(up.target_info("content/none").unwrap().is_none());
}

#[test]
fn tampered_target_of_same_length_is_rejected_and_not_written() {
    let env = Env::new();
    let mut bad = BODY.to_vec();
    bad[0] ^= 1;
    std::fs::write(stored_target(&env), &bad).unwrap();
    let mut up = env.updater();
    up.refresh().unwrap();
    let info = up.target_info(TARGET).unwrap().unwrap();
    assert_err(
        up.download_target(&info, &env.download_dir(), &env.target_url()),
        |e| matches!(e, Error::HashMismatch { .. }),
        "tampered",
    );
    assert!(!Updater::<tuf::FileFetcher>::local_target_path(&env.download_dir(), &info).exists());
    // No temporary file is left behind either.
    assert_eq!(std::fs::read_dir(env.download_dir()).unwrap().count(), 0);
}

#[test]
fn short_and_endless_targets_are_rejected() {
    let env = Env::new();
    let mut up = env.updater();
    up.refresh().unwrap();
    let info = up.target_info(TARGET).unwrap().unwrap();
    std::fs::write(stored_target(&env), &BODY[..4]).unwrap();
    assert_err(
        up.download_target(&info, &env.download_dir(), &env.target_url()),
        |e| matches!(e, Error::LengthMismatch { .. }),
        "short",
    );
    std::fs::write(stored_target(&env), vec![b'x'; 10 << 20]).unwrap();
    assert_err(
        up.download_target(&info, &env.download_dir(), &env.target_url()),
        |e| matches!(e, Error::TooLarge { max, .. } if *max == BODY.len() as u64),
        "endless",
    );
}

#[test]
fn oversized_metadata_is_cut_off_at_the_configured_bound() {
    let env = Env::new();
    // A timestamp that never ends (here: 64 MiB of whitespace after valid JSON).
    let mut ts = std::fs::read(env.meta_path("timestamp.json")).unwrap();
    ts.extend(std::iter::repeat_n(b' ', 64 << 20));
    std::fs::write(env.meta_path("timestamp.json"), &ts).unwrap();
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::TooLarge { max: 16384, .. }),
        "endless timestamp",
    );
    // The bound is configurable.
    let config = UpdaterConfig {
        timestamp_max_length: 128 << 20,
        ..Default::default()
    };
    env.updater_with(config).refresh().unwrap();
    // An endless root N+1.
    std::fs::write(env.meta_path("2.root.json"), vec![b'{'; 1 << 20]).unwrap();
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::TooLarge { max: 524288, .. }),
        "endless root",
    );
}

#[test]
fn missing_files_at_each_step_are_errors_except_the_next_root() {
    let env = Env::new();
    let v_s = env.version("snapshot");
    let v_t = env.version("targets");
    for (file, what) in [
        ("timestamp.json".to_string(), "timestamp"),
        (format!("{v_s}.snapshot.json"), "snapshot"),
        (format!("{v_t}.targets.json"), "targets"),
    ] {
        let p = env.meta_path(&file);
        let saved = std::fs::read(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        let client = env.tmp.path().join(format!("client-{what}"));
        let mut up = Updater::new(
            &client,
            &env.meta_url(),
            env.root_v1.clone(),
            tuf::FileFetcher,
            Default::default(),
        )
        .unwrap();
        assert_err(
            up.refresh(),
            |e| matches!(e, Error::Fetch(tuf::FetchError::NotFound { .. })),
            what,
        );
        std::fs::write(&p, saved).unwrap();
    }
    // The missing target file.
    std::fs::remove_file(stored_target(&env)).unwrap();
    let mut up = env.updater();
    up.refresh().unwrap();
    let info = up.target_info(TARGET).unwrap().unwrap();
    assert_err(
        up.download_target(&info, &env.download_dir(), &env.target_url()),
        |e| matches!(e, Error::Fetch(_)),
        "target",
    );
}
