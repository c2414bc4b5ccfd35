//! Reporting to the manager (the shared client in `transport::manager_client`), with the agent's
//! state directory: identity in `manager.json` (mode 0600), policy in `policy.json`.

use transport::manager_client as mc;
pub use transport::manager_client::{hostname, Identity, Policy};

use crate::error::{Error, Result};
use crate::state::StateDir;

fn err(e: mc::ClientError) -> Error {
    Error::Other(e.0)
}

pub fn identity(state: &StateDir) -> Result<Option<Identity>> {
    mc::identity(&state.dir).map_err(err)
}

pub fn save_identity(state: &StateDir, id: &Identity) -> Result<()> {
    mc::save_identity(&state.dir, id).map_err(err)
}

pub fn policy(state: &StateDir) -> Option<Policy> {
    mc::policy(&state.dir)
}

pub fn save_policy(state: &StateDir, p: &Policy) -> Result<bool> {
    mc::save_policy(&state.dir, p).map_err(err)
}

pub fn enroll(
    client: &transport::HttpFetcher,
    state: &StateDir,
    manager: &str,
    token_file: &std::path::Path,
    hostname: &str,
    role: &str,
) -> Result<Identity> {
    mc::enroll(client, &state.dir, manager, token_file, hostname, role).map_err(err)
}

pub fn heartbeat(
    client: &transport::HttpFetcher,
    manager: &str,
    id: &Identity,
    body: &serde_json::Value,
) -> Result<Option<Policy>> {
    mc::heartbeat(client, manager, id, body).map_err(err)
}
