//! The content model on top of TUF: a repository target is one file of one version of one
//! component, described by the `updraft` object in the target's `custom` field.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors in content descriptions.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error(
        "version {0:?} is not a dotted numeric version such as 18.523.00, 9.5.1519 or 20.0.0-1234"
    )]
    Version(String),
    #[error("kind {0:?} is not one of pattern, engine, rules, program, patch")]
    Kind(String),
    #[error("component {0:?} is not a dotted name of lower-case letters, digits, '-' and '_' (e.g. antimalware.pattern)")]
    Component(String),
    #[error(
        "build requirement {0:?} is not a version or constraints such as >=9.5.1514 or >=9.5,<9.6"
    )]
    Requirement(String),
    #[error("file name {0:?} is not a plain file name")]
    FileName(String),
    #[error("a patch needs {0}")]
    PatchField(&'static str),
    #[error("{0} is only meaningful for patches")]
    NotPatch(&'static str),
    #[error("a patch's product ({product:?}) must be its component ({component:?}): the target path content/<product>/<build>/<file> names what it patches")]
    PatchProduct { product: String, component: String },
    #[error("target {path:?} is not content/<component>/<version>/<file>")]
    Path { path: String },
    #[error("target {path:?}: custom.updraft.{field} is {custom:?} but the path says {from_path:?}; the path is the identity, so the target is ignored")]
    Disagrees {
        path: String,
        field: &'static str,
        custom: String,
        from_path: String,
    },
    #[error("target {path:?}: custom.updraft is not a valid content description: {reason}")]
    Custom { path: String, reason: String },
    #[error("patch id {0:?} is not a name: use 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit, without \"..\" (e.g. CP-1519)")]
    PatchId(String),
}

/// What a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Pattern,
    Engine,
    Rules,
    Program,
    Patch,
}

impl FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "pattern" => Ok(Kind::Pattern),
            "engine" => Ok(Kind::Engine),
            "rules" => Ok(Kind::Rules),
            "program" => Ok(Kind::Program),
            "patch" => Ok(Kind::Patch),
            _ => Err(Error::Kind(s.to_string())),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Kind::Pattern => "pattern",
            Kind::Engine => "engine",
            Kind::Rules => "rules",
            Kind::Program => "program",
            Kind::Patch => "patch",
        };
        f.write_str(s)
    }
}

/// A dotted numeric version with an optional build number (`20.0.0-1234`), ordered numerically
/// field by field (missing fields count as 0), then by build. The original text is kept.
#[derive(Debug, Clone, Eq)]
pub struct Version {
    text: String,
    fields: Vec<u64>,
    build: Option<u64>,
}

impl Version {
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Version {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::Version(s.to_string());
        let (main, build) = match s.split_once('-') {
            Some((m, b)) => (m, Some(b)),
            None => (s, None),
        };
        let num = |p: &str| -> Result<u64, Error> {
            if p.is_empty() || p.len() > 18 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let fields = main.split('.').map(num).collect::<Result<Vec<_>, _>>()?;
        let build = build.map(num).transpose()?;
        Ok(Version {
            text: s.to_string(),
            fields,
            build,
        })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.fields.len().max(other.fields.len());
        for i in 0..n {
            let a = self.fields.get(i).copied().unwrap_or(0);
            let b = other.fields.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        self.build.unwrap_or(0).cmp(&other.build.unwrap_or(0))
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A build requirement: a bare version means "at least", or comma-separated constraints
/// (`>=`, `>`, `<=`, `<`, `=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    text: String,
    constraints: Vec<(Op, Version)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl FromStr for Requirement {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let mut constraints = Vec::new();
        for part in s.split(',').map(str::trim) {
            let (op, v) = if let Some(v) = part.strip_prefix(">=") {
                (Op::Ge, v)
            } else if let Some(v) = part.strip_prefix("<=") {
                (Op::Le, v)
            } else if let Some(v) = part.strip_prefix('>') {
                (Op::Gt, v)
            } else if let Some(v) = part.strip_prefix('<') {
                (Op::Lt, v)
            } else if let Some(v) = part.strip_prefix('=') {
                (Op::Eq, v)
            } else {
                (Op::Ge, part)
            };
            let v: Version = v
                .trim()
                .parse()
                .map_err(|_| Error::Requirement(s.to_string()))?;
            constraints.push((op, v));
        }
        Ok(Requirement {
            text: s.to_string(),
            constraints,
        })
    }
}

impl Requirement {
    /// Whether `build` satisfies every constraint.
    pub fn matches(&self, build: &Version) -> bool {
        self.constraints.iter().all(|(op, v)| match op {
            Op::Ge => build >= v,
            Op::Gt => build > v,
            Op::Le => build <= v,
            Op::Lt => build < v,
            Op::Eq => build == v,
        })
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Check a component name such as `antimalware.pattern`.
pub fn check_component(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Component(name.to_string()))
    }
}

/// Longest patch id accepted.
pub const MAX_PATCH_ID_LEN: usize = 64;

/// Check a patch id such as `CP-1519`: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` without `..`. A patch id
/// is a name, never a path: agents use it to name their working files, so anything that could
/// be read as a path (`/`, `\`, `..`, a leading `.` or `-`) is refused.
pub fn check_patch_id(id: &str) -> Result<(), Error> {
    let bytes = id.as_bytes();
    let ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.len() <= MAX_PATCH_ID_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !id.contains("..");
    if ok {
        Ok(())
    } else {
        Err(Error::PatchId(id.to_string()))
    }
}

/// A patch id checked by [`check_patch_id`]: safe to use as (part of) a file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PatchId(String);

impl PatchId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PatchId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        check_patch_id(s)?;
        Ok(PatchId(s.to_string()))
    }
}

impl fmt::Display for PatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `custom.updraft` object of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentInfo {
    pub kind: Kind,
    pub component: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_build: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// The publisher marks this version urgent: hosts install it outside their maintenance
    /// window too (engines, programs and patches otherwise wait for it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub urgent: bool,
}

impl ContentInfo {
    /// Validate every field: kind-specific requirements, version and requirement syntax.
    pub fn validate(&self) -> Result<(), Error> {
        check_component(&self.component)?;
        self.version.parse::<Version>()?;
        if let Some(b) = &self.build {
            b.parse::<Version>()?;
        }
        if let Some(r) = &self.requires_build {
            r.parse::<Requirement>()?;
        }
        if self.kind == Kind::Patch {
            if self.product.is_none() {
                return Err(Error::PatchField("--product"));
            }
            if self.requires_build.is_none() {
                return Err(Error::PatchField("--requires-build"));
            }
            if self.build.is_none() {
                return Err(Error::PatchField("--build"));
            }
            match &self.patch_id {
                None => return Err(Error::PatchField("--patch-id")),
                Some(id) => check_patch_id(id)?,
            }
            if self.product.as_deref() != Some(self.component.as_str()) {
                return Err(Error::PatchProduct {
                    product: self.product.clone().unwrap_or_default(),
                    component: self.component.clone(),
                });
            }
        } else {
            if self.requires_build.is_some() {
                return Err(Error::NotPatch("--requires-build"));
            }
            if self.patch_id.is_some() {
                return Err(Error::NotPatch("--patch-id"));
            }
        }
        Ok(())
    }

    /// The TUF target path `content/<component>/<version>/<file>`.
    pub fn target_path(&self, file_name: &str) -> Result<String, Error> {
        if file_name.is_empty()
            || file_name == "."
            || file_name == ".."
            || file_name.contains(['/', '\\', '\0'])
        {
            return Err(Error::FileName(file_name.to_string()));
        }
        Ok(format!(
            "content/{}/{}/{}",
            self.component, self.version, file_name
        ))
    }

    /// The value for the target's `custom` field.
    pub fn to_custom(&self) -> serde_json::Value {
        serde_json::json!({ "updraft": self })
    }

    /// The content description of the target at `path`, bound to the path: the component and
    /// version an agent acts on are those of `content/<component>/<version>/<file>`, and the
    /// `custom.updraft` object must agree with them (a patch's product is its component, so it
    /// is bound too). `Ok(None)`: the target carries no `updraft` object (not Updraft content).
    /// An error says why the target must be ignored; report it.
    pub fn for_target(
        path: &str,
        custom: Option<&serde_json::Value>,
    ) -> Result<Option<Self>, Error> {
        let Some(obj) = custom.and_then(|c| c.get("updraft")) else {
            return Ok(None);
        };
        let bad = |reason: String| Error::Custom {
            path: path.to_string(),
            reason,
        };
        let info: ContentInfo =
            serde_json::from_value(obj.clone()).map_err(|e| bad(e.to_string()))?;
        info.validate().map_err(|e| bad(e.to_string()))?;
        let (component, version) = match path.split('/').collect::<Vec<_>>()[..] {
            ["content", c, v, f] if !f.is_empty() => (c, v),
            _ => {
                return Err(Error::Path {
                    path: path.to_string(),
                })
            }
        };
        for (field, custom, from_path) in [
            ("component", info.component.as_str(), component),
            ("version", info.version.as_str(), version),
        ] {
            if custom != from_path {
                return Err(Error::Disagrees {
                    path: path.to_string(),
                    field,
                    custom: custom.to_string(),
                    from_path: from_path.to_string(),
                });
            }
        }
        Ok(Some(info))
    }

    /// Read the `updraft` object from a target's `custom` field, if it has a valid one.
    pub fn from_custom(custom: Option<&serde_json::Value>) -> Option<Self> {
        Self::parse_custom(custom)?.ok()
    }

    /// As [`ContentInfo::from_custom`], keeping why a described target is invalid: `None` when
    /// there is no `updraft` object of the expected shape, `Some(Err(_))` (with the object as it
    /// was read) when one of its fields fails [`ContentInfo::validate`].
    pub fn parse_custom(custom: Option<&serde_json::Value>) -> Option<Result<Self, (Self, Error)>> {
        let info: ContentInfo = serde_json::from_value(custom?.get("updraft")?.clone()).ok()?;
        Some(match info.validate() {
            Ok(()) => Ok(info),
            Err(e) => Err((info, e)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_identity_is_bound_to_the_path() {
        let info = |component: &str, version: &str| ContentInfo {
            kind: Kind::Pattern,
            component: component.into(),
            version: version.into(),
            product: None,
            requires_build: None,
            build: None,
            patch_id: None,
            platforms: vec![],
            urgent: false,
        };
        let custom = info("ips.rules", "2.0.0").to_custom();
        let ok = ContentInfo::for_target("content/ips.rules/2.0.0/p.dat", Some(&custom));
        assert_eq!(ok.unwrap().unwrap().component, "ips.rules");
        let lie = info("antimalware.pattern", "77.0.0").to_custom();
        let e = ContentInfo::for_target("content/ips.rules/2.0.0/p.dat", Some(&lie)).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Disagrees {
                    field: "component",
                    ..
                }
            ),
            "{e}"
        );
        let v = info("ips.rules", "2.0").to_custom();
        let e = ContentInfo::for_target("content/ips.rules/2.0.0/p.dat", Some(&v)).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Disagrees {
                    field: "version",
                    ..
                }
            ),
            "{e}"
        );
        for path in [
            "ips.rules/2.0.0/p.dat",
            "content/ips.rules/2.0.0/d/p.dat",
            "content/ips.rules/2.0.0/",
        ] {
            assert!(matches!(
                ContentInfo::for_target(path, Some(&custom)),
                Err(Error::Path { .. })
            ));
        }
        assert_eq!(ContentInfo::for_target("content/x/1/f", None), Ok(None));
        let junk = serde_json::json!({"updraft": {"kind": "virus"}});
        assert!(matches!(
            ContentInfo::for_target("content/x/1/f", Some(&junk)),
            Err(Error::Custom { .. })
        ));
    }

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn versions_order_numerically_field_by_field() {
        assert!(v("9.5.1519") > v("9.5.1514"));
        assert!(v("18.523.00") > v("18.99.99"));
        assert!(v("10.0") > v("9.99.99"));
        assert_eq!(v("1.0"), v("1.0.0"));
        assert!(v("20.0.0-1234") > v("20.0.0-999"));
        assert!(v("20.0.0-1") > v("20.0.0"));
        assert_eq!(v("18.523.00").to_string(), "18.523.00");
        for bad in ["", "1..2", "a.b", "1.2-", "-1", "1.2.3-x", "1.2 "] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn requirements() {
        let r: Requirement = "9.5.1514".parse().unwrap();
        assert!(r.matches(&v("9.5.1514")) && r.matches(&v("9.6")) && !r.matches(&v("9.5.1513")));
        let r: Requirement = ">=9.5,<9.6".parse().unwrap();
        assert!(r.matches(&v("9.5.9999")) && !r.matches(&v("9.6.0")));
        assert!("=>9".parse::<Requirement>().is_err());
    }

    #[test]
    fn patch_ids_are_names_never_paths() {
        for good in ["CP-1519", "cp_1519.2", "9", "A.b-c_d", &"x".repeat(64)] {
            assert!(check_patch_id(good).is_ok(), "{good:?}");
            assert_eq!(good.parse::<PatchId>().unwrap().as_str(), good);
        }
        for bad in [
            "",
            "..",
            ".hidden",
            "-rf",
            "../../../escaped",
            "a/b",
            "a\\b",
            "CP..1",
            "CP 1519",
            "CP-1519\n",
            "é",
            "a\0",
            &"x".repeat(65),
        ] {
            assert_eq!(
                check_patch_id(bad),
                Err(Error::PatchId(bad.to_string())),
                "{bad:?}"
            );
            assert!(bad.parse::<PatchId>().is_err());
        }
    }

    #[test]
    fn patch_fields_are_required_and_checked() {
        let mut c = ContentInfo {
            kind: Kind::Patch,
            component: "scanner".into(),
            version: "9.5.1519".into(),
            product: Some("scanner".into()),
            requires_build: Some(">=9.5.1514".into()),
            build: Some("9.5.1519".into()),
            patch_id: Some("CP-1519".into()),
            platforms: vec![],
            urgent: false,
        };
        c.validate().unwrap();
        assert_eq!(
            c.target_path("cp.tar").unwrap(),
            "content/scanner/9.5.1519/cp.tar"
        );
        assert!(c.target_path("../x").is_err());
        let back = ContentInfo::for_target("content/scanner/9.5.1519/cp.tar", Some(&c.to_custom()))
            .unwrap()
            .unwrap();
        assert_eq!(back, c);
        c.product = Some("agent".into());
        assert!(matches!(c.validate(), Err(Error::PatchProduct { .. })));
        c.product = Some("scanner".into());
        c.patch_id = Some("../../../escaped".into());
        assert_eq!(c.validate(), Err(Error::PatchId("../../../escaped".into())));
        assert!(ContentInfo::from_custom(Some(&c.to_custom())).is_none());
        assert!(matches!(
            ContentInfo::parse_custom(Some(&c.to_custom())),
            Some(Err((_, Error::PatchId(_))))
        ));
        c.patch_id = None;
        assert_eq!(c.validate(), Err(Error::PatchField("--patch-id")));
        c.kind = Kind::Pattern;
        c.component = "Bad Name".into();
        assert!(c.validate().is_err());
    }
}

#[cfg(test)]
mod version_order {
    use super::*;
    use proptest::prelude::*;

    /// Versions as publishers write them: 1-4 numeric fields (small ones, so that equal and
    /// zero-padded fields are common), an optional build.
    fn version() -> impl Strategy<Value = Version> {
        (
            proptest::collection::vec(0u64..4, 1..5),
            proptest::option::of(0u64..3),
        )
            .prop_map(|(fields, build)| {
                let mut s = fields
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(".");
                if let Some(b) = build {
                    s.push_str(&format!("-{b}"));
                }
                s.parse().unwrap()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The ordering is a total order consistent with equality: `cmp` is antisymmetric,
        /// transitive, and `==` exactly when `cmp` says equal (what sorting and picking the
        /// newest version rely on).
        #[test]
        fn version_ordering_is_a_total_order(a in version(), b in version(), c in version()) {
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a == b, a.cmp(&b) == Ordering::Equal);
            prop_assert_eq!(a.partial_cmp(&b), Some(a.cmp(&b)));
            if a <= b && b <= c {
                prop_assert!(a <= c, "{} <= {} <= {} but not {} <= {}", a, b, c, a, c);
            }
        }

        /// The text is kept, and parsing it again gives an equal version; a missing field
        /// counts as 0.
        #[test]
        fn version_text_round_trips(a in version()) {
            let again: Version = a.to_string().parse().unwrap();
            prop_assert_eq!(again.as_str(), a.as_str());
            prop_assert_eq!(&again, &a);
            let (main, build) = match a.as_str().split_once('-') {
                Some((m, b)) => (m.to_string(), format!("-{b}")),
                None => (a.as_str().to_string(), String::new()),
            };
            let padded: Version = format!("{main}.0{build}").parse().unwrap();
            prop_assert_eq!(&padded, &a);
        }

        /// A requirement `>=v` matches exactly the versions that are not older than `v`, and
        /// `=v` exactly the equal ones.
        #[test]
        fn requirements_agree_with_the_order(v in version(), build in version()) {
            let ge: Requirement = format!(">={v}").parse().unwrap();
            let eq: Requirement = format!("={v}").parse().unwrap();
            let lt: Requirement = format!("<{v}").parse().unwrap();
            prop_assert_eq!(ge.matches(&build), build >= v);
            prop_assert_eq!(eq.matches(&build), build == v);
            prop_assert_eq!(lt.matches(&build), !ge.matches(&build));
        }
    }
}
