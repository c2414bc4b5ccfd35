//! An agent configuration file for the demo and the tests, written in one function
//! ([`agent_config_toml`]) from a small description ([`AgentSetup`]). Keys the setup leaves out
//! take the agent's defaults.

use std::path::PathBuf;

/// What an agent configuration says (the subset the demo and the tests set).
#[derive(Debug, Clone, Default)]
pub struct AgentSetup {
    pub state_dir: PathBuf,
    pub trusted_root: PathBuf,
    pub relays: Vec<String>,
    pub origin: Option<String>,
    pub allow_direct: bool,
    /// Seconds between cycles (the agent's default when `None`).
    pub poll_interval: Option<u64>,
    pub manager: Option<ManagerLink>,
    pub modules: Vec<ModuleSetup>,
    pub products: Vec<ProductSetup>,
}

/// The manager an agent reports to, and how it enrols.
#[derive(Debug, Clone)]
pub struct ManagerLink {
    pub url: String,
    pub enroll_token_file: PathBuf,
    pub hostname: String,
}

/// A `[[module]]`: a consumer of components.
#[derive(Debug, Clone)]
pub struct ModuleSetup {
    pub name: String,
    pub components: Vec<String>,
    pub install_dir: PathBuf,
    pub reload: Option<String>,
    /// The module holds the agent's own `updraft` build.
    pub self_upgrade: bool,
}

/// A `[[product]]` that receives patches.
#[derive(Debug, Clone)]
pub struct ProductSetup {
    pub name: String,
    pub build: String,
    pub install_dir: PathBuf,
    pub restart: Option<String>,
    pub preflight: Vec<String>,
}

impl AgentSetup {
    /// The agent configuration this setup describes; what it leaves out keeps the agent's
    /// defaults ([`agent::AgentConfig::new`]).
    pub fn config(&self) -> agent::AgentConfig {
        let mut c = agent::AgentConfig::new(self.state_dir.clone(), self.trusted_root.clone());
        c.relays = self.relays.clone();
        c.origin = self.origin.clone();
        c.allow_direct = self.allow_direct;
        if let Some(secs) = self.poll_interval {
            c.poll_interval = secs;
        }
        if let Some(m) = &self.manager {
            c.link.manager = Some(m.url.clone());
            c.link.enroll_token_file = Some(m.enroll_token_file.clone());
            c.link.hostname = Some(m.hostname.clone());
        }
        c.modules = self.modules.iter().map(ModuleSetup::config).collect();
        c.products = self.products.iter().map(ProductSetup::config).collect();
        c
    }
}

impl ModuleSetup {
    fn config(&self) -> agent::ModuleConfig {
        agent::ModuleConfig {
            name: self.name.clone(),
            components: self.components.clone(),
            install_dir: self.install_dir.clone(),
            reload: self.reload.clone(),
            self_upgrade: self.self_upgrade,
        }
    }
}

impl ProductSetup {
    fn config(&self) -> agent::ProductConfig {
        agent::ProductConfig {
            name: self.name.clone(),
            build: Some(self.build.clone()),
            build_command: None,
            install_dir: self.install_dir.clone(),
            restart: self.restart.clone(),
            preflight: self.preflight.clone(),
        }
    }
}

/// The agent configuration (TOML) that `setup` describes, written by the agent's own
/// serializer (so every key is spelled as the agent reads it).
pub fn agent_config_toml(setup: &AgentSetup) -> Result<String, super::Error> {
    toml::to_string(&setup.config()).map_err(|e| super::Error::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> AgentSetup {
        AgentSetup {
            state_dir: "/tmp/a \"quoted\" dir/state".into(),
            trusted_root: "/tmp/root.json".into(),
            relays: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
            origin: Some("http://127.0.0.1:3".into()),
            allow_direct: true,
            poll_interval: Some(7),
            manager: Some(ManagerLink {
                url: "http://127.0.0.1:4".into(),
                enroll_token_file: "/tmp/t\\oken".into(),
                hostname: "host-1".into(),
            }),
            modules: vec![ModuleSetup {
                name: "antimalware".into(),
                components: vec!["antimalware.pattern".into()],
                install_dir: "/tmp/av".into(),
                reload: Some("echo 'reload'\tnow".into()),
                self_upgrade: false,
            }],
            products: vec![ProductSetup {
                name: "scanner".into(),
                build: "9.5.1514".into(),
                install_dir: "/tmp/opt".into(),
                restart: Some("true".into()),
                preflight: vec!["test -e /tmp/gate".into()],
            }],
        }
    }

    #[test]
    fn the_agent_reads_back_what_the_setup_says() {
        let s = setup();
        let c: agent::AgentConfig = toml::from_str(&agent_config_toml(&s).unwrap()).unwrap();
        assert_eq!(c.state_dir, s.state_dir);
        assert_eq!(c.relays, s.relays);
        assert_eq!(c.origin, s.origin);
        assert!(c.allow_direct);
        assert_eq!(c.poll_interval, 7);
        assert_eq!(
            c.link.enroll_token_file.as_deref(),
            Some("/tmp/t\\oken".as_ref())
        );
        assert_eq!(c.link.hostname.as_deref(), Some("host-1"));
        assert_eq!(c.modules[0].reload.as_deref(), Some("echo 'reload'\tnow"));
        assert_eq!(c.modules[0].components, ["antimalware.pattern"]);
        assert_eq!(c.products[0].build.as_deref(), Some("9.5.1514"));
        assert_eq!(c.products[0].preflight, ["test -e /tmp/gate"]);
    }

    #[test]
    fn what_the_setup_leaves_out_takes_the_agents_defaults() {
        let s = AgentSetup {
            poll_interval: None,
            manager: None,
            origin: None,
            ..setup()
        };
        let c: agent::AgentConfig = toml::from_str(&agent_config_toml(&s).unwrap()).unwrap();
        assert_eq!(c.poll_interval, 300);
        assert!(c.link.manager.is_none() && c.origin.is_none() && c.link.hostname.is_none());
    }
}
