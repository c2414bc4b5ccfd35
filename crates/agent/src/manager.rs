//! Reporting to the manager: a thin layer over node's manager link with the agent's state
//! directory (identity in `manager.json`, mode 0600; policy in `policy.json`).

use model::protocol::{Heartbeat, Role};
pub use node::manager::{hostname, Identity, Policy};

use crate::error::{Error, Result};
use crate::state::StateDir;

pub fn identity(state: &StateDir) -> Result<Option<Identity>> {
    Ok(node::manager::identity(&state.dir)?)
}

pub fn save_identity(state: &StateDir, id: &Identity) -> Result<()> {
    Ok(node::manager::save_identity(&state.dir, id)?)
}

pub fn policy(state: &StateDir) -> Option<Policy> {
    node::manager::stored_policy(&state.dir)
}

pub fn save_policy(state: &StateDir, p: &Policy) -> Result<bool> {
    Ok(node::manager::save_policy(&state.dir, p)?)
}

pub fn enroll(
    client: &transport::HttpFetcher,
    state: &StateDir,
    manager: &str,
    token_file: &std::path::Path,
    hostname: &str,
    role: &str,
) -> Result<Identity> {
    let role: Role = role.parse().map_err(Error::Other)?;
    Ok(node::manager::enroll(
        client, &state.dir, manager, token_file, hostname, role,
    )?)
}

/// Send a heartbeat; returns the policy in the reply.
///
/// The body is a [`Heartbeat`]. The bound is `Serialize` (the body must still read as a
/// `Heartbeat`, or nothing is sent) only while the agent's report moves to the typed heartbeat;
/// then it narrows to `&Heartbeat`.
pub fn heartbeat<B: serde::Serialize>(
    client: &transport::HttpFetcher,
    manager: &str,
    id: &Identity,
    body: &B,
) -> Result<Option<Policy>> {
    let typed: Heartbeat = serde_json::to_value(body)
        .and_then(serde_json::from_value)
        .map_err(|e| Error::Other(format!("heartbeat body: {e}")))?;
    Ok(node::manager::heartbeat(client, manager, id, &typed)?)
}
