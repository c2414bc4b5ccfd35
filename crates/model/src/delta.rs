//! Deltas on top of the content model: a delta is an ordinary signed target that turns the
//! file of one version of a component (the *base*) into the file of a later version (the
//! target it *produces*), described by the `updraft_delta` object of its `custom` field.
//!
//! A delta is only transport. Its path sits next to the file it produces
//! (`<produced path>.from-<from version>.delta`), so the delegations that cover a component's
//! files cover its deltas; it carries no `custom.updraft` object, so nothing ever installs it;
//! and whatever it produces is used only once it matches the signed length and hashes of the
//! full target.

use serde::{Deserialize, Serialize};

use crate::content::{check_component, Version};

/// The key of a delta's description in a target's `custom` object.
pub const CUSTOM_KEY: &str = "updraft_delta";

/// How a delta is encoded (see the `updraft-delta` crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// A zstd frame compressed with the base as reference prefix (`zstd --patch-from`).
    Zstd,
    /// A bsdiff 4 patch.
    Bsdiff,
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Algorithm::Zstd => "zstd",
            Algorithm::Bsdiff => "bsdiff",
        })
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "zstd" => Ok(Algorithm::Zstd),
            "bsdiff" => Ok(Algorithm::Bsdiff),
            _ => Err(format!("delta algorithm {s:?} is not zstd or bsdiff")),
        }
    }
}

/// The `custom.updraft_delta` object of a delta target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaInfo {
    pub component: String,
    /// The version the delta applies to.
    pub from: String,
    /// The version it produces.
    pub to: String,
    pub algorithm: Algorithm,
    /// Target path of the file of `from` the delta applies to.
    pub base: String,
    /// Target path of the full file of `to` the delta produces; its signed length and hashes
    /// decide whether the result is used.
    pub produces: String,
}

/// Why a target's `updraft_delta` object is not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("delta {path:?} ignored: {reason}")]
pub struct Invalid {
    pub path: String,
    pub reason: String,
}

impl DeltaInfo {
    /// The delta's own target path: next to the file it produces.
    pub fn target_path(&self) -> String {
        format!("{}.from-{}.delta", self.produces, self.from)
    }

    /// The value for the delta target's `custom` field.
    pub fn to_custom(&self) -> serde_json::Value {
        serde_json::json!({ CUSTOM_KEY: self })
    }

    /// The delta described by the target at `path`, bound to it: `base` and `produces` are files
    /// of `from` and `to` of the component (`content/<component>/<version>/<file>`), `from` is
    /// older than `to`, and the path is [`DeltaInfo::target_path`]. `Ok(None)`: not a delta.
    pub fn for_target(
        path: &str,
        custom: Option<&serde_json::Value>,
    ) -> Result<Option<Self>, Invalid> {
        let Some(obj) = custom.and_then(|c| c.get(CUSTOM_KEY)) else {
            return Ok(None);
        };
        let bad = |reason: String| Invalid {
            path: path.to_string(),
            reason,
        };
        let info: DeltaInfo =
            serde_json::from_value(obj.clone()).map_err(|e| bad(e.to_string()))?;
        check_component(&info.component).map_err(|e| bad(e.to_string()))?;
        let from: Version = info
            .from
            .parse()
            .map_err(|e: crate::Error| bad(e.to_string()))?;
        let to: Version = info
            .to
            .parse()
            .map_err(|e: crate::Error| bad(e.to_string()))?;
        if from >= to {
            return Err(bad(format!(
                "from {} is not older than to {}",
                info.from, info.to
            )));
        }
        for (field, p, version) in [
            ("base", &info.base, &info.from),
            ("produces", &info.produces, &info.to),
        ] {
            if !is_file_of(p, &info.component, version) {
                return Err(bad(format!(
                    "{field} {p:?} is not a file of {} {version}",
                    info.component
                )));
            }
        }
        if path != info.target_path() {
            return Err(bad(format!("its path should be {:?}", info.target_path())));
        }
        Ok(Some(info))
    }
}

/// Whether `path` is `content/<component>/<version>/<file>` with a plain file name.
fn is_file_of(path: &str, component: &str, version: &str) -> bool {
    match path.split('/').collect::<Vec<_>>()[..] {
        ["content", c, v, f] => {
            c == component && v == version && !f.is_empty() && f != "." && f != ".."
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> DeltaInfo {
        DeltaInfo {
            component: "antimalware.pattern".into(),
            from: "18.1".into(),
            to: "18.2".into(),
            algorithm: Algorithm::Zstd,
            base: "content/antimalware.pattern/18.1/pattern.bin".into(),
            produces: "content/antimalware.pattern/18.2/pattern.bin".into(),
        }
    }

    #[test]
    fn a_delta_is_bound_to_its_path_and_its_component_files() {
        let ok = info();
        let path = ok.target_path();
        assert_eq!(
            path,
            "content/antimalware.pattern/18.2/pattern.bin.from-18.1.delta"
        );
        assert_eq!(
            DeltaInfo::for_target(&path, Some(&ok.to_custom())),
            Ok(Some(ok.clone()))
        );
        assert_eq!(DeltaInfo::for_target(&path, None), Ok(None));
        let plain = serde_json::json!({"updraft": {}});
        assert_eq!(DeltaInfo::for_target(&path, Some(&plain)), Ok(None));

        let mut cases: Vec<(String, DeltaInfo)> = Vec::new();
        let mut d = ok.clone();
        d.base = "content/other/18.1/pattern.bin".into();
        cases.push((path.clone(), d));
        let mut d = ok.clone();
        d.produces = "content/antimalware.pattern/18.3/pattern.bin".into();
        cases.push((d.target_path(), d));
        let mut d = ok.clone();
        d.from = "18.3".into();
        d.base = "content/antimalware.pattern/18.3/pattern.bin".into();
        cases.push((d.target_path(), d));
        let mut d = ok.clone();
        d.base = "content/antimalware.pattern/18.1/../x".into();
        cases.push((path.clone(), d));
        cases.push((
            "content/antimalware.pattern/18.2/other.delta".into(),
            ok.clone(),
        ));
        for (p, d) in cases {
            assert!(
                DeltaInfo::for_target(&p, Some(&d.to_custom())).is_err(),
                "{d:?} at {p}"
            );
        }
        let junk = serde_json::json!({CUSTOM_KEY: {"from": 1}});
        assert!(DeltaInfo::for_target(&path, Some(&junk)).is_err());
    }
}
