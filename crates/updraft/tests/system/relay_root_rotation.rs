//! A relay that trusts only root v1 keeps syncing while the origin rotates root three times (with
//! threshold changes) and the targets, snapshot and timestamp keys; it serves the whole root chain
//! so that a client trusting root v1 updates through it.
use crate::common::*;

#[test]
fn relay_on_root_v1_follows_every_rotation_and_serves_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let origin = Server::start(&repo.dir);
    let cache = tmp.path().join("cache");
    relay_once(&[&origin.base], &repo.root_v1, &cache).unwrap();
    let mut newest = String::new();
    for (i, (role, keys, threshold)) in [
        ("root", "3", "2"),
        ("targets", "2", "1"),
        ("root", "2", "2"),
        ("snapshot", "1", "1"),
        ("timestamp", "2", "2"),
        ("root", "1", "1"),
    ]
    .into_iter()
    .enumerate()
    {
        repo.rotate(role, keys, threshold);
        newest = repo.add(
            "antimalware.pattern",
            &format!("18.{}.00", 600 + i),
            "pattern",
            format!("v{i}").as_bytes(),
        );
        repo.publish();
        let out = relay_once(&[&origin.base], &repo.root_v1, &cache)
            .unwrap_or_else(|e| panic!("after rotating {role}: {e}"));
        assert_eq!(out["changed"], true);
        assert_eq!(out["downloaded"], 1, "only the new file is downloaded");
    }
    drop(origin);
    let relay = relay_offline(&repo.root_v1, &cache);
    let status = get_json(&format!("{}/status", relay.base));
    assert_eq!(
        status["trusted_versions"]["root"], 7,
        "every top-level rotation is a new root"
    );
    for v in 1..=7 {
        let r = http()
            .get(format!("{}/metadata/{v}.root.json", relay.base))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "root v{v} served");
        assert_eq!(
            r.bytes().unwrap(),
            std::fs::read(repo.dir.join(format!("metadata/{v}.root.json"))).unwrap()
        );
    }
    // A client that trusts only root v1 walks the chain through the relay.
    let body = client_download(
        &tmp.path().join("md"),
        &repo.root_v1,
        &relay.base,
        &newest,
        &tmp.path().join("dl"),
    )
    .unwrap();
    assert_eq!(body, b"v5");
}
