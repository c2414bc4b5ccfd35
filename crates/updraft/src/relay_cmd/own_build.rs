//! A relay replacing its own build (`[self_upgrade]` in its configuration). The relay embeds an
//! agent with one `self_upgrade` module (component `updraft`) for its executable, in
//! `CACHE/self-upgrade`: the build
//! is a signed version like any content, verified again against the relay's trust anchor,
//! chosen by the relay's policy (rollout holds, withheld versions, channel, pins), staged and
//! renamed with the previous one kept, and checked with `NEW relay --check --config FILE`
//! before it stays. After each cycle that synced and reported, the worker runs that agent; a
//! new build makes the worker exit for the supervisor (`crate::supervisor`) to start it, and
//! the new build is confirmed once it has synced and reported in its turn, else put back.

use std::path::Path;

use agent::{Agent, AgentConfig, ModuleConfig};
use anyhow::{Context, Result};
use model::protocol::Policy;
use relay::{Companion, CompanionReport, RelayConfig, SelfUpgrade};

/// The state directory of the embedded agent, inside the relay's cache.
const STATE: &str = "self-upgrade";

/// The agent that installs the relay's own build (`config` is the relay's configuration file,
/// which the check of a new build reads).
pub fn agent(c: &RelayConfig, up: &SelfUpgrade, config: &Path) -> Result<Agent> {
    let mut ac = AgentConfig::new(c.cache.join(STATE), c.trusted_root.clone());
    ac.source_file = Some(config.to_path_buf());
    ac.check_command = Some("relay".into());
    ac.relays = c.upstreams.clone();
    ac.http = c.http.clone();
    ac.modules = vec![ModuleConfig {
        name: "updraft".into(),
        components: vec!["updraft".into()],
        install_dir: up.install_dir.clone(),
        reload: None,
        self_upgrade: true,
    }];
    std::fs::create_dir_all(&ac.state_dir)
        .with_context(|| format!("cannot create {}", ac.state_dir.display()))?;
    Ok(Agent::new(ac)?)
}

/// The companion of a supervised relay worker running build `running`.
pub struct OwnBuild {
    pub agent: Agent,
    pub running: String,
}

impl Companion for OwnBuild {
    fn after_cycle(&mut self, policy: Option<&Policy>, _upstreams: &[String], healthy: bool) {
        // A cycle that did not sync and report neither confirms a new build nor installs one.
        if !healthy {
            return;
        }
        let report = match self.agent.update_with(policy.cloned()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "relay self-upgrade: the update of its own build failed");
                return;
            }
        };
        match self.agent.after_cycle(&self.running, &report) {
            Ok(agent::upgrade::AfterCycle::Restart) => {
                // The supervisor starts the new build (see crate::supervisor).
                std::process::exit(agent::upgrade::RESTART_CODE);
            }
            Ok(agent::upgrade::AfterCycle::Carry) => {}
            Err(e) => tracing::error!(error = %e, "relay self-upgrade: cannot record the build"),
        }
    }

    fn report(&self) -> CompanionReport {
        CompanionReport {
            components: self.agent.installed_versions().unwrap_or_default(),
            failed_versions: self.agent.failed_versions().unwrap_or_default(),
            modules: (self.agent.state.status())
                .map(|s| s.modules)
                .unwrap_or_default(),
        }
    }
}
