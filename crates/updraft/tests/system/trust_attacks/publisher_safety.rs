//! Publisher safety: the publisher's own commands never weaken the repository silently.
//!
//! Attack (issue 9, item 7): `updraft repo rotate --role timestamp` on a 2-of-3 repository used
//! to make the timestamp role 1-of-1, because the command's `--keys` and `--threshold` defaulted
//! to 1. One stolen key then sufficed where two had been needed, and nothing said so.

use std::path::Path;

use crate::common::{fails, ok, run, Repo};

/// Number of keys and threshold of `role` in the published root.
fn role_keys(repo: &Path, role: &str) -> (Vec<String>, u64) {
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/root.json")).unwrap()).unwrap();
    let r = &root["signed"]["roles"][role];
    let ids = r["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    (ids, r["threshold"].as_u64().unwrap())
}

fn root_version(repo: &Path) -> u64 {
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/root.json")).unwrap()).unwrap();
    root["signed"]["version"].as_u64().unwrap()
}

/// `updraft repo rotate DIR --role timestamp EXTRA…`
fn rotate_timestamp<'a>(dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["repo", "rotate", dir, "--role", "timestamp"];
    args.extend_from_slice(extra);
    args
}

#[test]
fn rotate_without_counts_keeps_keys_and_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let d = repo.dir.to_str().unwrap();
    let rotate = |extra: &[&'static str]| rotate_timestamp(d, extra);
    ok(&rotate(&["--keys", "3", "--threshold", "2"]));
    let (ids_2of3, t) = role_keys(&repo.dir, "timestamp");
    assert_eq!((ids_2of3.len(), t), (3, 2));

    // No counts given: three new keys, threshold still 2.
    let out = ok(&rotate(&[]));
    let (ids, t) = role_keys(&repo.dir, "timestamp");
    assert_eq!((ids.len(), t), (3, 2), "{out}");
    assert!(
        ids.iter().all(|id| !ids_2of3.contains(id)),
        "the keys were not replaced: {ids:?}"
    );

    // Only --keys: the threshold stays.
    ok(&rotate(&["--keys", "4"]));
    let (ids, t) = role_keys(&repo.dir, "timestamp");
    assert_eq!((ids.len(), t), (4, 2));
}

#[test]
fn lowering_a_threshold_needs_the_flag_and_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let d = repo.dir.to_str().unwrap();
    let rotate = |extra: &[&'static str]| rotate_timestamp(d, extra);
    ok(&rotate(&["--keys", "3", "--threshold", "2"]));
    let version = root_version(&repo.dir);
    let before = role_keys(&repo.dir, "timestamp");

    // Lowering without the flag: refused, nothing published.
    for extra in [
        &["--threshold", "1"][..],
        &["--keys", "1", "--threshold", "1"],
    ] {
        let err = fails(&rotate(extra));
        assert!(
            err.contains("lower the threshold from 2 to 1")
                && err.contains("--allow-lower-threshold"),
            "{err}"
        );
        assert_eq!(root_version(&repo.dir), version);
        assert_eq!(role_keys(&repo.dir, "timestamp"), before);
    }

    // A threshold above the number of keys: refused, whether given or kept.
    for extra in [
        &["--keys", "2", "--threshold", "3"][..],
        &["--keys", "1"],
        &["--threshold", "0"],
    ] {
        let err = fails(&rotate(extra));
        assert!(
            err.contains("must be between 1 and the number of keys"),
            "{extra:?}: {err}"
        );
        assert_eq!(root_version(&repo.dir), version);
    }

    // With the flag: done, and said on stderr.
    let out = run(&rotate(&["--threshold", "1", "--allow-lower-threshold"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("threshold lowered from 2 to 1"),
        "{stderr}"
    );
    let (ids, t) = role_keys(&repo.dir, "timestamp");
    assert_eq!((ids.len(), t), (3, 1));
    assert_eq!(root_version(&repo.dir), version + 1);

    // Raising needs no flag and prints no warning.
    let out = run(&rotate(&["--threshold", "3"]));
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
    assert_eq!(role_keys(&repo.dir, "timestamp").1, 3);
}

#[test]
fn rotate_help_explains_the_defaults() {
    let help = ok(&["repo", "rotate", "--help"]);
    for needle in [
        "keeps its number of keys and its threshold",
        "--allow-lower-threshold",
        "above the number of keys is refused",
    ] {
        assert!(help.contains(needle), "{needle:?} not in:\n{help}");
    }
}
