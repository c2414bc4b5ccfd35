//! The agent's TOML configuration. Unknown keys, missing files and an unusable root are errors
//! that name the key or file, before anything runs. The trust anchor, URL and directory checks,
//! the outgoing HTTPS settings and the manager settings are node's, shared with the relay; the
//! configuration serializes back to the same TOML (`toml::to_string`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The file this configuration was read from (not a key: set by [`AgentConfig::load`]);
    /// a new build of the agent is checked against it.
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
    /// The command a new build of this host's own executable is checked with (`NEW COMMAND
    /// --check --config FILE`): `agent`, or `relay` for a relay's build (not a key).
    #[serde(skip)]
    pub check_command: Option<String>,
    /// Where the agent keeps its state (trusted metadata, staged versions, history, status).
    pub state_dir: PathBuf,
    /// Read-only trust anchor shipped with the install.
    pub trusted_root: PathBuf,
    /// Relay base URLs in order of preference.
    #[serde(default)]
    pub relays: Vec<String>,
    /// The origin, used only when no relay answers and `allow_direct` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default)]
    pub allow_direct: bool,
    /// Seconds between polls (a random jitter of up to 10 % is added).
    #[serde(default = "default_poll")]
    pub poll_interval: u64,
    /// Platform of this host, matched against `platforms` of targets.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// Outgoing HTTPS (relays, origin and manager): `ca` (an extra CA certificate, PEM, besides
    /// the system roots), `first_byte_timeout`, `stall_timeout`, `min_rate` (slow sources are
    /// cut off and the next one is tried).
    #[serde(flatten)]
    pub http: node::HttpSettings,
    /// The manager link: `manager` (base URL), `enroll_token_file`, `hostname` (the same keys
    /// as the relay's).
    #[serde(flatten)]
    pub link: node::LinkSettings,
    #[serde(default, rename = "module")]
    pub modules: Vec<ModuleConfig>,
    #[serde(default, rename = "product")]
    pub products: Vec<ProductConfig>,
    /// Bounds on what one patch archive may unpack to.
    #[serde(default)]
    pub patch_limits: PatchLimits,
    /// The most memory, in MiB, one step of rebuilding a file from deltas may use (the base
    /// held in memory, a window or the delta); a route needing more is not taken and the full
    /// file is downloaded. 64 to 1024 (the publisher's budget, the default).
    #[serde(default = "default_delta_memory_mib")]
    pub delta_memory_mib: u64,
}

/// Bounds on what one patch archive may unpack to, enforced while it is unpacked: the agent
/// never writes more than `max_unpacked_bytes` of files nor more than `max_members` members,
/// and refuses (recording why in the hotfix history) an archive that would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchLimits {
    /// Total size of the files of one patch, unpacked, in bytes (default 1 GiB).
    #[serde(default = "default_max_unpacked_bytes")]
    pub max_unpacked_bytes: u64,
    /// Members (files and directories) of one patch archive (default 10,000).
    #[serde(default = "default_max_members")]
    pub max_members: u64,
}

impl Default for PatchLimits {
    fn default() -> Self {
        PatchLimits {
            max_unpacked_bytes: default_max_unpacked_bytes(),
            max_members: default_max_members(),
        }
    }
}

fn default_max_unpacked_bytes() -> u64 {
    1 << 30
}

fn default_max_members() -> u64 {
    10_000
}

/// A consumer of components, e.g. a virus scanner reading its signature directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleConfig {
    pub name: String,
    pub components: Vec<String>,
    pub install_dir: PathBuf,
    /// Shell command run after a change (e.g. `clamdscan --reload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<String>,
    /// This module holds the `updraft` executable the agent runs from (one component, its
    /// file in `install_dir`): a new version is installed executable, must pass
    /// `<new> agent --config <this file> --check` before it stays, and the agent restarts into
    /// it under its supervisor, returning to the previous build if the new one does not report.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub self_upgrade: bool,
}

/// A product that receives patches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductConfig {
    pub name: String,
    /// The installed build, or `build_command` that prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_command: Option<String>,
    pub install_dir: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// Commands that must each exit 0 before a patch is applied.
    #[serde(default)]
    pub preflight: Vec<String>,
}

fn default_poll() -> u64 {
    300
}

fn default_delta_memory_mib() -> u64 {
    node::delta::MEMORY_BUDGET >> 20
}

fn default_platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

fn config(e: impl std::fmt::Display) -> Error {
    Error::Config(e.to_string())
}

impl AgentConfig {
    /// A configuration with every default, for the state directory and trust anchor given
    /// (no sources yet: add relays or an origin).
    pub fn new(state_dir: PathBuf, trusted_root: PathBuf) -> Self {
        AgentConfig {
            source_file: None,
            check_command: None,
            state_dir,
            trusted_root,
            relays: Vec::new(),
            origin: None,
            allow_direct: false,
            poll_interval: default_poll(),
            platform: default_platform(),
            http: node::HttpSettings::default(),
            link: node::LinkSettings::default(),
            modules: Vec::new(),
            products: Vec::new(),
            patch_limits: PatchLimits::default(),
            delta_memory_mib: default_delta_memory_mib(),
        }
    }

    /// The HTTP client's bounds from this configuration (slow sources, extra CA).
    pub fn http_config(&self) -> Result<transport::HttpConfig> {
        self.http.http_config().map_err(config)
    }

    /// The manager settings, as node's manager link takes them.
    pub fn link_settings(&self) -> node::LinkSettings {
        self.link.clone()
    }

    /// Read and check a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let mut c: AgentConfig = toml::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message().trim())))?;
        c.validate()?;
        c.source_file = Some(path.to_path_buf());
        Ok(c)
    }

    /// Check what can be checked before running; returns the trust anchor bytes.
    pub fn validate(&self) -> Result<Vec<u8>> {
        let root = node::anchor::load(&self.trusted_root).map_err(config)?;
        self.validate_sources()?;
        self.link_settings()
            .validate(&self.state_dir)
            .map_err(config)?;
        self.validate_limits()?;
        let mut names = HashSet::new();
        for m in &self.modules {
            m.validate(&mut names)?;
        }
        if self.modules.iter().filter(|m| m.self_upgrade).count() > 1 {
            return Err(Error::Config(
                "only one module may have self_upgrade = true".into(),
            ));
        }
        for p in &self.products {
            p.validate(&mut names)?;
        }
        node::dirs::writable("state_dir", &self.state_dir).map_err(config)?;
        Ok(root)
    }

    fn validate_sources(&self) -> Result<()> {
        if self.relays.is_empty() && self.origin.is_none() {
            return Err(Error::Config(
                "relays is empty and there is no origin: nothing to update from".into(),
            ));
        }
        if self.allow_direct && self.origin.is_none() {
            return Err(Error::Config(
                "allow_direct = true needs origin = URL".into(),
            ));
        }
        for u in &self.relays {
            node::url::check("relays", u, node::url::SOURCE_SCHEMES).map_err(config)?;
        }
        if let Some(u) = &self.origin {
            node::url::check("origin", u, node::url::SOURCE_SCHEMES).map_err(config)?;
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<()> {
        if self.patch_limits.max_unpacked_bytes == 0 {
            return Err(Error::Config(
                "patch_limits.max_unpacked_bytes must be at least 1".into(),
            ));
        }
        if self.patch_limits.max_members == 0 {
            return Err(Error::Config(
                "patch_limits.max_members must be at least 1".into(),
            ));
        }
        node::range::poll_interval("poll_interval", self.poll_interval).map_err(config)?;
        let most = default_delta_memory_mib();
        node::range::check("delta_memory_mib", self.delta_memory_mib, 64, most, "MiB")
            .map_err(config)?;
        self.http.validate().map_err(config)
    }

    /// Update sources in the order they are tried: relays, then the origin if allowed.
    pub fn sources(&self) -> Vec<(String, bool)> {
        self.sources_with(None)
    }

    /// As [`AgentConfig::sources`], with the manager's policy (relay list, direct fallback)
    /// taking precedence over the file.
    pub fn sources_with(&self, policy: Option<&crate::manager::Policy>) -> Vec<(String, bool)> {
        let relays = policy
            .filter(|p| !p.relays.is_empty())
            .map(|p| &p.relays)
            .unwrap_or(&self.relays);
        let allow_direct = policy.map(|p| p.allow_direct).unwrap_or(self.allow_direct);
        let mut v: Vec<(String, bool)> = relays.iter().map(|r| (r.clone(), false)).collect();
        if allow_direct || relays.is_empty() {
            if let Some(o) = &self.origin {
                v.push((o.clone(), true));
            }
        }
        v
    }
}

impl ModuleConfig {
    /// Check the module; `names` holds the modules and products seen so far.
    fn validate(&self, names: &mut HashSet<String>) -> Result<()> {
        if !names.insert(format!("module {}", self.name)) {
            return Err(Error::Config(format!(
                "module {:?} is configured twice",
                self.name
            )));
        }
        if self.components.is_empty() {
            return Err(Error::Config(format!(
                "module {:?}: components is empty",
                self.name
            )));
        }
        for c in &self.components {
            model::check_component(c)
                .map_err(|e| Error::Config(format!("module {:?}: {e}", self.name)))?;
        }
        if self.self_upgrade && self.reload.is_some() {
            return Err(Error::Config(format!(
                "module {:?}: a self_upgrade module has no reload (its new build is checked with `agent --check`)",
                self.name
            )));
        }
        if self.self_upgrade && self.components.len() != 1 {
            return Err(Error::Config(format!(
                "module {:?}: a self_upgrade module has exactly one component (the updraft build)",
                self.name
            )));
        }
        Ok(())
    }
}

impl ProductConfig {
    /// Check the product; `names` holds the modules and products seen so far.
    fn validate(&self, names: &mut HashSet<String>) -> Result<()> {
        if !names.insert(format!("product {}", self.name)) {
            return Err(Error::Config(format!(
                "product {:?} is configured twice",
                self.name
            )));
        }
        match (&self.build, &self.build_command) {
            (Some(b), None) => {
                b.parse::<model::Version>()
                    .map_err(|e| Error::Config(format!("product {:?}: build: {e}", self.name)))?;
                Ok(())
            }
            (None, Some(_)) => Ok(()),
            _ => Err(Error::Config(format!(
                "product {:?}: give exactly one of build or build_command",
                self.name
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
state_dir = "/var/lib/updraft"
trusted_root = "/etc/updraft/root.json"   # read-only trust anchor shipped with the install
relays = ["http://relay-1:8080", "http://relay-2:8080"]   # in order of preference
origin = "http://origin:8080"             # optional
allow_direct = false                       # go to origin when no relay answers
poll_interval = 300                        # seconds
delta_memory_mib = 1024                    # optional; memory one delta rebuild step may use

[[module]]
name = "antimalware"
components = ["antimalware.pattern", "antimalware.engine"]
install_dir = "/var/lib/clamav"
reload = "clamdscan --reload"             # optional; run after a change

[[product]]
name = "scanner"
build = "9.5.1514"                         # or build_command = "..." that prints it
install_dir = "/opt/scanner"
restart = "systemctl restart scanner"      # optional
preflight = ["systemctl is-active scanner"] # optional; each must exit 0

[patch_limits]                             # optional; these are the defaults
max_unpacked_bytes = 1073741824            # files of one patch, unpacked (1 GiB)
max_members = 10000                        # members of one patch archive
"#;

    #[test]
    fn the_documented_minimal_configuration_parses() {
        let c: AgentConfig = toml::from_str(MINIMAL).unwrap();
        assert_eq!(c.relays.len(), 2);
        assert!(!c.allow_direct);
        assert_eq!(
            c.modules[0].components,
            ["antimalware.pattern", "antimalware.engine"]
        );
        assert_eq!(c.products[0].preflight, ["systemctl is-active scanner"]);
        assert_eq!(c.patch_limits, PatchLimits::default());
        assert_eq!(c.patch_limits.max_unpacked_bytes, 1 << 30);
        assert_eq!(c.patch_limits.max_members, 10_000);
        // Relays first; the origin only with allow_direct (or when there are no relays).
        assert_eq!(c.sources().len(), 2);
    }

    #[test]
    fn patch_limits_default_when_absent_and_unknown_limits_are_named() {
        let without = MINIMAL.split("[patch_limits]").next().unwrap();
        let c: AgentConfig = toml::from_str(without).unwrap();
        assert_eq!(c.patch_limits, PatchLimits::default());
        let c: AgentConfig =
            toml::from_str(&format!("{without}\n[patch_limits]\nmax_members = 3\n")).unwrap();
        assert_eq!(c.patch_limits.max_members, 3);
        assert_eq!(c.patch_limits.max_unpacked_bytes, 1 << 30);
        let err =
            toml::from_str::<AgentConfig>(&format!("{without}\n[patch_limits]\nmax_bytes = 3\n"))
                .unwrap_err();
        assert!(err.to_string().contains("max_bytes"), "{err}");
    }

    #[test]
    fn a_configuration_serializes_to_toml_that_reads_back_the_same() {
        let mut c: AgentConfig = toml::from_str(MINIMAL).unwrap();
        c.http.ca = Some("/etc/updraft/ca.pem".into());
        c.http.min_rate = 1;
        c.link.manager = Some("https://manager:8443".into());
        let text = toml::to_string(&c).unwrap();
        assert!(text.contains("ca = \"/etc/updraft/ca.pem\""), "{text}");
        assert_eq!(toml::from_str::<AgentConfig>(&text).unwrap(), c, "{text}");
        let mut fresh = AgentConfig::new("/var/lib/updraft".into(), "/etc/root.json".into());
        fresh.relays = vec!["http://relay-1:8080".into()];
        let back: AgentConfig = toml::from_str(&toml::to_string(&fresh).unwrap()).unwrap();
        assert_eq!(back, fresh);
        assert_eq!(back.http, node::HttpSettings::default());
    }

    #[test]
    fn the_delta_memory_budget_is_checked_against_its_range() {
        let mut c: AgentConfig = toml::from_str(MINIMAL).unwrap();
        assert_eq!(c.delta_memory_mib, 1024);
        c.validate_limits().unwrap();
        for bad in [0, 63, 1025, u64::MAX] {
            c.delta_memory_mib = bad;
            let err = c.validate_limits().unwrap_err().to_string();
            assert!(
                err.contains("delta_memory_mib") && err.contains("64 to 1024"),
                "{err}"
            );
        }
        c.delta_memory_mib = 64;
        c.validate_limits().unwrap();
    }

    #[test]
    fn unknown_keys_are_named() {
        let err =
            toml::from_str::<AgentConfig>(&format!("{MINIMAL}\npoll_intervall = 5\n")).unwrap_err();
        assert!(err.to_string().contains("poll_intervall"), "{err}");
    }
}
