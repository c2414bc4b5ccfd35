//! Reporting to the manager after a cycle: enrol once, then a heartbeat built as the protocol's
//! typed [`Heartbeat`] from the state files; the policy in the reply is stored.

use model::protocol::{self, Heartbeat, Role, MAX_HISTORY_PER_HEARTBEAT};

use crate::error::{Error, Result};
use crate::manager::{self, Identity, Policy};
use crate::state::StateDir;
use crate::Agent;

/// The manager protocol's policy for the policy as the manager link stores it.
// H2: the manager link will store `model::protocol::Policy` itself; then this goes.
fn protocol_policy(p: &Policy) -> protocol::Policy {
    protocol::Policy {
        group: p.group.clone(),
        relays: p.relays.clone(),
        poll_interval: p.poll_interval,
        allow_direct: p.allow_direct,
        pinned: p.pinned.clone(),
    }
}

/// The heartbeat for what `state` records, with the history entries after the first `sent`
/// (at most [`MAX_HISTORY_PER_HEARTBEAT`]) and the policy the host runs on.
pub fn heartbeat(
    state: &StateDir,
    hostname: String,
    sent: usize,
    policy: Option<&Policy>,
) -> Result<Heartbeat> {
    let status = state.status()?;
    let installed = state.installed()?;
    let history = state.history()?;
    let mut builds = status.products.clone();
    builds.insert("updraft".into(), env!("CARGO_PKG_VERSION").into());
    // The result, with what went wrong and which sources were rejected and why.
    let last_result = std::iter::once(status.last_result.clone())
        .chain(status.errors.iter().cloned())
        .chain(status.rejected.iter().cloned())
        .chain(status.ignored.iter().cloned())
        .chain(status.lagging.iter().cloned())
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Heartbeat {
        hostname,
        role: Role::Agent,
        upstream: status.source,
        builds,
        components: installed
            .components
            .into_iter()
            .map(|(c, i)| (c, i.version))
            .collect(),
        modules: status.modules,
        history: history
            .into_iter()
            .skip(sent)
            .take(MAX_HISTORY_PER_HEARTBEAT)
            .collect(),
        last_result: Some(last_result),
        applied_policy: policy.map(protocol_policy),
    })
}

impl Agent {
    /// Heartbeat: enrol first if needed; store the policy in the reply. Returns the new policy
    /// when it differs from the stored one.
    pub(crate) fn report(&self, url: &str, policy: Option<&Policy>) -> Result<Option<Policy>> {
        let mut id = self.identity(url)?;
        let hb = heartbeat(&self.state, self.hostname(), id.history_sent, policy)?;
        // H2: `manager::heartbeat` takes `&model::protocol::Heartbeat` once the manager link
        // moves to the `node` crate; until then the typed heartbeat goes as its JSON value.
        let body = serde_json::to_value(&hb)
            .map_err(|e| Error::Other(format!("heartbeat to {url}: {e}")))?;
        let reply = manager::heartbeat(&self.http, url, &id, &body)?;
        if !hb.history.is_empty() {
            id.history_sent = id.history_sent.saturating_add(hb.history.len());
            manager::save_identity(&self.state, &id)?;
        }
        if let Some(p) = reply {
            if manager::save_policy(&self.state, &p)? {
                tracing::info!(group = %p.group, relays = ?p.relays, poll = p.poll_interval, "policy from the manager applied");
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    /// This host's identity at the manager, enrolling with the token file the first time.
    fn identity(&self, url: &str) -> Result<Identity> {
        if let Some(id) = manager::identity(&self.state)? {
            return Ok(id);
        }
        let token_file = self
            .config
            .enroll_token_file
            .as_ref()
            .ok_or_else(|| Error::Config("not enrolled and no enroll_token_file".into()))?;
        manager::enroll(
            &self.http,
            &self.state,
            url,
            token_file,
            &self.hostname(),
            Role::Agent.as_str(),
        )
    }

    pub(crate) fn hostname(&self) -> String {
        self.config
            .hostname
            .clone()
            .unwrap_or_else(manager::hostname)
    }
}
