//! Reporting to the manager: enrolment with a one-time token (the credential is stored with mode
//! 0600), a heartbeat after every cycle, and the group's policy from the reply (relay list, poll
//! interval, direct fallback, pinned versions), applied at once and reported back.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::StateDir;

/// Policy handed back by the manager.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Policy {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub relays: Vec<String>,
    #[serde(default)]
    pub poll_interval: u64,
    #[serde(default)]
    pub allow_direct: bool,
    #[serde(default)]
    pub pinned: BTreeMap<String, String>,
}

/// This host's identity at the manager (`state_dir/manager.json`, mode 0600).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub host_id: String,
    pub credential: String,
    /// History entries already accepted by the manager.
    #[serde(default)]
    pub history_sent: usize,
}

fn identity_path(state: &StateDir) -> PathBuf {
    state.dir.join("manager.json")
}

pub fn identity(state: &StateDir) -> Result<Option<Identity>> {
    match std::fs::read(identity_path(state)) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Other(format!("{}: {e}", identity_path(state).display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(identity_path(state), e)),
    }
}

pub fn save_identity(state: &StateDir, id: &Identity) -> Result<()> {
    let path = identity_path(state);
    let bytes = serde_json::to_vec_pretty(id).map_err(|e| Error::Other(e.to_string()))?;
    let tmp = tempfile::NamedTempFile::new_in(&state.dir).map_err(|e| Error::io(&state.dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(&path, e))?;
    }
    std::fs::write(tmp.path(), bytes).map_err(|e| Error::io(&path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(&path, e))?;
    tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
    Ok(())
}

pub fn policy(state: &StateDir) -> Option<Policy> {
    std::fs::read(state.dir.join("policy.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Store a new policy; returns whether it changed (nothing is written otherwise).
pub fn save_policy(state: &StateDir, p: &Policy) -> Result<bool> {
    if policy(state).as_ref() == Some(p) {
        return Ok(false);
    }
    let bytes = serde_json::to_vec_pretty(p).map_err(|e| Error::Other(e.to_string()))?;
    tuf::fsutil::write_atomic(&state.dir.join("policy.json"), &bytes)?;
    Ok(true)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Enrol with the token in `token_file`; returns the new identity (stored 0600).
pub fn enroll(
    client: &transport::HttpFetcher,
    state: &StateDir,
    manager: &str,
    token_file: &std::path::Path,
    hostname: &str,
    role: &str,
) -> Result<Identity> {
    let token = std::fs::read_to_string(token_file).map_err(|e| Error::io(token_file, e))?;
    let body = serde_json::json!({"hostname": hostname, "role": role})
        .to_string()
        .into_bytes();
    let url = format!("{}/api/v1/enroll", manager.trim_end_matches('/'));
    let (status, bytes) = client
        .post_json(&url, Some(token.trim()), body, 64 * 1024)
        .map_err(|e| Error::Other(e.to_string()))?;
    if status != 200 {
        return Err(Error::Other(format!(
            "{url}: enrolment refused ({status}): {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Error::Other(format!("{url}: {e}")))?;
    let id = Identity {
        host_id: v["host_id"].as_str().unwrap_or_default().to_string(),
        credential: v["credential"].as_str().unwrap_or_default().to_string(),
        history_sent: 0,
    };
    if id.host_id.is_empty() || id.credential.is_empty() {
        return Err(Error::Other(format!(
            "{url}: enrolment answer without host_id/credential"
        )));
    }
    save_identity(state, &id)?;
    tracing::info!(host_id = %id.host_id, "enrolled with the manager");
    Ok(id)
}

/// Send a heartbeat; returns the policy in the reply.
pub fn heartbeat(
    client: &transport::HttpFetcher,
    manager: &str,
    id: &Identity,
    body: &serde_json::Value,
) -> Result<Option<Policy>> {
    let url = format!("{}/api/v1/heartbeat", manager.trim_end_matches('/'));
    let (status, bytes) = client
        .post_json(
            &url,
            Some(&id.credential),
            body.to_string().into_bytes(),
            256 * 1024,
        )
        .map_err(|e| Error::Other(e.to_string()))?;
    if status != 200 {
        return Err(Error::Other(format!(
            "{url}: heartbeat refused ({status}): {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Error::Other(format!("{url}: {e}")))?;
    Ok(serde_json::from_value(v["policy"].clone()).ok())
}
