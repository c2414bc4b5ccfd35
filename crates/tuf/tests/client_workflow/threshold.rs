//! Thresholds count distinct keys: duplicate signatures and duplicate keys never count twice.
use crate::common::*;
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

/// Attack: the same signature listed twice in `signatures` (one key, one id). The specification
/// forbids duplicate key ids there, so the file is invalid whatever the threshold.
#[test]
fn duplicate_signature_keyids_make_metadata_invalid() {
    for (env, threshold) in [(two_of_two(), 2), (Env::new(), 1)] {
        let mut v = env.envelope("timestamp.json");
        let first = v["signatures"][0].clone();
        let id = first["keyid"].as_str().unwrap().to_string();
        v["signatures"] = json!([first.clone(), first]);
        env.write_envelope("timestamp.json", &v);
        assert_err(
            env.updater().refresh(),
            |e| {
                matches!(e, Error::DuplicateSignature { role, keyid }
                    if role == "timestamp" && *keyid == id)
            },
            &format!("duplicate signature, threshold {threshold}"),
        );
    }
}

/// The same attack with the second copy's key id in upper case: still one key id.
#[test]
fn duplicate_signature_keyids_differing_in_case_make_metadata_invalid() {
    let env = Env::new();
    let mut v = env.envelope("timestamp.json");
    let first = v["signatures"][0].clone();
    let mut upper = first.clone();
    let id = first["keyid"].as_str().unwrap().to_ascii_uppercase();
    upper["keyid"] = json!(id);
    v["signatures"] = json!([first, upper]);
    env.write_envelope("timestamp.json", &v);
    let err = env.updater().refresh().unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateSignature { role, keyid } if role == "timestamp" && *keyid == id),
        "{err}"
    );
    assert!(err.to_string().contains("timestamp") && err.to_string().contains(&id));
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

/// Build root 2 whose timestamp role lists key A and a second entry for A's key material made by
/// `variant` (a key id and key object), threshold 2, and a timestamp signed by A under both ids.
fn root_with_variant_of_timestamp_key(
    env: &Env,
    variant: impl FnOnce(&str, &serde_json::Value) -> (String, serde_json::Value),
) {
    let mut s = env.signed("1.root.json");
    s["version"] = json!(2);
    let a = s["roles"]["timestamp"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let (other_id, other_key) = variant(&a, &s["keys"][&a]);
    s["keys"][&other_id] = other_key;
    s["roles"]["timestamp"]["keyids"] = json!([a.clone(), other_id.clone()]);
    s["roles"]["timestamp"]["threshold"] = json!(2);
    env.write_signed("2.root.json", "root", &s);
    let mut v = env.envelope("timestamp.json");
    let sig_a = v["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["keyid"] == a.as_str())
        .unwrap()
        .clone();
    let mut sig_other = sig_a.clone();
    sig_other["keyid"] = json!(other_id);
    v["signatures"] = json!([sig_a, sig_other]);
    env.write_envelope("timestamp.json", &v);
}

/// Attack: root lists timestamp key A under its id and under the id in upper case, threshold 2,
/// and the timestamp carries A's signature under both ids. The upper-case id is not the key's
/// id (key ids are recomputed), so root 2 is refused.
#[test]
fn one_key_under_case_variant_key_ids_does_not_meet_threshold_two() {
    let env = two_of_two();
    root_with_variant_of_timestamp_key(&env, |a, key| (a.to_ascii_uppercase(), key.clone()));
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Malformed { role, reason } if role == "root" && reason.contains("key id")),
        "upper-case key id",
    );
}

/// Attack: root lists timestamp key A and the same key with its public hex in upper case (a
/// different, correctly computed key id), threshold 2, and the timestamp carries A's signature
/// under both ids. The decoded keys are equal: one valid key.
#[test]
fn one_key_with_case_variant_public_hex_does_not_meet_threshold_two() {
    let env = two_of_two();
    root_with_variant_of_timestamp_key(&env, |_, key| {
        let mut k = key.clone();
        k["keyval"]["public"] = json!(k["keyval"]["public"].as_str().unwrap().to_ascii_uppercase());
        let parsed: tuf::metadata::Key = serde_json::from_value(k.clone()).unwrap();
        (tuf::crypto::key_id(&parsed).unwrap(), k)
    });
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Threshold { role, valid: 1, threshold: 2 } if role == "timestamp"),
        "upper-case public key",
    );
}

/// The engine never writes a key id twice in `signatures`: not when a key is given twice, and not
/// in any file of a repository whose root was rotated (signed by the old and the new root keys).
#[test]
fn engine_never_writes_duplicate_signature_keyids() {
    let mut env = two_of_two();
    let key = env.repo.signing_keys("timestamp").unwrap()[0].clone();
    let bytes =
        tuf::repo::Repository::sign_with(&[&key, &key], &env.signed("timestamp.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["signatures"].as_array().unwrap().len(), 1);

    env.repo.rotate("root", 3, 2).unwrap();
    env.repo.rotate("timestamp", 2, 1).unwrap();
    let mut files = 0;
    for entry in std::fs::read_dir(env.repo.metadata_dir()).unwrap() {
        let path = entry.unwrap().path();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let ids: Vec<String> = v["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["keyid"].as_str().unwrap().to_ascii_lowercase())
            .collect();
        let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{}: {ids:?}", path.display());
        files += 1;
    }
    assert!(files >= 6, "only {files} metadata files");
    env.updater().refresh().unwrap();
}
