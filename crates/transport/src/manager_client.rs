//! Client side of the manager API, shared by agents and relays: enrolment with a one-time token (the credential is stored with mode
//! 0600), a heartbeat after every cycle, and the group's policy from the reply (relay list, poll
//! interval, direct fallback, pinned versions), applied at once and reported back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

fn identity_path(dir: &Path) -> PathBuf {
    dir.join("manager.json")
}

pub fn identity(dir: &Path) -> std::result::Result<Option<Identity>, ClientError> {
    match std::fs::read(identity_path(dir)) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| ClientError(format!("{}: {e}", identity_path(dir).display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(identity_path(dir), e)),
    }
}

pub fn save_identity(dir: &Path, id: &Identity) -> std::result::Result<(), ClientError> {
    let path = identity_path(dir);
    let bytes = serde_json::to_vec_pretty(id).map_err(|e| ClientError(e.to_string()))?;
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io_err(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err(&path, e))?;
    }
    std::fs::write(tmp.path(), bytes).map_err(|e| io_err(&path, e))?;
    tmp.as_file().sync_all().map_err(|e| io_err(&path, e))?;
    tmp.persist(&path).map_err(|e| io_err(&path, e.error))?;
    Ok(())
}

pub fn policy(dir: &Path) -> Option<Policy> {
    std::fs::read(dir.join("policy.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Store a new policy; returns whether it changed (nothing is written otherwise).
pub fn save_policy(dir: &Path, p: &Policy) -> std::result::Result<bool, ClientError> {
    if policy(dir).as_ref() == Some(p) {
        return Ok(false);
    }
    let bytes = serde_json::to_vec_pretty(p).map_err(|e| ClientError(e.to_string()))?;
    tuf::fsutil::write_atomic(&dir.join("policy.json"), &bytes)
        .map_err(|e| ClientError(e.to_string()))?;
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
    client: &crate::HttpFetcher,
    dir: &Path,
    manager: &str,
    token_file: &std::path::Path,
    hostname: &str,
    role: &str,
) -> std::result::Result<Identity, ClientError> {
    let token = std::fs::read_to_string(token_file).map_err(|e| io_err(token_file, e))?;
    let body = serde_json::json!({"hostname": hostname, "role": role})
        .to_string()
        .into_bytes();
    let url = format!("{}/api/v1/enroll", manager.trim_end_matches('/'));
    let (status, bytes) = client
        .post_json(&url, Some(token.trim()), body, 64 * 1024)
        .map_err(|e| ClientError(e.to_string()))?;
    if status != 200 {
        return Err(ClientError(format!(
            "{url}: enrolment refused ({status}): {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| ClientError(format!("{url}: {e}")))?;
    let id = Identity {
        host_id: v["host_id"].as_str().unwrap_or_default().to_string(),
        credential: v["credential"].as_str().unwrap_or_default().to_string(),
        history_sent: 0,
    };
    if id.host_id.is_empty() || id.credential.is_empty() {
        return Err(ClientError(format!(
            "{url}: enrolment answer without host_id/credential"
        )));
    }
    save_identity(dir, &id)?;
    tracing::info!(host_id = %id.host_id, "enrolled with the manager");
    Ok(id)
}

/// Send a heartbeat; returns the policy in the reply.
pub fn heartbeat(
    client: &crate::HttpFetcher,
    manager: &str,
    id: &Identity,
    body: &serde_json::Value,
) -> std::result::Result<Option<Policy>, ClientError> {
    let url = format!("{}/api/v1/heartbeat", manager.trim_end_matches('/'));
    let (status, bytes) = client
        .post_json(
            &url,
            Some(&id.credential),
            body.to_string().into_bytes(),
            256 * 1024,
        )
        .map_err(|e| ClientError(e.to_string()))?;
    if status != 200 {
        return Err(ClientError(format!(
            "{url}: heartbeat refused ({status}): {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| ClientError(format!("{url}: {e}")))?;
    Ok(serde_json::from_value(v["policy"].clone()).ok())
}

/// A failed manager call or state file access, with what failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(pub String);

fn io_err(path: impl AsRef<Path>, e: std::io::Error) -> ClientError {
    ClientError(format!("{}: {e}", path.as_ref().display()))
}
