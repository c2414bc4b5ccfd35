//! Canonical JSON in the OLPC form used by TUF (securesystemslib's `encode_canonical`):
//! no insignificant whitespace, object keys sorted by code point, only `"` and `\` escaped
//! in strings, integers only (no floats).

use serde_json::Value;

/// A value that has no canonical form (TUF metadata never contains floats).
#[derive(Debug, thiserror::Error)]
#[error("value has no canonical JSON form: {0}")]
pub struct CanonicalError(String);

/// Encode `value` in canonical JSON.
pub fn encode(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(CanonicalError(format!("floating point number {n}")));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // UTF-8 byte order equals code point order.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write(&map[key], out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_escapes_only_quote_and_backslash() {
        let v = json!({"b": 1, "a": [true, null, "x\"y\\z\n"], "é": -3, "B": {}});
        let got = String::from_utf8(encode(&v).unwrap()).unwrap();
        assert_eq!(
            got,
            "{\"B\":{},\"a\":[true,null,\"x\\\"y\\\\z\n\"],\"b\":1,\"é\":-3}"
        );
    }

    #[test]
    fn rejects_floats() {
        assert!(encode(&json!({"a": 1.5})).is_err());
    }

    use proptest::prelude::*;

    /// JSON values as TUF metadata holds them: integers (no floats), strings with any
    /// character but controls (canonical JSON writes those raw, so they are not JSON again),
    /// arrays and objects.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            "[^\\p{Cc}]{0,8}".prop_map(Value::String),
            "[\"\\\\a-c\u{e9}\u{10000}]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("[^\\p{Cc}]{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// canonical(parse(canonical(x))) == canonical(x), and the canonical form is JSON that
        /// means the same value (what lets a verifier re-encode a pretty-printed file).
        #[test]
        fn canonical_form_is_idempotent(x in json_value()) {
            let c = encode(&x).unwrap();
            let y: Value = serde_json::from_slice(&c).unwrap();
            prop_assert_eq!(&y, &x);
            prop_assert_eq!(encode(&y).unwrap(), c.clone());
            // Whatever spelling the value came in, the canonical form is the same.
            let pretty = serde_json::to_vec_pretty(&x).unwrap();
            let z: Value = serde_json::from_slice(&pretty).unwrap();
            prop_assert_eq!(encode(&z).unwrap(), c);
        }
    }
}
