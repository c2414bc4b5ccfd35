//! Reporting to the manager after a cycle: enrol once, then a heartbeat built as the protocol's
//! typed [`Heartbeat`] from the state files, sent through node's [`node::ManagerLink`], which
//! keeps the policy of the reply in memory (and stores it when it changed).

use model::protocol::{Heartbeat, Role, VersionFailure, MAX_HISTORY_PER_HEARTBEAT};

use crate::error::{Error, Result};
use crate::manager::Policy;
use crate::state::StateDir;
use crate::Agent;

/// The heartbeat for what `state` records, with the history entries after the first `sent`
/// (at most [`MAX_HISTORY_PER_HEARTBEAT`]) and the policy the host runs on.
pub fn heartbeat(
    state: &StateDir,
    hostname: String,
    sent: usize,
    policy: Option<&Policy>,
    anchor: &[u8],
) -> Result<Heartbeat> {
    let status = state.status()?;
    let installed = state.installed()?;
    let history = state.history()?;
    let failed_versions = failed_versions(state)?;
    let mut builds = status.products.clone();
    // Its own build: the one its self-upgrade installed, else this code's.
    let own = installed
        .components
        .get("updraft")
        .map(|i| i.version.clone());
    builds.insert(
        "updraft".into(),
        own.unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
    );
    // The result, with what went wrong and which sources were rejected and why.
    let last_result = std::iter::once(status.last_result.clone())
        .chain(status.errors.iter().cloned())
        .chain(status.rejected.iter().cloned())
        .chain(status.ignored.iter().cloned())
        .chain(status.lagging.iter().cloned())
        .chain(
            status
                .deferred
                .iter()
                .map(|d| format!("waits for the maintenance window: {d}")),
        )
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
        applied_policy: policy.cloned(),
        failed_versions,
        trust: node::trust::persisted(&state.tuf_dir(), anchor),
    })
}

/// Versions whose reload failed (at most 1000, the manager's bound): rollout health.
fn failed_versions(state: &StateDir) -> Result<Vec<VersionFailure>> {
    Ok(state
        .ledger()?
        .reload_failed
        .into_iter()
        .flat_map(|(component, versions)| {
            versions
                .into_iter()
                .map(move |(version, why)| VersionFailure {
                    component: component.clone(),
                    version,
                    reason: format!("reload failed: {why}"),
                })
        })
        .take(1000)
        .collect())
}

impl Agent {
    /// Versions this host gave up on (for a companion's heartbeat: a relay's own build).
    pub fn failed_versions(&self) -> Result<Vec<VersionFailure>> {
        failed_versions(&self.state)
    }

    /// component → version installed now.
    pub fn installed_versions(&self) -> Result<std::collections::BTreeMap<String, String>> {
        Ok(self
            .state
            .installed()?
            .components
            .into_iter()
            .map(|(c, i)| (c, i.version))
            .collect())
    }

    /// The policy this cycle runs on: with a manager, the last heartbeat reply's, kept in
    /// memory by the manager link (loaded from `policy.json` when the agent starts); without
    /// one, the policy last stored in `policy.json` (read once per cycle, as the caller does).
    pub fn policy(&self) -> Option<Policy> {
        match &self.link {
            Some(link) => lock(link).ok()?.policy(),
            None => node::manager::current_stored_policy(&self.state.dir),
        }
    }

    /// Heartbeat: enrol first if needed; the link keeps (and stores) the policy in the reply.
    /// Returns the new policy when it differs from the one before.
    pub(crate) fn report(&self, policy: Option<&Policy>) -> Result<Option<Policy>> {
        let Some(link) = &self.link else {
            return Ok(None);
        };
        let mut link = lock(link)?;
        let sent = link.history_sent()?;
        let name = link.hostname().to_string();
        let hb = heartbeat(&self.state, name, sent, policy, &self.anchor)?;
        if link.heartbeat(&hb)? {
            return Ok(link.policy());
        }
        Ok(None)
    }
}

pub(crate) fn lock(
    link: &std::sync::Mutex<node::ManagerLink>,
) -> Result<std::sync::MutexGuard<'_, node::ManagerLink>> {
    link.lock()
        .map_err(|_| Error::Other("manager link: a previous heartbeat panicked".into()))
}
