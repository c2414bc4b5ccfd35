//! Delegation graphs: pre-order depth-first search in order, terminating roles, cycles, path
//! patterns, hash prefixes, succinct hash bins and the visit cap.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use serde_json::json;
use tuf::UpdaterConfig;

fn lookup(env: &Env, path: &str) -> Option<String> {
    let mut up = env.updater();
    up.refresh().unwrap();
    up.target_info(path).unwrap().map(|i| i.role().to_string())
}

#[test]
fn search_is_preorder_depth_first_in_delegation_order() {
    let mut env = Env::new();
    let r = &mut env.repo;
    r.add_delegation("targets", "a", Some(vec!["x/*".into()]), None, false, 1, 1)
        .unwrap();
    r.add_delegation("targets", "b", Some(vec!["x/*".into()]), None, false, 1, 1)
        .unwrap();
    r.add_delegation("a", "a1", Some(vec!["x/*".into()]), None, false, 1, 1)
        .unwrap();
    r.add_target_bytes("a1", "x/f", b"from a1", None).unwrap();
    r.add_target_bytes("b", "x/f", b"from b", None).unwrap();
    r.add_target_bytes("b", "x/g", b"only b", None).unwrap();
    r.publish().unwrap();
    // a's subtree (a1) is searched before b.
    assert_eq!(lookup(&env, "x/f").as_deref(), Some("a1"));
    assert_eq!(lookup(&env, "x/g").as_deref(), Some("b"));
    assert_eq!(lookup(&env, "y/g"), None);
}

#[test]
fn terminating_role_stops_the_search() {
    let mut env = Env::new();
    let r = &mut env.repo;
    r.add_delegation(
        "targets",
        "term",
        Some(vec!["x/*".into()]),
        None,
        true,
        1,
        1,
    )
    .unwrap();
    r.add_delegation(
        "targets",
        "later",
        Some(vec!["x/*".into()]),
        None,
        false,
        1,
        1,
    )
    .unwrap();
    r.add_target_bytes("later", "x/f", b"later", None).unwrap();
    r.publish().unwrap();
    assert_eq!(
        lookup(&env, "x/f"),
        None,
        "terminating role without the target ends the search"
    );
    // A non-matching terminating role does not stop the search for other paths.
    env.repo
        .add_target_bytes("later", "y/f", b"y", None)
        .unwrap();
    env.repo.publish().unwrap();
    // `later` only covers x/*, so y/f is not found anywhere.
    assert_eq!(lookup(&env, "y/f"), None);
}

#[test]
fn paths_must_match_along_the_whole_chain() {
    let mut env = Env::new();
    let r = &mut env.repo;
    r.add_delegation(
        "targets",
        "narrow",
        Some(vec!["x/*".into()]),
        None,
        false,
        1,
        1,
    )
    .unwrap();
    // narrow delegates y/* to child, but narrow itself is only trusted for x/*.
    r.add_delegation(
        "narrow",
        "child",
        Some(vec!["y/*".into()]),
        None,
        false,
        1,
        1,
    )
    .unwrap();
    r.add_target_bytes("child", "y/f", b"y", None).unwrap();
    r.add_target_bytes("narrow", "y/g", b"out of scope", None)
        .unwrap();
    r.publish().unwrap();
    assert_eq!(lookup(&env, "y/f"), None);
    assert_eq!(lookup(&env, "y/g"), None);
}

#[test]
fn cycles_terminate() {
    let mut env = Env::new();
    env.repo
        .add_delegation("targets", "a", Some(vec!["*".into()]), None, false, 1, 1)
        .unwrap();
    env.repo
        .add_delegation("a", "b", Some(vec!["*".into()]), None, false, 1, 1)
        .unwrap();
    env.repo.publish().unwrap();
    // b delegates back to a (same keys as targets gives a): a cycle a -> b -> a.
    let a_entry = env
        .repo
        .targets("targets")
        .unwrap()
        .delegations
        .clone()
        .unwrap();
    let v = env.version("b");
    env.resign(&format!("{v}.b.json"), "b", |s| {
        s["delegations"] = serde_json::to_value(&a_entry).unwrap();
    });
    env.rechain_snapshot("b", v);
    let mut up = env.updater();
    up.refresh().unwrap();
    assert!(up.target_info("nothing-here").unwrap().is_none());
}

#[test]
fn visit_cap_limits_roles_searched() {
    let mut env = Env::new();
    let mut parent = "targets".to_string();
    for i in 0..5 {
        let name = format!("d{i}");
        env.repo
            .add_delegation(&parent, &name, Some(vec!["*".into()]), None, false, 1, 1)
            .unwrap();
        parent = name;
    }
    env.repo
        .add_target_bytes("d4", "deep", b"deep", None)
        .unwrap();
    env.repo.publish().unwrap();
    assert_eq!(lookup(&env, "deep").as_deref(), Some("d4"));
    let mut up = env.updater_with(UpdaterConfig {
        max_delegations: 3,
        ..Default::default()
    });
    up.refresh().unwrap();
    assert!(up.target_info("deep").unwrap().is_none());
}

#[test]
fn hash_prefixes_select_roles() {
    let mut env = Env::new();
    let path = "content/hashed/file";
    let h = tuf::crypto::sha256_hex(path.as_bytes());
    let other = if h.starts_with('0') { "1" } else { "0" };
    env.repo
        .add_delegation(
            "targets",
            "wrong",
            None,
            Some(vec![other.into()]),
            false,
            1,
            1,
        )
        .unwrap();
    env.repo
        .add_delegation(
            "targets",
            "right",
            None,
            Some(vec![h[..2].to_string()]),
            false,
            1,
            1,
        )
        .unwrap();
    env.repo
        .add_target_bytes("wrong", path, b"wrong", None)
        .unwrap();
    env.repo
        .add_target_bytes("right", path, b"right", None)
        .unwrap();
    env.repo.publish().unwrap();
    assert_eq!(lookup(&env, path).as_deref(), Some("right"));
}

#[test]
fn succinct_hash_bins() {
    let mut env = Env::new();
    let bins = env
        .repo
        .add_succinct_delegation("targets", 3, "bin", 1)
        .unwrap();
    assert_eq!(bins.len(), 8);
    let s = env
        .repo
        .targets("targets")
        .unwrap()
        .delegations
        .clone()
        .unwrap()
        .succinct_roles
        .unwrap();
    let path = "content/binned/file";
    let bin = tuf::delegation::succinct_role_for(&s, path);
    env.repo
        .add_target_bytes(&bin, path, b"binned", None)
        .unwrap();
    // The same path in a different bin is never consulted.
    let other = bins.iter().find(|b| **b != bin).unwrap().clone();
    env.repo
        .add_target_bytes(&other, "content/binned/elsewhere-but-wrong", b"x", None)
        .unwrap();
    env.repo.publish().unwrap();
    assert_eq!(lookup(&env, path).as_deref(), Some(bin.as_str()));
    assert_eq!(
        lookup(&env, "content/binned/elsewhere-but-wrong").filter(|r| *r == other),
        None
    );
}

#[test]
fn delegated_metadata_needs_delegated_keys_and_matching_snapshot_entry() {
    let mut env = Env::new();
    env.repo
        .add_delegation(
            "targets",
            "team",
            Some(vec!["t/*".into()]),
            None,
            false,
            1,
            1,
        )
        .unwrap();
    env.repo
        .add_target_bytes("team", "t/f", b"f", None)
        .unwrap();
    env.repo.publish().unwrap();
    let v = env.version("team");
    // Signed with the top-level targets key instead of team's key.
    let s = env.signed(&format!("{v}.team.json"));
    env.write_signed(&format!("{v}.team.json"), "targets", &s);
    env.rechain_snapshot("team", v);
    let mut up = env.updater();
    up.refresh().unwrap();
    common::assert_err(
        up.target_info("t/f"),
        |e| matches!(e, tuf::Error::Threshold { role, .. } if role == "team"),
        "wrong key",
    );
    // Correctly signed but not the file the snapshot lists (hash).
    env.resign(&format!("{v}.team.json"), "team", |s| {
        s["expires"] = json!("2099-12-31T00:00:00Z")
    });
    let mut up = env.updater();
    up.refresh().unwrap();
    common::assert_err(
        up.target_info("t/f"),
        |e| {
            matches!(
                e,
                tuf::Error::HashMismatch { .. } | tuf::Error::LengthMismatch { .. }
            )
        },
        "hash",
    );
}
