//! The TUF 1.0 metadata model. Every object keeps the fields it does not know in `unknown`, so
//! that metadata written by newer tools round-trips and stays covered by its signatures.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// The four top-level role names.
pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

/// One signature of a metadata envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Signature {
    pub keyid: String,
    pub sig: String,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

/// The public part of a key as it appears in root or delegations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Key {
    pub keytype: String,
    pub scheme: String,
    pub keyval: KeyVal,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyVal {
    pub public: String,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

/// Key ids and threshold of a role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: u64,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Root {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_snapshot: Option<bool>,
    pub keys: BTreeMap<String, Key>,
    pub roles: BTreeMap<String, RoleKeys>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

/// Version, length and hashes of a metadata file as listed in timestamp or snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MetaFile {
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Timestamp {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub meta: BTreeMap<String, MetaFile>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

impl Timestamp {
    /// The snapshot entry (validated to exist when the timestamp was parsed).
    pub fn snapshot_meta(&self) -> Option<&MetaFile> {
        self.meta.get("snapshot.json")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Snapshot {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub meta: BTreeMap<String, MetaFile>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

/// A target file: its signed length, hashes and optional application data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DelegatedRole {
    pub name: String,
    pub keyids: Vec<String>,
    pub threshold: u64,
    #[serde(default)]
    pub terminating: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

/// TAP 15 succinct hash-bin delegation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SuccinctRoles {
    pub keyids: Vec<String>,
    pub threshold: u64,
    pub bit_length: u32,
    pub name_prefix: String,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Delegations {
    pub keys: BTreeMap<String, Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DelegatedRole>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Targets {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub targets: TargetMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

// Deserialized by hand (not derived) so that the `targets` object can be captured as raw JSON:
// a derived implementation with `flatten` would buffer it field by field.
impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Targets;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a targets object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Targets, A::Error> {
                use serde::de::Error as _;
                let (mut type_, mut spec_version, mut version, mut expires) =
                    (None, None, None, None);
                let (mut targets, mut delegations, mut unknown) = (None, None, Map::new());
                while let Some(key) = m.next_key::<String>()? {
                    let dup = |k: &str| A::Error::custom(format!("duplicate field `{k}`"));
                    match key.as_str() {
                        "_type" if type_.is_none() => type_ = Some(m.next_value::<String>()?),
                        "spec_version" if spec_version.is_none() => {
                            spec_version = Some(m.next_value::<String>()?)
                        }
                        "version" if version.is_none() => version = Some(m.next_value::<u64>()?),
                        "expires" if expires.is_none() => expires = Some(m.next_value::<String>()?),
                        "targets" if targets.is_none() => {
                            targets = Some(m.next_value::<TargetMap>()?)
                        }
                        "delegations" if delegations.is_none() => {
                            delegations = Some(m.next_value::<Option<Delegations>>()?)
                        }
                        "_type" | "spec_version" | "version" | "expires" | "targets"
                        | "delegations" => return Err(dup(&key)),
                        _ => {
                            let v = m.next_value::<Value>()?;
                            if unknown.insert(key.clone(), v).is_some() {
                                return Err(dup(&key));
                            }
                        }
                    }
                }
                let missing = |k: &'static str| A::Error::missing_field(k);
                Ok(Targets {
                    type_: type_.ok_or_else(|| missing("_type"))?,
                    spec_version: spec_version.ok_or_else(|| missing("spec_version"))?,
                    version: version.ok_or_else(|| missing("version"))?,
                    expires: expires.ok_or_else(|| missing("expires"))?,
                    targets: targets.ok_or_else(|| missing("targets"))?,
                    delegations: delegations.flatten(),
                    unknown,
                })
            }
        }
        d.deserialize_map(V)
    }
}

type ParsedTargets = std::result::Result<BTreeMap<String, TargetFile>, String>;

/// The `targets` object of targets metadata. When read from JSON it is kept as raw text and
/// parsed on first use: a refresh verifies signatures, hashes and versions over the bytes, and
/// only a lookup needs the (possibly 10,000s of) entries as structures.
#[derive(Default)]
pub struct TargetMap {
    raw: Option<Box<serde_json::value::RawValue>>,
    parsed: std::sync::OnceLock<ParsedTargets>,
}

impl TargetMap {
    /// A map of the given entries.
    pub fn from_map(map: BTreeMap<String, TargetFile>) -> Self {
        let parsed = std::sync::OnceLock::new();
        let _ = parsed.set(Ok(map));
        TargetMap { raw: None, parsed }
    }

    /// The entries; an error names the malformed entry. Crate-private: outside this crate,
    /// targets are read only through the delegation search, which checks each role's scope.
    pub(crate) fn map(&self) -> std::result::Result<&BTreeMap<String, TargetFile>, String> {
        self.parsed
            .get_or_init(|| {
                let Some(raw) = &self.raw else {
                    return Ok(BTreeMap::new());
                };
                let map: BTreeMap<String, TargetFile> =
                    serde_json::from_str(raw.get()).map_err(|e| format!("targets: {e}"))?;
                for (path, t) in &map {
                    if t.hashes.is_empty() {
                        return Err(format!("target {path:?} has no hashes"));
                    }
                }
                Ok(map)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The entries, for editing.
    pub(crate) fn map_mut(
        &mut self,
    ) -> std::result::Result<&mut BTreeMap<String, TargetFile>, String> {
        self.map()?;
        self.raw = None;
        match self.parsed.get_mut() {
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) => Err(e.clone()),
            None => Err("targets not parsed".into()),
        }
    }

    /// One entry.
    pub(crate) fn get(&self, path: &str) -> std::result::Result<Option<&TargetFile>, String> {
        Ok(self.map()?.get(path))
    }
}

impl Clone for TargetMap {
    fn clone(&self) -> Self {
        let parsed = std::sync::OnceLock::new();
        if let Some(p) = self.parsed.get() {
            let _ = parsed.set(p.clone());
        }
        TargetMap {
            raw: self.raw.clone(),
            parsed,
        }
    }
}

impl PartialEq for TargetMap {
    fn eq(&self, other: &Self) -> bool {
        self.map() == other.map()
    }
}
impl Eq for TargetMap {}

impl std::fmt::Debug for TargetMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.map() {
            Ok(m) => f.debug_map().entries(m.iter()).finish(),
            Err(e) => write!(f, "<malformed: {e}>"),
        }
    }
}

impl Serialize for TargetMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match (self.parsed.get(), &self.raw) {
            (Some(Ok(m)), _) => m.serialize(s),
            (_, Some(raw)) => raw.serialize(s),
            (Some(Err(e)), None) => Err(serde::ser::Error::custom(e)),
            (None, None) => BTreeMap::<String, TargetFile>::new().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for TargetMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        if !raw.get().starts_with('{') {
            return Err(serde::de::Error::custom("targets is not an object"));
        }
        Ok(TargetMap {
            raw: Some(raw),
            parsed: std::sync::OnceLock::new(),
        })
    }
}

/// Parse an expiry in the TUF form `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_expires(role: &str, s: &str) -> Result<OffsetDateTime> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::PrimitiveDateTime::parse(s, &fmt)
        .map(|t| t.assume_utc())
        .map_err(|e| {
            Error::malformed(
                role,
                format!("expires {s:?} is not YYYY-MM-DDTHH:MM:SSZ: {e}"),
            )
        })
}

/// Format a time as a TUF expiry (whole seconds, UTC).
pub fn format_expires(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Common header of every role, checked on every parse.
pub(crate) trait Common {
    const TYPE: &'static str;
    fn type_(&self) -> &str;
    fn spec_version(&self) -> &str;
    fn version(&self) -> u64;
    fn expires(&self) -> &str;
    /// Role-specific structural checks.
    fn check(&self, role: &str) -> Result<()>;
}

macro_rules! common {
    ($t:ty, $name:literal) => {
        impl Common for $t {
            const TYPE: &'static str = $name;
            fn type_(&self) -> &str {
                &self.type_
            }
            fn spec_version(&self) -> &str {
                &self.spec_version
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> &str {
                &self.expires
            }
            fn check(&self, role: &str) -> Result<()> {
                self.check_role(role)
            }
        }
    };
}
common!(Root, "root");
common!(Timestamp, "timestamp");
common!(Snapshot, "snapshot");
common!(Targets, "targets");

/// Check that a spec version is `1.x` or `1.x.y`.
pub(crate) fn check_spec_version(role: &str, v: &str) -> Result<()> {
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !(2..=3).contains(&parts.len()) || !numeric {
        return Err(Error::malformed(
            role,
            format!("spec_version {v:?} is not a version"),
        ));
    }
    if parts[0] != "1" {
        return Err(Error::malformed(
            role,
            format!("spec_version {v:?} is not supported (major version must be 1)"),
        ));
    }
    Ok(())
}

fn check_role_keys(role: &str, what: &str, keyids: &[String], threshold: u64) -> Result<()> {
    if threshold < 1 {
        return Err(Error::malformed(
            role,
            format!("{what}: threshold must be at least 1"),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for k in keyids {
        if !seen.insert(k) {
            return Err(Error::malformed(
                role,
                format!("{what}: key id {k} listed twice"),
            ));
        }
    }
    Ok(())
}

fn check_hashes(role: &str, what: &str, hashes: &BTreeMap<String, String>) -> Result<()> {
    for (alg, h) in hashes {
        if h.is_empty() || h.len() % 2 != 0 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::malformed(
                role,
                format!("{what}: {alg} hash is not hex"),
            ));
        }
    }
    Ok(())
}

impl Root {
    fn check_role(&self, role: &str) -> Result<()> {
        for name in TOP_LEVEL_ROLES {
            let r = self
                .roles
                .get(name)
                .ok_or_else(|| Error::malformed(role, format!("roles lacks {name}")))?;
            // Key ids without a key in `keys` are allowed: they can never sign.
            check_role_keys(role, name, &r.keyids, r.threshold)?;
        }
        if self.roles.len() != 4 {
            return Err(Error::malformed(
                role,
                "roles has entries besides the four top-level roles",
            ));
        }
        Ok(())
    }

    /// Keys and threshold of a top-level role.
    pub fn role(&self, name: &str) -> Option<&RoleKeys> {
        self.roles.get(name)
    }
}

impl Timestamp {
    fn check_role(&self, role: &str) -> Result<()> {
        if self.meta.len() != 1 || self.snapshot_meta().is_none() {
            return Err(Error::malformed(
                role,
                "meta must list exactly snapshot.json",
            ));
        }
        for (name, m) in &self.meta {
            m.check(role, name)?;
        }
        Ok(())
    }
}

impl MetaFile {
    fn check(&self, role: &str, name: &str) -> Result<()> {
        if self.version < 1 {
            return Err(Error::malformed(
                role,
                format!("meta {name}: version must be at least 1"),
            ));
        }
        if let Some(h) = &self.hashes {
            if h.is_empty() {
                return Err(Error::malformed(role, format!("meta {name}: empty hashes")));
            }
            check_hashes(role, name, h)?;
        }
        Ok(())
    }
}

impl Snapshot {
    fn check_role(&self, role: &str) -> Result<()> {
        for (name, m) in &self.meta {
            m.check(role, name)?;
        }
        Ok(())
    }
}

impl Targets {
    fn check_role(&self, role: &str) -> Result<()> {
        // The target entries themselves are checked when first used (see TargetMap).
        if let Some(d) = &self.delegations {
            match (&d.roles, &d.succinct_roles) {
                (Some(_), Some(_)) => {
                    return Err(Error::malformed(
                        role,
                        "delegations has both roles and succinct_roles",
                    ))
                }
                (None, None) => {
                    return Err(Error::malformed(
                        role,
                        "delegations has neither roles nor succinct_roles",
                    ))
                }
                (Some(roles), None) => {
                    let mut names = std::collections::BTreeSet::new();
                    for r in roles {
                        if !names.insert(r.name.as_str()) {
                            return Err(Error::malformed(
                                role,
                                format!("delegated role {:?} listed twice", r.name),
                            ));
                        }
                        if TOP_LEVEL_ROLES.contains(&r.name.as_str()) {
                            return Err(Error::malformed(
                                role,
                                format!("delegated role may not be named {:?}", r.name),
                            ));
                        }
                        if r.paths.is_some() && r.path_hash_prefixes.is_some() {
                            return Err(Error::malformed(
                                role,
                                format!(
                                    "delegated role {:?} has both paths and path_hash_prefixes",
                                    r.name
                                ),
                            ));
                        }
                        check_role_keys(role, &r.name, &r.keyids, r.threshold)?;
                    }
                }
                (None, Some(s)) => {
                    if !(1..=32).contains(&s.bit_length) {
                        return Err(Error::malformed(
                            role,
                            "succinct_roles bit_length must be 1..=32",
                        ));
                    }
                    check_role_keys(role, &s.name_prefix, &s.keyids, s.threshold)?;
                }
            }
        }
        Ok(())
    }
}

/// A metadata file split into signatures and the signed object, before any verification.
/// `signed_raw` is the exact text of the signed object as it appears in the file.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub signatures: Vec<Signature>,
    pub signed_raw: &'a str,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    signatures: Vec<Signature>,
    #[serde(borrow)]
    signed: &'a serde_json::value::RawValue,
}

impl<'a> Envelope<'a> {
    /// Parse the outer object of a metadata file (the signed object is only scanned here).
    pub fn parse(role: &str, bytes: &'a [u8]) -> Result<Self> {
        let raw: RawEnvelope<'a> = serde_json::from_slice(bytes)
            .map_err(|e| Error::malformed(role, format!("not a metadata envelope: {e}")))?;
        let text = raw.signed.get();
        if !text.starts_with('{') {
            return Err(Error::malformed(role, "\"signed\" is not an object"));
        }
        Ok(Envelope {
            signatures: raw.signatures,
            signed_raw: text,
        })
    }

    /// Interpret the signed object as role type `T`, checking `_type`, `spec_version`, `version`,
    /// `expires` syntax and the structure of the role.
    pub(crate) fn typed<T: Common + serde::de::DeserializeOwned>(&self, role: &str) -> Result<T> {
        let t: T = serde_json::from_str(self.signed_raw).map_err(|e| Error::malformed(role, e))?;
        if t.type_() != T::TYPE {
            return Err(Error::malformed(
                role,
                format!("_type is {:?}, expected {:?}", t.type_(), T::TYPE),
            ));
        }
        check_spec_version(role, t.spec_version())?;
        if t.version() < 1 {
            return Err(Error::malformed(role, "version must be at least 1"));
        }
        parse_expires(role, t.expires())?;
        t.check(role)?;
        Ok(t)
    }
}

/// Serialize a signed object and its signatures into a metadata file. The signed object is
/// written in canonical form, so that clients can verify signatures over the file's own bytes
/// without re-encoding.
pub fn envelope_bytes(signed: &Value, signatures: &[Signature]) -> Vec<u8> {
    // Canonical JSON does not escape control characters (PEM keys hold newlines), so such
    // objects are written as ordinary JSON; clients then re-encode them to verify.
    let canonical = match crate::canonical::encode(signed) {
        Ok(c) if !c.iter().any(|b| *b < 0x20) => c,
        _ => {
            let v = serde_json::json!({ "signatures": signatures, "signed": signed });
            let mut out = serde_json::to_vec(&v).unwrap_or_default();
            out.push(b'\n');
            return out;
        }
    };
    let mut out = Vec::with_capacity(canonical.len() + 256);
    out.extend_from_slice(b"{\"signatures\":");
    out.extend_from_slice(&serde_json::to_vec(signatures).unwrap_or_else(|_| b"[]".to_vec()));
    out.extend_from_slice(b",\"signed\":");
    out.extend_from_slice(&canonical);
    out.extend_from_slice(b"}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_round_trip_and_strictness() {
        let t = parse_expires("x", "2030-01-02T03:04:05Z").unwrap();
        assert_eq!(format_expires(t), "2030-01-02T03:04:05Z");
        assert!(parse_expires("x", "2030-01-02T03:04:05+00:00").is_err());
        assert!(parse_expires("x", "2030-01-02").is_err());
    }

    #[test]
    fn spec_version_major_must_be_one() {
        assert!(check_spec_version("r", "1.0.31").is_ok());
        assert!(check_spec_version("r", "1.0").is_ok());
        assert!(check_spec_version("r", "2.0.0").is_err());
        assert!(check_spec_version("r", "1").is_err());
        assert!(check_spec_version("r", "1.x.0").is_err());
    }

    #[test]
    fn unknown_fields_survive_round_trip() {
        let v = serde_json::json!({"keytype": "ed25519", "scheme": "ed25519",
            "keyval": {"public": "00", "extra": 1}, "x-custom": [1, 2]});
        let k: Key = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&k).unwrap(), v);
    }
}
