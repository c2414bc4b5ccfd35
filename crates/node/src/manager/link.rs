//! [`ManagerLink`]: one host's connection to its manager, used the same way by both hosts.

use std::path::{Path, PathBuf};

use model::protocol::{Heartbeat, Role};

use super::stored_policy_received;
use super::{current, enroll, heartbeat, identity, save_identity, save_policy};
use super::{Identity, LinkSettings, Policy};
use crate::error::{Error, Result};

/// A host's link to its manager: its identity (enrolling on first use), the heartbeat, and the
/// policy of the last reply, kept in memory so a cycle reads it once and every part of it
/// sees the same policy.
#[derive(Debug)]
pub struct ManagerLink {
    url: String,
    dir: PathBuf,
    role: Role,
    hostname: String,
    token_file: Option<PathBuf>,
    client: transport::HttpFetcher,
    identity: Option<Identity>,
    /// The last policy and when the manager last confirmed it (this host's clock).
    policy: Option<(Policy, std::time::SystemTime)>,
}

impl ManagerLink {
    /// The link of a host whose state directory is `dir`, or `None` when no manager is set.
    /// The stored policy (from before a restart) is loaded now.
    pub fn open(
        settings: &LinkSettings,
        dir: &Path,
        role: Role,
        client: transport::HttpFetcher,
    ) -> Option<Self> {
        let url = settings.manager.clone()?;
        Some(ManagerLink {
            url,
            dir: dir.to_path_buf(),
            role,
            hostname: settings.hostname(),
            token_file: settings.enroll_token_file.clone(),
            client,
            identity: None,
            policy: stored_policy_received(dir),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The policy of the last heartbeat reply (or stored before a restart), as it stands now:
    /// past its decision lease without a newer reply, without its per-host decisions.
    pub fn policy(&self) -> Option<Policy> {
        let (p, received) = self.policy.as_ref()?;
        Some(current(p.clone(), *received))
    }

    /// This host's identity: stored, or obtained now with the enrolment token.
    pub fn identity(&mut self) -> Result<&Identity> {
        let id = match self.identity.take() {
            Some(id) => id,
            None => match identity(&self.dir)? {
                Some(id) => id,
                None => self.enroll()?,
            },
        };
        Ok(self.identity.insert(id))
    }

    fn enroll(&self) -> Result<Identity> {
        let token = self.token_file.as_ref().ok_or_else(|| Error::Manager {
            url: self.url.clone(),
            reason: "not enrolled and no enroll_token_file".into(),
        })?;
        enroll(
            &self.client,
            &self.dir,
            &self.url,
            token,
            &self.hostname,
            self.role,
        )
    }

    /// History entries the manager has acknowledged (enrolling first if needed): the next
    /// heartbeat carries the entries after these.
    pub fn history_sent(&mut self) -> Result<usize> {
        Ok(self.identity()?.history_sent)
    }

    /// Send `hb` (enrolling first if needed). Once the manager recorded it, its history
    /// entries count as acknowledged (even if the policy in the answer cannot be read: they are
    /// not sent again) and the policy in the reply is kept; returns whether the policy changed
    /// (it is stored only then).
    pub fn heartbeat(&mut self, hb: &Heartbeat) -> Result<bool> {
        let id = self.identity()?.clone();
        let reply = heartbeat(&self.client, &self.url, &id, hb)?;
        if !hb.history.is_empty() {
            let acked = Identity {
                history_sent: id.history_sent.saturating_add(hb.history.len()),
                ..id
            };
            save_identity(&self.dir, &acked)?;
            self.identity = Some(acked);
        }
        let Some(p) = reply? else {
            return Ok(false);
        };
        let changed = save_policy(&self.dir, &p)?;
        if changed {
            tracing::info!(group = %p.group, relays = ?p.relays, poll = p.poll_interval, "policy from the manager applied");
        }
        self.policy = Some((p, std::time::SystemTime::now()));
        Ok(changed)
    }
}
