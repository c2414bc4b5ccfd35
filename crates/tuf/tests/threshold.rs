//! Thresholds count distinct keys: duplicate signatures and duplicate keys never count twice.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use serde_json::json;
use tuf::repo::InitOptions;
use tuf::Error;

fn two_of_two() -> Env {
    Env::with_options(&InitOptions {
        keys_per_role: 2,
        threshold: 2,
        ..Default::default()
    })
}

#[test]
fn threshold_two_with_both_keys_works() {
    let env = two_of_two();
    env.updater().refresh().unwrap();
}

#[test]
fn duplicate_signature_from_one_key_does_not_meet_threshold_two() {
    let env = two_of_two();
    let mut v = env.envelope("timestamp.json");
    let first = v["signatures"][0].clone();
    v["signatures"] = json!([first.clone(), first]);
    env.write_envelope("timestamp.json", &v);
    assert_err(
        env.updater().refresh(),
        |e| {
            matches!(
                e,
                Error::Threshold {
                    valid: 1,
                    threshold: 2,
                    ..
                }
            )
        },
        "dup sig",
    );
}

#[test]
fn same_key_listed_twice_in_a_role_is_rejected() {
    let env = two_of_two();
    // Root 2 lists timestamp key A twice (instead of A and B) with threshold 2.
    let mut s = env.signed("1.root.json");
    s["version"] = json!(2);
    let a = s["roles"]["timestamp"]["keyids"][0].clone();
    s["roles"]["timestamp"]["keyids"] = json!([a.clone(), a]);
    env.write_signed("2.root.json", "root", &s);
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Malformed { .. }),
        "dup keyid",
    );
}

#[test]
fn one_key_under_two_key_ids_counts_once() {
    let env = two_of_two();
    // Root 2 adds an alias of timestamp key A (same public key, extra field => other key id)
    // and makes the timestamp role {A, alias} with threshold 2.
    let mut s = env.signed("1.root.json");
    s["version"] = json!(2);
    let a = s["roles"]["timestamp"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let mut alias = s["keys"][&a].clone();
    alias["x-alias"] = json!(true);
    let alias_key: tuf::metadata::Key = serde_json::from_value(alias.clone()).unwrap();
    let alias_id = tuf::crypto::key_id(&alias_key).unwrap();
    s["keys"][&alias_id] = alias;
    s["roles"]["timestamp"]["keyids"] = json!([a.clone(), alias_id.clone()]);
    env.write_signed("2.root.json", "root", &s);
    // Timestamp signed by A, plus the same signature relabelled as the alias.
    let mut v = env.envelope("timestamp.json");
    let sig_a = v["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["keyid"] == a.as_str())
        .unwrap()
        .clone();
    let mut sig_alias = sig_a.clone();
    sig_alias["keyid"] = json!(alias_id);
    v["signatures"] = json!([sig_a, sig_alias]);
    env.write_envelope("timestamp.json", &v);
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Threshold { role, valid: 1, .. } if role == "timestamp"),
        "alias",
    );
}

#[test]
fn unknown_key_types_and_bad_signatures_do_not_count_but_do_not_break() {
    let env = Env::new();
    // Root 2 adds an unsupported key type to the timestamp role; threshold stays 1.
    let mut s = env.signed("1.root.json");
    s["version"] = json!(2);
    let odd = json!({"keytype": "future-pq", "scheme": "future-pq", "keyval": {"public": "abcd"}});
    let odd_id = tuf::crypto::key_id(&serde_json::from_value(odd.clone()).unwrap()).unwrap();
    s["keys"][&odd_id] = odd;
    s["roles"]["timestamp"]["keyids"]
        .as_array_mut()
        .unwrap()
        .push(json!(odd_id));
    env.write_signed("2.root.json", "root", &s);
    // Plus a garbage signature on the timestamp: still valid with the real one.
    let mut v = env.envelope("timestamp.json");
    v["signatures"]
        .as_array_mut()
        .unwrap()
        .push(json!({"keyid": odd_id, "sig": "00ff"}));
    env.write_envelope("timestamp.json", &v);
    env.updater().refresh().unwrap();
}

#[test]
fn ecdsa_repository_verifies() {
    let env = Env::with_options(&InitOptions {
        key_kind: tuf::crypto::KeyKind::EcdsaP256,
        ..Default::default()
    });
    let mut up = env.updater();
    up.refresh().unwrap();
    assert!(up.target_info(TARGET).unwrap().is_some());
}
