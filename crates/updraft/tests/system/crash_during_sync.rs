//! `kill -9` at any point of a sync: after a restart the relay serves the previous good view and
//! the next sync reuses every object that was already verified (nothing downloaded twice).
//! The crash points are injected with `UPDRAFT_FAULT`, which aborts the process there.
use crate::common::*;

fn served_view(root: &std::path::Path, cache: &std::path::Path) -> u64 {
    let relay = relay_offline(root, cache);
    get_json(&format!("{}/status", relay.base))["view"]["id"]
        .as_u64()
        .unwrap()
}

#[test]
fn crash_at_each_point_keeps_the_good_view_and_resumes_without_downloading_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let origin = Server::start(&repo.dir);
    let cache = tmp.path().join("cache");
    let first = relay_once(&[&origin.base], &repo.root_v1, &cache).unwrap();
    let good = first["view"].as_u64().unwrap();

    for (i, c) in ["engine", "rules", "extra"].iter().enumerate() {
        repo.add(
            &format!("antimalware.{c}"),
            &format!("2.{i}"),
            "engine",
            format!("{c} body").as_bytes(),
        );
    }
    repo.publish();
    for point in [
        "after-refresh",
        "after-first-download",
        "after-download",
        "before-commit",
    ] {
        let err = relay_once_with(
            &[&origin.base],
            &repo.root_v1,
            &cache,
            &[],
            &[("UPDRAFT_FAULT", point)],
        )
        .unwrap_err();
        assert!(
            err.contains("status None"),
            "{point}: the process was killed by the abort: {err}"
        );
        assert_eq!(
            served_view(&repo.root_v1, &cache),
            good,
            "after a crash {point}, the previous view is served"
        );
    }
    // The crash after the first download already stored one verified object, the crash after all
    // downloads the other two: the resumed sync downloads nothing again.
    let resumed = relay_once(&[&origin.base], &repo.root_v1, &cache).unwrap();
    assert_eq!(resumed["changed"], true);
    assert_eq!(resumed["downloaded"], 0, "{resumed:#}");
    let new_view = resumed["view"].as_u64().unwrap();
    assert!(new_view > good);
    assert_eq!(served_view(&repo.root_v1, &cache), new_view);

    // A crash right after the commit: the new view is the one served after restart.
    repo.add("antimalware.late", "1.0", "pattern", b"late");
    repo.publish();
    relay_once_with(
        &[&origin.base],
        &repo.root_v1,
        &cache,
        &[],
        &[("UPDRAFT_FAULT", "after-commit")],
    )
    .unwrap_err();
    let after = served_view(&repo.root_v1, &cache);
    assert!(after > new_view);
    let relay = relay_offline(&repo.root_v1, &cache);
    let body = client_download(
        &tmp.path().join("md"),
        &repo.root_v1,
        &relay.base,
        "content/antimalware.late/1.0/antimalware.late.dat",
        &tmp.path().join("dl"),
    )
    .unwrap();
    assert_eq!(body, b"late");
}

#[test]
fn old_views_and_their_objects_are_collected_beyond_keep_views() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let origin = Server::start(&repo.dir);
    let cache = tmp.path().join("cache");
    for i in 0..4 {
        repo.add(
            "antimalware.pattern",
            &format!("19.{i}"),
            "pattern",
            format!("gen {i}").as_bytes(),
        );
        if i > 0 {
            let old = format!(
                "content/antimalware.pattern/19.{}/antimalware.pattern.dat",
                i - 1
            );
            ok(&["repo", "remove", repo.dir.to_str().unwrap(), &old]);
        }
        repo.publish();
        relay_once_with(
            &[&origin.base],
            &repo.root_v1,
            &cache,
            &["--keep-views", "2"],
            &[],
        )
        .unwrap();
    }
    let views = std::fs::read_dir(cache.join("views")).unwrap().count();
    assert_eq!(views, 2);
    // The first generation's target is referenced by no kept view: its object is gone.
    let gone = cache
        .join("objects/sha256")
        .join(tuf::crypto::sha256_hex(b"gen 0"));
    assert!(!gone.exists());
    let kept = cache
        .join("objects/sha256")
        .join(tuf::crypto::sha256_hex(b"gen 3"));
    assert!(kept.exists());
}
