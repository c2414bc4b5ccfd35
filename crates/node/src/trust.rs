//! What a host trusts, for its heartbeat: the versions of the root and timestamp its TUF client
//! persisted (only after verifying them) and the timestamp's expiry. Read for reporting only;
//! nothing is decided on it.

use std::path::Path;

use model::protocol::TrustState;

/// The trust state persisted in `dir` (`timestamp.json`, and `root.json` once the root moved
/// past the trust anchor `anchor`), if a timestamp is there.
pub fn persisted(dir: &Path, anchor: &[u8]) -> Option<TrustState> {
    let signed_of = |bytes: &[u8]| -> Option<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        v.get("signed").cloned()
    };
    let signed = |name: &str| signed_of(&std::fs::read(dir.join(name)).ok()?);
    let root = signed("root.json").or_else(|| signed_of(anchor))?;
    let ts = signed("timestamp.json")?;
    Some(TrustState {
        root_version: root.get("version")?.as_u64()?,
        timestamp_version: ts.get("version")?.as_u64()?,
        timestamp_expires: ts.get("expires")?.as_str()?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_versions_and_expiry_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let anchor = br#"{"signed":{"version":1}}"#;
        assert_eq!(super::persisted(dir.path(), anchor), None);
        std::fs::write(
            dir.path().join("timestamp.json"),
            br#"{"signed":{"version":42,"expires":"2026-12-05T00:00:00Z"}}"#,
        )
        .unwrap();
        let t = super::persisted(dir.path(), anchor).unwrap();
        assert_eq!(
            (t.root_version, t.timestamp_version),
            (1, 42),
            "the anchor's root"
        );
        std::fs::write(dir.path().join("root.json"), br#"{"signed":{"version":3}}"#).unwrap();
        let t = super::persisted(dir.path(), anchor).unwrap();
        assert_eq!((t.root_version, t.timestamp_version), (3, 42));
        assert_eq!(t.timestamp_expires, "2026-12-05T00:00:00Z");
    }
}
