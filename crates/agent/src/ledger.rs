//! The ledger (`products.json`): what the agent did to products and what it recorded, each kind
//! of fact under its own typed key, so that what one part writes another cannot miss.
//!
//! - builds changed by patches, and the patch ids applied, per product;
//! - the last recorded outcome per patch id (an outcome with the same message is recorded once);
//! - the versions of a component whose reload failed (not installed again);
//! - why a module is offline after a failed reload, per module and component.
//!
//! Earlier agents kept the last three in one string map `last_outcome` with keys `patch:{id}`,
//! `reload-failed:{component}:{version}` and `reload:{module}:{component}`; such a file is read
//! and migrated (see [`LedgerFile`]), so an agent upgraded in place records nothing twice.

use std::collections::{BTreeMap, BTreeSet};

use model::protocol::Outcome;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::state::{read_json, write_json, StateDir};

/// The last outcome recorded for a patch id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub outcome: Outcome,
    pub message: String,
}

/// `products.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "LedgerFile")]
pub struct Ledger {
    /// Builds changed by patches (override the configured `build`).
    pub builds: BTreeMap<String, String>,
    /// Patch ids applied, per product.
    pub applied: BTreeMap<String, BTreeSet<String>>,
    /// Last recorded outcome per patch id.
    pub patches: BTreeMap<String, Recorded>,
    /// component → version → why its reload failed: that version is not installed again.
    pub reload_failed: BTreeMap<String, BTreeMap<String, String>>,
    /// module → component → why the module is offline (its reload failed).
    pub module_faults: BTreeMap<String, BTreeMap<String, String>>,
    /// The ids of the manager's retry requests acted on, the newest last (at most
    /// [`MAX_RETRIED`]): each forgets a failed version once.
    pub retried: Vec<String>,
}

/// Retry ids remembered at most.
pub const MAX_RETRIED: usize = 100;

impl Ledger {
    /// Whether `message` is what was last recorded for patch `id` (then it is not recorded again).
    pub fn already_recorded(&self, id: &str, message: &str) -> bool {
        self.patches.get(id).is_some_and(|r| r.message == message)
    }

    pub fn set_recorded(&mut self, id: &str, outcome: Outcome, message: String) {
        self.patches
            .insert(id.to_string(), Recorded { outcome, message });
    }

    /// Forget what was recorded for patch `id`, so that its next outcome is recorded whatever
    /// it is (after a rollback the patch is tried afresh).
    pub fn forget_patch(&mut self, id: &str) {
        self.patches.remove(id);
    }

    pub fn is_applied(&self, product: &str, id: &str) -> bool {
        self.applied.get(product).is_some_and(|a| a.contains(id))
    }

    pub fn reload_failed(&self, component: &str, version: &str) -> bool {
        self.reload_failed
            .get(component)
            .is_some_and(|v| v.contains_key(version))
    }

    pub fn set_reload_failed(&mut self, component: &str, version: &str, why: String) {
        self.reload_failed
            .entry(component.to_string())
            .or_default()
            .insert(version.to_string(), why);
    }

    /// Act on the manager's retry requests not acted on yet: forget that their version's
    /// reload failed. Whether anything was forgotten (then the cycle plans again).
    pub fn take_retries(&mut self, retries: &[model::protocol::VersionRetry]) -> bool {
        let mut forgot = false;
        for r in retries {
            if self.retried.contains(&r.id) {
                continue;
            }
            self.retried.push(r.id.clone());
            if let Some(v) = self.reload_failed.get_mut(&r.component) {
                forgot |= v.remove(&r.version).is_some();
                if v.is_empty() {
                    self.reload_failed.remove(&r.component);
                }
            }
        }
        let extra = self.retried.len().saturating_sub(MAX_RETRIED);
        self.retried.drain(..extra);
        forgot
    }

    pub fn module_fault(&self, module: &str, component: &str) -> Option<&String> {
        self.module_faults.get(module)?.get(component)
    }

    pub fn set_module_fault(&mut self, module: &str, component: &str, why: String) {
        self.module_faults
            .entry(module.to_string())
            .or_default()
            .insert(component.to_string(), why);
    }

    pub fn clear_module_fault(&mut self, module: &str, component: &str) {
        if let Some(faults) = self.module_faults.get_mut(module) {
            faults.remove(component);
            if faults.is_empty() {
                self.module_faults.remove(module);
            }
        }
    }
}

/// `products.json` as any agent version wrote it: the typed maps, and the string map of
/// earlier agents, merged into them on load (the typed entry wins).
#[derive(Deserialize)]
struct LedgerFile {
    #[serde(default)]
    builds: BTreeMap<String, String>,
    #[serde(default)]
    applied: BTreeMap<String, BTreeSet<String>>,
    #[serde(default)]
    patches: BTreeMap<String, Recorded>,
    #[serde(default)]
    reload_failed: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    module_faults: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    last_outcome: BTreeMap<String, String>,
    #[serde(default)]
    retried: Vec<String>,
}

impl From<LedgerFile> for Ledger {
    fn from(f: LedgerFile) -> Self {
        let mut l = Ledger {
            builds: f.builds,
            applied: f.applied,
            patches: BTreeMap::new(),
            reload_failed: BTreeMap::new(),
            module_faults: BTreeMap::new(),
            retried: f.retried,
        };
        for (key, message) in f.last_outcome {
            l.migrate(&key, message);
        }
        l.patches.extend(f.patches);
        for (c, versions) in f.reload_failed {
            l.reload_failed.entry(c).or_default().extend(versions);
        }
        for (m, faults) in f.module_faults {
            l.module_faults.entry(m).or_default().extend(faults);
        }
        l
    }
}

impl Ledger {
    /// One entry of an earlier agent's `last_outcome` map. Component names hold no `:`, so the
    /// last `:` of `reload:{module}:{component}` and the first of
    /// `reload-failed:{component}:{version}` split them. Unknown keys are dropped.
    fn migrate(&mut self, key: &str, message: String) {
        if let Some(id) = key.strip_prefix("patch:") {
            let outcome = outcome_of_message(&message);
            self.set_recorded(id, outcome, message);
        } else if let Some(rest) = key.strip_prefix("reload-failed:") {
            if let Some((c, v)) = rest.split_once(':') {
                self.set_reload_failed(c, v, message);
            }
        } else if let Some(rest) = key.strip_prefix("reload:") {
            if let Some((m, c)) = rest.rsplit_once(':') {
                self.set_module_fault(m, c, message);
            }
        }
    }
}

/// The outcome an earlier agent recorded with `message` (it kept only the message; the outcome
/// is informational, the message decides whether an outcome is new).
fn outcome_of_message(message: &str) -> Outcome {
    if message.starts_with("not applicable") {
        Outcome::NotApplicable
    } else if message.starts_with("preflight failed") {
        Outcome::PreflightFailed
    } else if message.starts_with("refused ") && message.contains("it is not applied") {
        Outcome::Refused
    } else if message.contains(" -> ") && !message.contains(": ") {
        Outcome::Applied
    } else {
        Outcome::Failed
    }
}

impl StateDir {
    pub fn ledger(&self) -> Result<Ledger> {
        read_json(&self.dir.join("products.json"))
    }

    pub fn save_ledger(&self, v: &Ledger) -> Result<()> {
        write_json(&self.dir.join("products.json"), v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_forgets_a_failed_version_once() {
        use model::protocol::VersionRetry;
        let mut l = Ledger::default();
        l.set_reload_failed("a.pattern", "2", "exit 1".into());
        let r = [VersionRetry {
            id: "r1".into(),
            component: "a.pattern".into(),
            version: "2".into(),
        }];
        assert!(l.take_retries(&r));
        assert!(!l.reload_failed("a.pattern", "2"));
        l.set_reload_failed("a.pattern", "2", "exit 1 again".into());
        assert!(!l.take_retries(&r), "the same request is acted on once");
        assert!(l.reload_failed("a.pattern", "2"));
    }

    #[test]
    fn an_earlier_agents_string_keys_are_migrated_to_typed_entries() {
        let old = r#"{
            "builds": {"scanner": "9.5.1519"},
            "applied": {"scanner": ["CP-1519"]},
            "last_outcome": {
                "patch:CP-1519": "scanner 9.5.1514 -> 9.5.1519",
                "patch:CP-1600": "preflight failed: `false` exited with exit status: 1: ",
                "reload-failed:antimalware.pattern:18.600.00": "`false` exited",
                "reload:av:main:antimalware.pattern": "reload failed: `false` exited"
            }
        }"#;
        let l: Ledger = serde_json::from_str(old).unwrap();
        assert_eq!(l.builds["scanner"], "9.5.1519");
        assert!(l.is_applied("scanner", "CP-1519"));
        assert_eq!(l.patches["CP-1519"].outcome, Outcome::Applied);
        assert_eq!(l.patches["CP-1600"].outcome, Outcome::PreflightFailed);
        assert!(l.already_recorded(
            "CP-1600",
            "preflight failed: `false` exited with exit status: 1: "
        ));
        assert!(l.reload_failed("antimalware.pattern", "18.600.00"));
        assert!(!l.reload_failed("antimalware.pattern", "18.523.00"));
        assert_eq!(
            l.module_fault("av:main", "antimalware.pattern").unwrap(),
            "reload failed: `false` exited"
        );
        // Written back in the typed form, read back the same.
        let text = serde_json::to_string(&l).unwrap();
        assert!(!text.contains("last_outcome"), "{text}");
        assert_eq!(serde_json::from_str::<Ledger>(&text).unwrap(), l);
    }

    #[test]
    fn forgetting_a_patch_makes_the_same_message_new_again() {
        let mut l = Ledger::default();
        l.set_recorded(
            "CP-1",
            Outcome::PreflightFailed,
            "preflight failed: x".into(),
        );
        assert!(l.already_recorded("CP-1", "preflight failed: x"));
        l.forget_patch("CP-1");
        assert!(!l.already_recorded("CP-1", "preflight failed: x"));
    }

    #[test]
    fn module_faults_are_cleared_per_component() {
        let mut l = Ledger::default();
        l.set_module_fault("av", "a.pattern", "reload failed".into());
        l.set_module_fault("av", "a.engine", "reload failed".into());
        l.clear_module_fault("av", "a.pattern");
        assert_eq!(l.module_fault("av", "a.pattern"), None);
        assert!(l.module_fault("av", "a.engine").is_some());
        l.clear_module_fault("av", "a.engine");
        assert!(l.module_faults.is_empty());
    }
}
