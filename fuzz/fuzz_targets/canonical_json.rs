//! Canonical JSON: encode whatever JSON the input parses to. Never panics; the encoding is
//! idempotent (canonical(parse(canonical(x))) == canonical(x)) and keeps the value; the only
//! encodings that are not JSON again are those of strings with control characters, which
//! canonical JSON writes raw (as securesystemslib does).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tuf::canonical::encode;

fn has_control_char(v: &Value) -> bool {
    let ctl = |s: &str| s.chars().any(|c| c < ' ');
    match v {
        Value::String(s) => ctl(s),
        Value::Array(a) => a.iter().any(has_control_char),
        Value::Object(m) => m.iter().any(|(k, v)| ctl(k) || has_control_char(v)),
        _ => false,
    }
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => !(n.is_i64() || n.is_u64()),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(m) => m.values().any(has_float),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(x) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(c) = encode(&x) else {
        assert!(has_float(&x), "only floats have no canonical form: {x}");
        return;
    };
    assert!(!has_float(&x), "a float was encoded: {x}");
    match serde_json::from_slice::<Value>(&c) {
        Ok(y) => {
            assert_eq!(x, y, "the canonical form changed the value");
            let c2 = encode(&y).expect("re-encoding a canonical value");
            assert_eq!(c, c2, "canonical JSON is not idempotent");
        }
        Err(e) => assert!(
            has_control_char(&x),
            "canonical form of a value without control characters is not JSON: {e}"
        ),
    }
});
