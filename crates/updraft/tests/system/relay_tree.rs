//! Relays form trees: a child relay's upstream is its parent relay; an agent-side client downloads
//! from the child. Two levels, both running as daemons, following a new publication.
use crate::common::*;

fn view_with_timestamp(v: &serde_json::Value, ts: u64) -> bool {
    v["trusted_versions"]["timestamp"].as_u64() == Some(ts) && v["last_sync"]["result"].is_string()
}

#[test]
fn two_level_relay_tree_serves_agents_and_follows_publications() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let origin = Server::start(&repo.dir);
    let parent = relay_daemon(&origin.base, &repo.root_v1, &tmp.path().join("parent"));
    let t0 = published_timestamp(&repo.dir);
    wait_status(&parent.base, "parent synced", |v| {
        view_with_timestamp(v, t0)
    });
    let child = relay_daemon(&parent.base, &repo.root_v1, &tmp.path().join("child"));
    let st = wait_status(&child.base, "child synced", |v| view_with_timestamp(v, t0));
    assert_eq!(st["upstream_in_use"], parent.base.as_str());
    let (md, dl) = (tmp.path().join("md"), tmp.path().join("dl"));
    let target = "content/ips.rules/2026.11.1/ips.rules.dat";
    assert_eq!(
        client_download(&md, &repo.root_v1, &child.base, target, &dl).unwrap(),
        b"rules 2026.11.1"
    );

    // A new publication reaches the agent through both levels.
    let newer = repo.add("ips.rules", "2026.11.2", "rules", b"rules 2026.11.2");
    repo.publish();
    let t1 = published_timestamp(&repo.dir);
    wait_status(&parent.base, "parent follows", |v| {
        view_with_timestamp(v, t1)
    });
    wait_status(&child.base, "child follows", |v| view_with_timestamp(v, t1));
    assert_eq!(
        client_download(&md, &repo.root_v1, &child.base, &newer, &dl).unwrap(),
        b"rules 2026.11.2"
    );
}
