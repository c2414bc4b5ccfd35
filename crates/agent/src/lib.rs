//! The Updraft agent: keeps the host's modules supplied with verified content, applies patches
//! where the base build allows, records a hotfix history and says clearly what state the host is
//! in. Every byte installed was verified against signed metadata by the `tuf` client.
//!
//! A cycle ([`cycle`]) refreshes from its sources ([`sources`]), plans ([`plan`], pure), then
//! carries the plan out ([`modules`], [`patches`]) under the crash journal ([`journal`]),
//! recording in the ledger ([`ledger`]) and the state files ([`state`]); a heartbeat
//! ([`report`]) tells the manager. [`daemon`] repeats it.

#[cfg(not(unix))]
compile_error!("the agent needs Unix: file operations under install directories use openat without following symlinks (crate `beneath`)");

pub mod beneath;
pub mod config;
mod cycle;
pub mod daemon;
pub mod error;
pub mod install;
pub mod journal;
pub mod ledger;
pub mod manager;
mod modules;
mod patches;
pub mod plan;
pub mod report;
mod sources;
pub mod state;
pub mod upgrade;

use std::sync::Arc;

pub use config::{AgentConfig, ModuleConfig, ProductConfig};
pub use daemon::next_poll;
pub use error::{Error, Result};
use state::StateDir;

/// What one cycle did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CycleReport {
    pub source: Option<String>,
    pub timestamp_unchanged: bool,
    pub installed: Vec<(String, String)>,
    pub patches: Vec<(String, String)>,
    pub recovered: Option<String>,
    pub status_written: bool,
    /// Why the heartbeat to the manager failed, if it did.
    pub manager_error: Option<String>,
}

/// An agent for one configuration.
pub struct Agent {
    pub config: AgentConfig,
    anchor: Vec<u8>,
    pub state: StateDir,
    /// Where metadata and targets come from (URLs of the configured sources).
    fetcher: Arc<dyn tuf::Fetcher>,
    /// The link to the manager (when one is configured): identity, heartbeat, and the policy
    /// of the last reply kept in memory.
    link: Option<std::sync::Mutex<node::ManagerLink>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// An agent fetching over HTTP(S) (and `file://`) with the configuration's bounds and CA.
    pub fn new(config: AgentConfig) -> Result<Self> {
        let http = transport::HttpFetcher::new(&config.http_config()?)?;
        let fetcher: Arc<dyn tuf::Fetcher> = Arc::new(http.clone());
        Self::build(config, fetcher, http)
    }

    /// An agent that fetches metadata and targets through `fetcher` (e.g. `tuf::FileFetcher`,
    /// or one a test controls); the manager is still reached over HTTP(S).
    pub fn with_fetcher(config: AgentConfig, fetcher: Arc<dyn tuf::Fetcher>) -> Result<Self> {
        let http = transport::HttpFetcher::new(&config.http_config()?)?;
        Self::build(config, fetcher, http)
    }

    fn build(
        config: AgentConfig,
        fetcher: Arc<dyn tuf::Fetcher>,
        http: transport::HttpFetcher,
    ) -> Result<Self> {
        let anchor = config.validate()?;
        let link = node::ManagerLink::open(
            &config.link_settings(),
            &config.state_dir,
            model::protocol::Role::Agent,
            http,
        );
        Ok(Agent {
            state: StateDir::new(&config.state_dir),
            config,
            anchor,
            fetcher,
            link: link.map(std::sync::Mutex::new),
        })
    }

    /// One cycle: with a manager, a heartbeat first, so that the update acts on the freshest
    /// policy (a rollout halted or a version withheld a moment ago already counts; a new host
    /// already follows its group's channel, pins and holds in its first install), then the
    /// update, then a second heartbeat only when the update changed something. If the manager
    /// does not answer, the update runs on the policy the host has (a manager outage never
    /// stops updates; the decision lease bounds how long its holds last).
    pub fn cycle(&self) -> Result<CycleReport> {
        let Some(url) = self.config.link.manager.clone() else {
            return self.update(self.policy());
        };
        let mut manager_error = None;
        if let Err(e) = self.report(self.policy().as_ref()) {
            tracing::warn!(manager = %url, error = %e, "heartbeat failed");
            manager_error = Some(e.to_string());
        }
        let policy = self.policy();
        let mut report = self.update(policy.clone())?;
        report.manager_error = manager_error;
        let changed = !report.installed.is_empty()
            || !report.patches.is_empty()
            || report.status_written
            || report.recovered.is_some();
        if !changed {
            return Ok(report);
        }
        match self.report(policy.as_ref()) {
            Ok(Some(new)) if self.changes_the_cycle(policy.as_ref(), &new) => {
                let again = self.update(Some(new.clone()))?;
                report.installed.extend(again.installed);
                report.patches.extend(again.patches);
                report.source = again.source.or(report.source);
                report.status_written |= again.status_written;
                if let Err(e) = self.report(Some(&new)) {
                    report.manager_error = Some(e.to_string());
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(manager = %url, error = %e, "heartbeat failed");
                report.manager_error = Some(e.to_string());
            }
        }
        Ok(report)
    }

    /// One update cycle under `policy`, without a heartbeat: for an agent embedded in another
    /// process that reports for it (a relay upgrading its own build).
    pub fn update_with(&self, policy: Option<manager::Policy>) -> Result<CycleReport> {
        self.update(policy)
    }

    /// Whether `new` changes where this cycle updates from or what it plans.
    fn changes_the_cycle(&self, old: Option<&manager::Policy>, new: &manager::Policy) -> bool {
        let sources = |p: Option<&manager::Policy>| self.config.sources_with(p);
        let selection = crate::plan::Selection::from_policy;
        sources(old) != sources(Some(new)) || selection(old) != selection(Some(new))
    }
}
