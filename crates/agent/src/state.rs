//! The agent's persistent state in `state_dir`, every file written atomically:
//! `installed.json` (component versions and files), `products.json` (the [`crate::ledger::Ledger`]),
//! `status.json`, `history.jsonl` (append-only hotfix history), `journal.json` (an install or
//! patch in progress, for crash recovery), `versions/<component>/<version>/` (verified files of
//! the current and previous version) and `tuf/` (trusted metadata).

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstalledComponent {
    pub module: String,
    pub version: String,
    pub files: Vec<String>,
    #[serde(default)]
    pub previous: Option<String>,
    #[serde(default)]
    pub previous_files: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Installed {
    pub components: BTreeMap<String, InstalledComponent>,
}

/// The hotfix history's entries and the modules' status are the manager protocol's types (the
/// state files spell them as the protocol does).
pub use model::protocol::{HistoryEntry, ModuleReport, ModuleState};

pub use crate::journal::Journal;

/// `status.json`: what the host runs and why a module is offline.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// The relay (or origin) used by the last successful refresh.
    pub source: Option<String>,
    pub last_result: String,
    pub last_success: Option<String>,
    pub unreachable_since: Option<String>,
    pub metadata_expired_since: Option<String>,
    pub modules: Vec<ModuleReport>,
    pub products: BTreeMap<String, String>,
    pub errors: Vec<String>,
    /// Sources whose data was rejected in the last cycle (tampered, wrong length), with why.
    #[serde(default)]
    pub rejected: Vec<String>,
    /// Targets the last cycle ignored: not authorised by the delegation search (outside their
    /// role's scope), or whose `custom.updraft` disagrees with their path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    /// Sources found behind another configured source (or the trusted state) in the last cycle:
    /// which one and by how many timestamp versions.
    #[serde(default)]
    pub lagging: Vec<String>,
    /// Targets the last cycle rebuilt from deltas, or why the deltas offered were not used
    /// (the full file was downloaded instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<String>,
    /// Engines, programs and patches waiting for the maintenance window ("component version",
    /// "patch id").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<String>,
    /// Version of the timestamp whose content was fully applied (a crash after a refresh but
    /// before the installs leaves this behind, so the next cycle does the work).
    #[serde(default)]
    pub applied_timestamp: u64,
    /// Digest of what else the last complete apply was planned with (pinned versions, modules,
    /// products, platform: see `cycle::plan_digest`); a change re-plans at once.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub applied_plan: String,
}

/// Where the agent keeps the working files of one patch, under `state_dir/patches/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchPaths {
    /// The downloaded (verified) archive.
    pub archive: PathBuf,
    /// Where the archive is unpacked before anything in the product changes.
    pub stage: PathBuf,
    /// Copies of the product files the patch replaces.
    pub backup: PathBuf,
}

#[derive(Debug, Clone)]
pub struct StateDir {
    pub dir: PathBuf,
}

pub(crate) fn read_json<T: DeserializeOwned + Default>(path: &Path) -> Result<T> {
    match fs::read(path) {
        Ok(b) => {
            serde_json::from_slice(&b).map_err(|e| Error::Other(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// `v` with [`node::url::redact`] applied to every string in it.
fn redacted<T: Serialize + DeserializeOwned>(v: &T) -> Result<T> {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = node::url::redact(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            serde_json::Value::Object(o) => o.values_mut().for_each(walk),
            _ => {}
        }
    }
    let mut json = serde_json::to_value(v).map_err(|e| Error::Other(e.to_string()))?;
    walk(&mut json);
    serde_json::from_value(json).map_err(|e| Error::Other(e.to_string()))
}

pub(crate) fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::Other(e.to_string()))?;
    tuf::fsutil::write_atomic(path, &bytes)?;
    Ok(())
}

impl StateDir {
    pub fn new(dir: &Path) -> Self {
        StateDir {
            dir: dir.to_path_buf(),
        }
    }
    pub fn tuf_dir(&self) -> PathBuf {
        self.dir.join("tuf")
    }
    pub fn version_dir(&self, component: &str, version: &str) -> PathBuf {
        self.dir.join("versions").join(component).join(version)
    }
    /// The working files of patch `id`. Only a validated [`model::PatchId`] (a name, never a
    /// path) names them, so they are always directly under `patches/`.
    pub fn patch_paths(&self, id: &model::PatchId) -> PatchPaths {
        let dir = self.dir.join("patches");
        PatchPaths {
            archive: dir.join(format!("{id}.archive")),
            stage: dir.join(format!("{id}.stage")),
            backup: dir.join(format!("{id}.backup")),
        }
    }
    pub fn installed(&self) -> Result<Installed> {
        read_json(&self.dir.join("installed.json"))
    }
    pub fn save_installed(&self, v: &Installed) -> Result<()> {
        write_json(&self.dir.join("installed.json"), v)
    }
    pub fn status(&self) -> Result<Status> {
        read_json(&self.dir.join("status.json"))
    }
    /// Write `status.json` only when it changed (an unchanged poll writes nothing).
    /// URL credentials in it (a source, messages naming one) are redacted first: the heartbeat
    /// is built from this file.
    pub fn save_status(&self, v: &Status) -> Result<bool> {
        let v = &redacted(v)?;
        if &self.status().unwrap_or_default() == v {
            return Ok(false);
        }
        write_json(&self.dir.join("status.json"), v)?;
        Ok(true)
    }
    pub fn journal(&self) -> Result<Option<Journal>> {
        read_json_if_there(&self.dir.join("journal.json"))
    }
    pub fn set_journal(&self, j: &Journal) -> Result<()> {
        write_json(&self.dir.join("journal.json"), j)
    }
    /// A self-upgrade not confirmed yet (`upgrade.json`).
    pub fn pending_upgrade(&self) -> Result<Option<crate::upgrade::Pending>> {
        read_json_if_there(&self.dir.join("upgrade.json"))
    }

    pub fn save_pending_upgrade(&self, p: Option<&crate::upgrade::Pending>) -> Result<()> {
        let path = self.dir.join("upgrade.json");
        match p {
            Some(p) => write_json(&path, p),
            None => {
                tuf::fsutil::remove_if_exists(&path)?;
                tuf::fsutil::sync_dir(&self.dir);
                Ok(())
            }
        }
    }

    pub fn clear_journal(&self) -> Result<()> {
        tuf::fsutil::remove_if_exists(&self.dir.join("journal.json"))?;
        tuf::fsutil::sync_dir(&self.dir);
        Ok(())
    }

    /// Append one history entry (one JSON line, fsynced).
    pub fn append_history(&self, e: &HistoryEntry) -> Result<()> {
        let path = self.dir.join("history.jsonl");
        let mut line = serde_json::to_vec(e).map_err(|e| Error::Other(e.to_string()))?;
        line.push(b'\n');
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // As private as the state directory, like every file written through fsutil.
            options.mode(tuf::fsutil::file_mode_in(&self.dir));
        }
        let mut f = options.open(&path).map_err(|e| Error::io(&path, e))?;
        f.write_all(&line).map_err(|e| Error::io(&path, e))?;
        f.sync_all().map_err(|e| Error::io(&path, e))?;
        Ok(())
    }

    /// The hotfix history. A line cut short by a crash while appending is skipped.
    pub fn history(&self) -> Result<Vec<HistoryEntry>> {
        let path = self.dir.join("history.jsonl");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

/// The JSON file at `path` (this agent wrote it), or `None` when there is none.
fn read_json_if_there<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_never_reach_status_json() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let status = Status {
            source: Some("http://u:secret@relay:8080".into()),
            errors: vec!["http://u:secret@relay:8080/metadata/timestamp.json: refused".into()],
            ..Status::default()
        };
        assert!(state.save_status(&status).unwrap());
        let text = std::fs::read_to_string(dir.path().join("status.json")).unwrap();
        assert!(
            !text.contains("secret") && text.contains("http://***@relay:8080"),
            "{text}"
        );
        // Unchanged (once redacted): nothing is written again.
        assert!(!state.save_status(&status).unwrap());
    }
}
