//! The manager link, shared by agents and relays: enrolment with a one-time token (the
//! credential is stored with mode 0600), a typed heartbeat after every cycle, and the group's
//! policy from the reply, kept in memory for the next cycle and stored in the state directory
//! (only when it changed) so that a restart starts from it.
//!
//! State files in the host's state directory: `manager.json` ([`Identity`], 0600) and
//! `policy.json` (the last [`Policy`]).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use model::protocol::{
    EnrollReply, EnrollRequest, Heartbeat, HeartbeatReply, Role, ENROLL_PATH, HEARTBEAT_PATH,
    MAX_ENROLL_REPLY, MAX_HEARTBEAT_REPLY,
};
use serde::{Deserialize, Serialize};

pub use model::protocol::Policy;

use crate::error::{Error, Result};

/// The identity file in a host's state directory.
pub const IDENTITY_FILE: &str = "manager.json";
/// The policy file in a host's state directory.
pub const POLICY_FILE: &str = "policy.json";

/// This host's identity at the manager (`manager.json`, mode 0600).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub host_id: String,
    pub credential: String,
    /// History entries already accepted by the manager (the acknowledgement counter).
    #[serde(default)]
    pub history_sent: usize,
}

/// The manager settings of a host's configuration (the same keys for agent and relay).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSettings {
    /// The manager's base URL: a heartbeat after every cycle, policy from the replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// File holding an enrolment token, used once to obtain this host's credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enroll_token_file: Option<PathBuf>,
    /// Name reported to the manager (default: the system host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

impl LinkSettings {
    /// Check the settings before running; `state_dir` holds the identity once enrolled (then
    /// the token file is no longer needed).
    pub fn validate(&self, state_dir: &Path) -> Result<()> {
        if let Some(url) = &self.manager {
            crate::url::check("manager", url, crate::url::MANAGER_SCHEMES)?;
        }
        let Some(token) = &self.enroll_token_file else {
            return Ok(());
        };
        if self.manager.is_none() {
            return Err(Error::setting("enroll_token_file", "needs manager (URL)"));
        }
        if !token.is_file() && !state_dir.join(IDENTITY_FILE).is_file() {
            return Err(Error::setting(
                "enroll_token_file",
                format!("{}: not a readable file", token.display()),
            ));
        }
        Ok(())
    }

    /// The name reported to the manager.
    pub fn hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(hostname)
    }
}

/// The identity stored in `dir`, if this host has enrolled.
pub fn identity(dir: &Path) -> Result<Option<Identity>> {
    let path = dir.join(IDENTITY_FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::BadFile {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Store the identity in `dir` (atomically, mode 0600 from the start).
pub fn save_identity(dir: &Path, id: &Identity) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(id).map_err(|e| Error::BadFile {
        path: dir.join(IDENTITY_FILE),
        reason: e.to_string(),
    })?;
    Ok(tuf::fsutil::write_atomic_private(
        &dir.join(IDENTITY_FILE),
        &bytes,
    )?)
}

/// The policy stored in `dir` (none yet, or unreadable: logged, and the host runs on its own
/// configuration until the next heartbeat brings one).
pub fn stored_policy(dir: &Path) -> Option<Policy> {
    let path = dir.join(POLICY_FILE);
    let bytes = std::fs::read(&path).ok()?;
    serde_json::from_slice(&bytes)
        .map_err(
            |e| tracing::warn!(file = %path.display(), error = %e, "ignoring the stored policy"),
        )
        .ok()
}

/// The stored policy with when the manager last confirmed it (the file's modification time:
/// a heartbeat answered with the same policy touches it).
pub fn stored_policy_received(dir: &Path) -> Option<(Policy, SystemTime)> {
    let policy = stored_policy(dir)?;
    let received = std::fs::metadata(dir.join(POLICY_FILE))
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Some((policy, received))
}

/// `p` as it stands now, received at `received` (by this host's clock): past its lease the
/// per-host decisions have lapsed and the group's channel decides (logged). A clock set back
/// counts as no time passed.
pub fn current(mut p: Policy, received: SystemTime) -> Policy {
    let age = age_secs(received);
    if p.lapse_decisions(age) {
        tracing::warn!(
            age_secs = age,
            lease_secs = p.lease(),
            "no word from the manager within the decision lease: its rollout holds have lapsed; following the group's channel"
        );
    }
    p
}

/// Seconds since `t` by this host's clock (0 for a time ahead of it).
fn age_secs(t: SystemTime) -> u64 {
    SystemTime::now()
        .duration_since(t)
        .map_or(0, |d| d.as_secs())
}

/// The stored policy as it stands now (see [`current`]).
pub fn current_stored_policy(dir: &Path) -> Option<Policy> {
    stored_policy_received(dir).map(|(p, received)| current(p, received))
}

/// Store a new policy; returns whether it changed (otherwise the file is only touched: its
/// modification time says when the manager last confirmed it).
pub fn save_policy(dir: &Path, p: &Policy) -> Result<bool> {
    if stored_policy(dir).as_ref() == Some(p) {
        let touched = std::fs::File::options()
            .write(true)
            .open(dir.join(POLICY_FILE))
            .and_then(|f| f.set_modified(SystemTime::now()));
        if let Err(e) = touched {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot touch the stored policy");
        }
        return Ok(false);
    }
    let path = dir.join(POLICY_FILE);
    let bytes = serde_json::to_vec_pretty(p).map_err(|e| Error::BadFile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    tuf::fsutil::write_atomic(&path, &bytes)?;
    Ok(true)
}

/// The system host name (`unknown` when it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn endpoint(manager: &str, path: &str) -> String {
    format!("{}{path}", manager.trim_end_matches('/'))
}

/// POST `body` to `url` with `bearer`; the reply parsed as `T`, or why not.
fn post<T: serde::de::DeserializeOwned>(
    client: &transport::HttpFetcher,
    url: &str,
    bearer: &str,
    body: &impl Serialize,
    max: u64,
) -> Result<T> {
    let bytes = post_ok(client, url, bearer, body, max)?;
    parse_reply(url, &bytes)
}

/// POST `body` to `url` with `bearer`; the body of a 200 answer, or why there is none.
fn post_ok(
    client: &transport::HttpFetcher,
    url: &str,
    bearer: &str,
    body: &impl Serialize,
    max: u64,
) -> Result<Vec<u8>> {
    let fail = |reason: String| Error::Manager {
        url: url.to_string(),
        reason,
    };
    let body = serde_json::to_vec(body).map_err(|e| fail(e.to_string()))?;
    let (status, bytes) = client
        .post_json(url, Some(bearer), body, max)
        .map_err(|e| fail(e.to_string()))?;
    if status != 200 {
        let text = String::from_utf8_lossy(&bytes);
        return Err(fail(format!("refused ({status}): {}", text.trim())));
    }
    Ok(bytes)
}

fn parse_reply<T: serde::de::DeserializeOwned>(url: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Manager {
        url: url.to_string(),
        reason: format!("unexpected answer: {e}"),
    })
}

/// Enrol with the token in `token_file`; returns the new identity (stored 0600 in `dir`).
pub fn enroll(
    client: &transport::HttpFetcher,
    dir: &Path,
    manager: &str,
    token_file: &Path,
    hostname: &str,
    role: Role,
) -> Result<Identity> {
    let token = std::fs::read_to_string(token_file).map_err(|e| Error::io(token_file, e))?;
    let url = endpoint(manager, ENROLL_PATH);
    let request = EnrollRequest {
        hostname: hostname.to_string(),
        role,
    };
    let reply: EnrollReply = post(client, &url, token.trim(), &request, MAX_ENROLL_REPLY)?;
    if reply.host_id.is_empty() || reply.credential.is_empty() {
        return Err(Error::Manager {
            url,
            reason: "enrolment answer with an empty host_id or credential".into(),
        });
    }
    let id = Identity {
        host_id: reply.host_id,
        credential: reply.credential,
        history_sent: 0,
    };
    save_identity(dir, &id)?;
    tracing::info!(host_id = %id.host_id, "enrolled with the manager");
    Ok(id)
}

/// Send a heartbeat. `Err`: the manager did not record it. `Ok`: it did (it answered 200 with
/// a JSON object), with the policy of the answer (`None`: the host is in no group) or why that
/// policy cannot be read.
pub fn heartbeat(
    client: &transport::HttpFetcher,
    manager: &str,
    id: &Identity,
    body: &Heartbeat,
) -> Result<Result<Option<Policy>>> {
    let url = endpoint(manager, HEARTBEAT_PATH);
    let bytes = post_ok(client, &url, &id.credential, body, MAX_HEARTBEAT_REPLY)?;
    let answer: serde_json::Map<String, serde_json::Value> = parse_reply(&url, &bytes)?;
    Ok(
        serde_json::from_value::<HeartbeatReply>(serde_json::Value::Object(answer))
            .map(|r| r.policy)
            .map_err(|e| Error::Manager {
                url,
                reason: format!("unexpected answer: {e}"),
            }),
    )
}

mod link;
pub use link::ManagerLink;

#[cfg(test)]
mod tests;
