//! Independent review (wt-review): attacks on the listing by a hostile *delegated* publisher,
//! i.e. someone who controls only the keys of one delegated role scoped to `evil/*` and can
//! therefore sign any `evil.json` the repository publishes for it.
//!
//! Tests marked FAILS TODAY reproduce findings; the others pin properties that held.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use serde_json::json;

/// A repository with a delegated role `evil` (scope `evil/*`) next to the top-level content.
fn env_with_evil() -> Env {
    let mut env = Env::new();
    env.repo
        .add_delegation(
            "targets",
            "evil",
            Some(vec!["evil/*".into()]),
            None,
            false,
            1,
            1,
        )
        .unwrap();
    env.repo
        .add_target_bytes("evil", "evil/own", b"evil's own target", None)
        .unwrap();
    env.repo.publish().unwrap();
    env
}

/// Re-sign `evil`'s current metadata with `f` applied (evil's own key: what the hostile
/// publisher can do), and chain snapshot/timestamp to it (what the repository does when the
/// publisher uploads its role).
fn evil_publishes(env: &Env, f: impl FnOnce(&mut serde_json::Value)) {
    let v = env.version("evil");
    let name = format!("{v}.evil.json");
    env.resign(&name, "evil", f);
    env.rechain_snapshot("evil", v);
}

/// FAILS TODAY. `succinct_roles` with bit_length 32 in a delegated role's own metadata (valid
/// TAP 15: 1..=32) makes `child_roles` return an error, and `listed_paths` propagates it with
/// `?`: `all_targets` fails for the *whole repository*, so agents and relays (which only use
/// the listing) stop updating every component, while a lookup of any other path still works.
/// With the agent's `max_roles` (10,000) bit_length 14 is enough; with the relay's (100,000),
/// bit_length 17.
#[test]
fn a_delegated_role_with_many_hash_bins_does_not_break_everyone_elses_listing() {
    let env = env_with_evil();
    evil_publishes(&env, |s| {
        s["delegations"] = json!({
            "keys": {},
            "succinct_roles": {"keyids": [], "threshold": 1, "bit_length": 32, "name_prefix": "bin"}
        });
    });
    let mut up = env.updater();
    up.refresh().unwrap();
    // The lookup is unaffected: the search only computes the one bin of a path.
    assert!(up.target_info(TARGET).unwrap().is_some());
    let listing = up.all_targets(10_000);
    let listing = listing.unwrap_or_else(|e| {
        panic!("one delegated publisher broke the listing for every target: {e}")
    });
    assert!(
        listing.targets.iter().any(|t| t.path() == TARGET),
        "the top-level target must still be listed"
    );
}

/// FAILS TODAY. Same with named roles: `tried.len() > 2 * max_roles` aborts the whole listing.
/// The delegated roles need not exist: a role not in the snapshot costs the attacker ~60 bytes.
#[test]
fn a_delegated_role_with_many_bogus_delegations_does_not_break_everyone_elses_listing() {
    let env = env_with_evil();
    let max_roles = 50;
    evil_publishes(&env, |s| {
        let roles: Vec<_> = (0..(2 * max_roles + 1))
            .map(|i| json!({"name": format!("x{i}"), "keyids": [], "threshold": 1, "terminating": false, "paths": ["evil/*"]}))
            .collect();
        s["delegations"] = json!({"keys": {}, "roles": roles});
    });
    let mut up = env.updater();
    up.refresh().unwrap();
    let listing = up.all_targets(max_roles).unwrap_or_else(|e| {
        panic!("one delegated publisher broke the listing for every target: {e}")
    });
    assert!(listing.targets.iter().any(|t| t.path() == TARGET));
    assert!(listing.targets.iter().any(|t| t.path() == "evil/own"));
}

/// Held: a role listing paths outside its scope only gets them refused; and a path it lists
/// inside another role's scope is not authorised.
#[test]
fn out_of_scope_paths_of_a_hostile_role_are_refused() {
    let env = env_with_evil();
    let body = b"evil";
    let h = tuf::crypto::sha256_hex(body);
    evil_publishes(&env, |s| {
        s["targets"][TARGET] = json!({"length": 4, "hashes": {"sha256": h}});
        s["targets"]["content/x/1.0/f"] = json!({"length": 4, "hashes": {"sha256": h}});
    });
    let mut up = env.updater();
    up.refresh().unwrap();
    let listing = up.all_targets(10_000).unwrap();
    let t = listing.targets.iter().find(|t| t.path() == TARGET).unwrap();
    assert_eq!(t.role(), "targets");
    assert!(listing
        .refused
        .iter()
        .any(|r| r.path == "content/x/1.0/f"));
}

/// Measures the cost a hostile delegated publisher can add to every client's listing: each path
/// it lists (in or out of its scope) is searched once. Prints the time; ignored by default.
#[test]
#[ignore]
fn cost_of_a_hostile_listing() {
    let env = env_with_evil();
    let n = 30_000;
    let body = b"evil";
    let h = tuf::crypto::sha256_hex(body);
    evil_publishes(&env, |s| {
        for i in 0..n {
            s["targets"][format!("content/antimalware.pattern/1.0/f{i}")] =
                json!({"length": 4, "hashes": {"sha256": h}});
        }
        let roles: Vec<_> = (0..9_000)
            .map(|i| json!({"name": format!("x{i}"), "keyids": [], "threshold": 1, "terminating": false, "paths": ["*/*/*/*"]}))
            .collect();
        s["delegations"] = json!({"keys": {}, "roles": roles});
    });
    let mut up = env.updater();
    up.refresh().unwrap();
    let t = std::time::Instant::now();
    let listing = up.all_targets(10_000).unwrap();
    eprintln!(
        "listing with {n} hostile paths: {:?}, {} refused",
        t.elapsed(),
        listing.refused.len()
    );
}
