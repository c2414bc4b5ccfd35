//! The agent's TOML configuration. Unknown keys, missing files and an unusable root are errors
//! that name the key or file, before anything runs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Where the agent keeps its state (trusted metadata, staged versions, history, status).
    pub state_dir: PathBuf,
    /// Read-only trust anchor shipped with the install.
    pub trusted_root: PathBuf,
    /// Relay base URLs in order of preference.
    #[serde(default)]
    pub relays: Vec<String>,
    /// The origin, used only when no relay answers and `allow_direct` is true.
    #[serde(default)]
    pub origin: Option<String>,
    #[serde(default)]
    pub allow_direct: bool,
    /// Seconds between polls (a random jitter of up to 10 % is added).
    #[serde(default = "default_poll")]
    pub poll_interval: u64,
    /// Platform of this host, matched against `platforms` of targets.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// Extra CA certificate (PEM) for HTTPS relays, besides the system roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Seconds a source may take to start answering a request before the agent gives up on it
    /// and fails over to the next source (slow retrieval).
    #[serde(default = "default_first_byte_timeout")]
    pub first_byte_timeout: u64,
    /// Progress window in seconds: a download that receives less than `min_rate` bytes per
    /// second over this window (or nothing at all) is cut off and the next source is tried.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout: u64,
    /// Minimum download rate in bytes per second, measured per `stall_timeout` window (0: only
    /// a complete stall is cut off).
    #[serde(default = "default_min_rate")]
    pub min_rate: u64,
    /// The manager's base URL: heartbeats after every cycle, policy from the replies.
    #[serde(default)]
    pub manager: Option<String>,
    /// File holding an enrolment token, used once to obtain this host's credential.
    #[serde(default)]
    pub enroll_token_file: Option<PathBuf>,
    /// Name reported to the manager (default: the system host name).
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default, rename = "module")]
    pub modules: Vec<ModuleConfig>,
    #[serde(default, rename = "product")]
    pub products: Vec<ProductConfig>,
    /// Bounds on what one patch archive may unpack to.
    #[serde(default)]
    pub patch_limits: PatchLimits,
}

/// Bounds on what one patch archive may unpack to, enforced while it is unpacked: the agent
/// never writes more than `max_unpacked_bytes` of files nor more than `max_members` members,
/// and refuses (recording why in the hotfix history) an archive that would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleConfig {
    pub name: String,
    pub components: Vec<String>,
    pub install_dir: PathBuf,
    /// Shell command run after a change (e.g. `clamdscan --reload`).
    #[serde(default)]
    pub reload: Option<String>,
}

/// A product that receives patches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductConfig {
    pub name: String,
    /// The installed build, or `build_command` that prints it.
    #[serde(default)]
    pub build: Option<String>,
    #[serde(default)]
    pub build_command: Option<String>,
    pub install_dir: PathBuf,
    #[serde(default)]
    pub restart: Option<String>,
    /// Commands that must each exit 0 before a patch is applied.
    #[serde(default)]
    pub preflight: Vec<String>,
}

fn default_poll() -> u64 {
    300
}

fn default_first_byte_timeout() -> u64 {
    transport::DEFAULT_FIRST_BYTE_TIMEOUT_SECS
}

fn default_stall_timeout() -> u64 {
    transport::DEFAULT_STALL_TIMEOUT_SECS
}

fn default_min_rate() -> u64 {
    transport::DEFAULT_MIN_RATE
}

fn default_platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

impl AgentConfig {
    /// The HTTP client's bounds from this configuration (slow sources, extra CA).
    pub fn http_config(&self) -> Result<transport::HttpConfig> {
        let mut http = transport::HttpConfig {
            connect_timeout: std::time::Duration::from_secs(5),
            first_byte_timeout: std::time::Duration::from_secs(self.first_byte_timeout),
            stall_timeout: std::time::Duration::from_secs(self.stall_timeout),
            min_rate: self.min_rate,
            ..transport::HttpConfig::default()
        };
        if let Some(ca) = &self.ca {
            http.extra_root_pem.push(
                std::fs::read(ca)
                    .map_err(|e| Error::Config(format!("ca {}: {e}", ca.display())))?,
            );
        }
        Ok(http)
    }

    /// Read and check a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let c: AgentConfig = toml::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message().trim())))?;
        c.validate()?;
        Ok(c)
    }

    /// Check what can be checked before running; returns the trust anchor bytes.
    pub fn validate(&self) -> Result<Vec<u8>> {
        let root = std::fs::read(&self.trusted_root).map_err(|e| {
            Error::Config(format!("trusted_root {}: {e}", self.trusted_root.display()))
        })?;
        tuf::TrustedSet::new(&root, time::OffsetDateTime::now_utc()).map_err(|e| {
            Error::Config(format!("trusted_root {}: {e}", self.trusted_root.display()))
        })?;
        if self.relays.is_empty() && self.origin.is_none() {
            return Err(Error::Config(
                "relays is empty and there is no origin: nothing to update from".into(),
            ));
        }
        if self.enroll_token_file.is_some() && self.manager.is_none() {
            return Err(Error::Config(
                "enroll_token_file needs manager = URL".into(),
            ));
        }
        if let Some(f) = &self.enroll_token_file {
            if !f.is_file() && !self.state_dir.join("manager.json").is_file() {
                return Err(Error::Config(format!(
                    "enroll_token_file {}: not a readable file",
                    f.display()
                )));
            }
        }
        if self.allow_direct && self.origin.is_none() {
            return Err(Error::Config(
                "allow_direct = true needs origin = URL".into(),
            ));
        }
        for u in self.relays.iter().chain(self.origin.iter()) {
            if !(u.starts_with("http://") || u.starts_with("https://") || u.starts_with("file://"))
            {
                return Err(Error::Config(format!(
                    "{u:?} is not an http://, https:// or file:// URL"
                )));
            }
        }
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
        if self.poll_interval == 0 {
            return Err(Error::Config("poll_interval must be at least 1".into()));
        }
        if self.first_byte_timeout == 0 || self.stall_timeout == 0 {
            return Err(Error::Config(
                "first_byte_timeout and stall_timeout must be at least 1 (seconds)".into(),
            ));
        }
        let mut names = HashSet::new();
        for m in &self.modules {
            if !names.insert(format!("module {}", m.name)) {
                return Err(Error::Config(format!(
                    "module {:?} is configured twice",
                    m.name
                )));
            }
            if m.components.is_empty() {
                return Err(Error::Config(format!(
                    "module {:?}: components is empty",
                    m.name
                )));
            }
            for c in &m.components {
                model::check_component(c)
                    .map_err(|e| Error::Config(format!("module {:?}: {e}", m.name)))?;
            }
        }
        for p in &self.products {
            if !names.insert(format!("product {}", p.name)) {
                return Err(Error::Config(format!(
                    "product {:?} is configured twice",
                    p.name
                )));
            }
            match (&p.build, &p.build_command) {
                (Some(b), None) => {
                    b.parse::<model::Version>()
                        .map_err(|e| Error::Config(format!("product {:?}: build: {e}", p.name)))?;
                }
                (None, Some(_)) => {}
                _ => {
                    return Err(Error::Config(format!(
                        "product {:?}: give exactly one of build or build_command",
                        p.name
                    )))
                }
            }
        }
        std::fs::create_dir_all(&self.state_dir)
            .map_err(|e| Error::Config(format!("state_dir {}: {e}", self.state_dir.display())))?;
        tempfile::NamedTempFile::new_in(&self.state_dir).map_err(|e| {
            Error::Config(format!(
                "state_dir {} is not writable: {e}",
                self.state_dir.display()
            ))
        })?;
        Ok(root)
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
    fn unknown_keys_are_named() {
        let err =
            toml::from_str::<AgentConfig>(&format!("{MINIMAL}\npoll_intervall = 5\n")).unwrap_err();
        assert!(err.to_string().contains("poll_intervall"), "{err}");
    }
}
