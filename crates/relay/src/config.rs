//! The relay's settings: command-line flags, or the same keys in a TOML file. The outgoing
//! HTTPS settings (one `ca` for upstreams and the manager) and the manager link are node's,
//! shared with the agent.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sync::SyncSettings;

/// Relay settings: command-line flags, or the same keys in a TOML file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Base URLs of upstreams (origin or parent relays), in order of preference.
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<String>,
    /// The relay's trust anchor: a root file shipped out of band (read-only).
    pub trusted_root: PathBuf,
    /// Cache directory: trusted metadata, objects, views (and the manager identity and policy).
    pub cache: PathBuf,
    /// Address to serve on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Seconds between syncs.
    #[serde(default = "default_poll")]
    pub poll_interval: u64,
    /// Views kept on disk (the one in service included).
    #[serde(default = "default_keep")]
    pub keep_views: usize,
    /// TLS certificate chain and key (PEM) for serving HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Outgoing HTTPS (upstreams and manager): `ca`, first_byte_timeout, stall_timeout, min_rate.
    #[serde(flatten)]
    pub http: node::HttpSettings,
    /// Days past expiry that timestamp/snapshot may still be served (air-gapped sites).
    #[serde(default)]
    pub offline_grace: u64,
    /// Serve the cache only (an air-gapped relay fed by bundles): no upstream, no sync.
    #[serde(default)]
    pub offline: bool,
    /// The manager (`manager`, `enroll_token_file`, `hostname`): a heartbeat after every
    /// sync; the group's policy (upstreams, poll interval) is applied from the next cycle on.
    #[serde(flatten)]
    pub link: node::LinkSettings,
    /// Bounds on served connections: `header_timeout`, `handshake_timeout`, `idle_timeout`
    /// (seconds), `max_connections`.
    #[serde(flatten)]
    pub serve: transport::ServeSettings,
    /// The relay replaces its own build: a new signed version of `component` is installed in
    /// `install_dir` and run under the supervisor (see the binary's `relay` command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_upgrade: Option<SelfUpgrade>,
}

/// Where a relay's own build lives (`[self_upgrade]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfUpgrade {
    /// Directory holding the `updraft` executable the relay runs from (the signed builds of
    /// the component `updraft`, the one the manager's rollouts and version rule know).
    pub install_dir: PathBuf,
}

/// How the offline grace is named in errors (the TOML key and the flag).
pub const OFFLINE_GRACE_KEY: &str = "offline_grace (--offline-grace)";
/// Most views kept on disk.
pub const MAX_KEEP_VIEWS: u64 = 1000;

/// The offline grace of `days` as a duration, within the allowed range (flag or TOML key).
pub fn offline_grace(days: u64) -> Result<time::Duration> {
    Ok(node::range::offline_grace(OFFLINE_GRACE_KEY, days)?)
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_poll() -> u64 {
    300
}
fn default_keep() -> usize {
    3
}

impl RelayConfig {
    /// A configuration with every default, for the trust anchor and cache given.
    pub fn new(trusted_root: PathBuf, cache: PathBuf) -> Self {
        RelayConfig {
            upstreams: Vec::new(),
            trusted_root,
            cache,
            listen: default_listen(),
            poll_interval: default_poll(),
            keep_views: default_keep(),
            tls_cert: None,
            tls_key: None,
            http: node::HttpSettings::default(),
            offline_grace: 0,
            offline: false,
            link: node::LinkSettings::default(),
            serve: transport::ServeSettings::default(),
            self_upgrade: None,
        }
    }

    /// Read a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message().trim())))
    }

    /// Check everything that can be checked before starting; returns the trust anchor bytes.
    pub fn validate(&self) -> Result<Vec<u8>> {
        if self.upstreams.is_empty() && !self.offline {
            return Err(Error::Config(
                "no upstream: give --upstream URL (origin or parent relay)".into(),
            ));
        }
        for u in &self.upstreams {
            node::url::check("upstream", u, node::url::SOURCE_SCHEMES)?;
        }
        let keep = u64::try_from(self.keep_views).unwrap_or(u64::MAX);
        node::range::check(
            "keep_views (--keep-views)",
            keep,
            1,
            MAX_KEEP_VIEWS,
            "views",
        )?;
        node::range::poll_interval("poll_interval (--poll-interval)", self.poll_interval)?;
        offline_grace(self.offline_grace)?;
        self.http.validate()?;
        self.serve.validate()?;
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(Error::Config("--tls-cert and --tls-key go together".into()));
        }
        self.link.validate(&self.cache)?;
        if let Some(up) = &self.self_upgrade {
            node::dirs::writable("self_upgrade.install_dir", &up.install_dir)?;
        }
        Ok(node::anchor::load(&self.trusted_root)?)
    }

    /// The sync settings; fails on an offline grace out of range (as [`Self::validate`]).
    pub fn sync_settings(&self, trusted_root: Vec<u8>, progress: bool) -> Result<SyncSettings> {
        Ok(SyncSettings {
            trusted_root,
            keep_views: self.keep_views,
            offline_grace: offline_grace(self.offline_grace)?,
            max_roles: 100_000,
            progress,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_takes_every_default_and_round_trips_through_toml() {
        let c: RelayConfig =
            toml::from_str("trusted_root = \"/r.json\"\ncache = \"/c\"\nupstream = [\"http://o\"]")
                .unwrap();
        let mut want = RelayConfig::new("/r.json".into(), "/c".into());
        want.upstreams = vec!["http://o".into()];
        assert_eq!(c, want);
        let mut full = want.clone();
        full.http.ca = Some("/ca.pem".into());
        full.link.manager = Some("https://m".into());
        let text = toml::to_string(&full).unwrap();
        assert_eq!(
            toml::from_str::<RelayConfig>(&text).unwrap(),
            full,
            "{text}"
        );
    }

    #[test]
    fn upstream_ca_is_still_accepted_and_unknown_keys_are_named() {
        let base = "trusted_root = \"/r.json\"\ncache = \"/c\"\n";
        let c: RelayConfig = toml::from_str(&format!("{base}upstream_ca = \"/ca.pem\"")).unwrap();
        assert_eq!(c.http.ca, Some(PathBuf::from("/ca.pem")));
        let e = toml::from_str::<RelayConfig>(&format!("{base}poll_intervall = 5")).unwrap_err();
        assert!(e.to_string().contains("poll_intervall"), "{e}");
    }
}
