//! Unsigned, mis-typed and malformed metadata is rejected before anything is trusted.
use crate::common::*;
use serde_json::{json, Value};
use tuf::Error;

fn malformed(e: &Error) -> bool {
    matches!(e, Error::Malformed { .. })
}

#[test]
fn unsigned_timestamp_is_rejected() {
    let env = Env::new();
    let mut v = env.envelope("timestamp.json");
    v["signatures"] = json!([]);
    env.write_envelope("timestamp.json", &v);
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Threshold { valid: 0, .. }),
        "unsigned",
    );
}

#[test]
fn modified_signed_content_is_rejected() {
    let env = Env::new();
    let mut v = env.envelope("timestamp.json");
    v["signed"]["x-unknown"] = json!("unknown fields are covered by signatures");
    env.write_envelope("timestamp.json", &v);
    assert_err(
        env.updater().refresh(),
        |e| matches!(e, Error::Threshold { .. }),
        "tampered unknown field",
    );
}

#[test]
fn signed_unknown_fields_are_accepted_and_persisted_byte_for_byte() {
    let env = Env::new();
    env.resign("timestamp.json", "timestamp", |s| {
        s["x-vendor"] = json!({"nested": [1, 2]})
    });
    env.updater().refresh().unwrap();
    assert_eq!(
        std::fs::read(env.client_dir().join("timestamp.json")).unwrap(),
        std::fs::read(env.meta_path("timestamp.json")).unwrap()
    );
}

#[test]
fn wrong_type_spec_version_and_fields_are_rejected() {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("_type", Box::new(|s| s["_type"] = json!("snapshot"))),
        ("spec 2.0", Box::new(|s| s["spec_version"] = json!("2.0.0"))),
        (
            "spec garbage",
            Box::new(|s| s["spec_version"] = json!("one")),
        ),
        ("version 0", Box::new(|s| s["version"] = json!(0))),
        ("negative", Box::new(|s| s["version"] = json!(-1))),
        ("float", Box::new(|s| s["version"] = json!(1.5))),
        ("string version", Box::new(|s| s["version"] = json!("3"))),
        (
            "expires format",
            Box::new(|s| s["expires"] = json!("2099-01-01")),
        ),
        (
            "no meta",
            Box::new(|s| {
                s.as_object_mut().unwrap().remove("meta");
            }),
        ),
        (
            "extra meta",
            Box::new(|s| s["meta"]["targets.json"] = json!({"version": 1})),
        ),
        (
            "bad hash",
            Box::new(|s| s["meta"]["snapshot.json"]["hashes"] = json!({"sha256": "zz"})),
        ),
    ];
    for (what, f) in cases {
        let env = Env::new();
        let mut s = env.signed("timestamp.json");
        f(&mut s);
        s["version"] = s.get("version").cloned().unwrap_or(json!(1));
        // Floats cannot be canonicalised, so write those unsigned.
        match env.repo.sign_role("timestamp", &s) {
            Ok(bytes) => std::fs::write(env.meta_path("timestamp.json"), bytes).unwrap(),
            Err(_) => std::fs::write(
                env.meta_path("timestamp.json"),
                serde_json::to_vec(&json!({"signed": s, "signatures": []})).unwrap(),
            )
            .unwrap(),
        }
        assert_err(env.updater().refresh(), malformed, what);
    }
}

#[test]
fn not_json_and_not_an_envelope_are_rejected() {
    for body in [
        &b"not json"[..],
        b"[]",
        b"{\"signed\": 1, \"signatures\": []}",
        b"{\"signed\": {}}",
    ] {
        let env = Env::new();
        std::fs::write(env.meta_path("timestamp.json"), body).unwrap();
        assert_err(
            env.updater().refresh(),
            malformed,
            &String::from_utf8_lossy(body),
        );
    }
}

#[test]
fn root_with_wrong_key_id_is_rejected() {
    let env = Env::new();
    let mut s = env.signed("1.root.json");
    s["version"] = json!(2);
    let keys = s["keys"].as_object().unwrap().clone();
    let (id, key) = keys.iter().next().unwrap();
    let fake = "ab".repeat(32);
    s["keys"].as_object_mut().unwrap().remove(id);
    s["keys"][&fake] = key.clone();
    for role in ["root", "targets", "snapshot", "timestamp"] {
        let ids: Vec<Value> = s["roles"][role]["keyids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                if k == id.as_str() {
                    json!(fake)
                } else {
                    k.clone()
                }
            })
            .collect();
        s["roles"][role]["keyids"] = json!(ids);
    }
    env.write_signed("2.root.json", "root", &s);
    assert_err(env.updater().refresh(), malformed, "key id mismatch");
}

#[test]
fn initial_root_must_be_self_signed() {
    let env = Env::new();
    let mut v: Value = serde_json::from_slice(&env.root_v1).unwrap();
    v["signatures"] = json!([]);
    let r = tuf::Updater::new(
        env.client_dir(),
        &env.meta_url(),
        serde_json::to_vec(&v).unwrap(),
        tuf::FileFetcher,
        Default::default(),
    );
    assert!(matches!(r, Err(Error::Threshold { .. })));
}

#[test]
fn malformed_target_entries_are_rejected_at_lookup() {
    let env = Env::new();
    let v = env.version("targets");
    env.resign(&format!("{v}.targets.json"), "targets", |s| {
        s["targets"]["content/bad"] = json!({"length": 3, "hashes": {}});
        s["targets"]["content/worse"] = json!({"length": "three", "hashes": {"sha256": "00"}});
    });
    env.rechain_snapshot("targets", v);
    let mut up = env.updater();
    // Signatures, hashes and versions of the file are verified by the refresh...
    up.refresh().unwrap();
    // ...and no entry of a malformed targets object is ever used.
    assert_err(
        up.target_info(TARGET),
        malformed,
        "lookup in malformed targets",
    );
}
