//! One setting for all outgoing HTTP(S) of a host: its upstreams (relays, origin) and its
//! manager alike, so that a private CA given once is trusted everywhere. The defaults are
//! stated here and nowhere else (the serde defaults of the configuration files).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Seconds to establish a connection (TCP and TLS).
pub const CONNECT_TIMEOUT_SECS: u64 = 5;

/// Outgoing HTTPS settings, flattened into the agent's and the relay's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpSettings {
    /// Extra CA certificate (PEM) trusted besides the system roots, for upstreams and the
    /// manager. `upstream_ca` is accepted as its former (relay) name.
    #[serde(
        default,
        alias = "upstream_ca",
        skip_serializing_if = "Option::is_none"
    )]
    pub ca: Option<PathBuf>,
    /// Seconds a source may take to start answering a request before the host gives up on it
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

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            ca: None,
            first_byte_timeout: default_first_byte_timeout(),
            stall_timeout: default_stall_timeout(),
            min_rate: default_min_rate(),
        }
    }
}

impl HttpSettings {
    /// Check what can be checked before running (the CA file is read by [`Self::http_config`]).
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("first_byte_timeout", self.first_byte_timeout),
            ("stall_timeout", self.stall_timeout),
        ] {
            crate::range::check(key, v, 1, crate::range::MAX_TIMEOUT_SECS, "seconds")?;
        }
        Ok(())
    }

    /// The HTTP client's bounds and trust roots; reads the CA file.
    pub fn http_config(&self) -> Result<transport::HttpConfig> {
        self.validate()?;
        let mut http = transport::HttpConfig {
            connect_timeout: Duration::from_secs(CONNECT_TIMEOUT_SECS),
            first_byte_timeout: Duration::from_secs(self.first_byte_timeout),
            stall_timeout: Duration::from_secs(self.stall_timeout),
            min_rate: self.min_rate,
            ..transport::HttpConfig::default()
        };
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca)
                .map_err(|e| Error::setting("ca", format!("{}: {e}", ca.display())))?;
            http.extra_root_pem.push(pem);
        }
        Ok(http)
    }

    /// The one client a host uses for every outgoing request (upstreams and manager).
    pub fn client(&self) -> Result<transport::HttpFetcher> {
        let config = self.http_config()?;
        transport::HttpFetcher::new(&config).map_err(|e| match (&self.ca, e) {
            (Some(ca), transport::Error::Client(reason)) => {
                Error::setting("ca", format!("{}: {reason}", ca.display()))
            }
            (_, e) => Error::Transport(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_stated_once_and_absent_keys_take_them() {
        let s: HttpSettings = toml::from_str("").unwrap();
        assert_eq!(s, HttpSettings::default());
        assert_eq!(s.ca, None);
        assert_eq!(
            s.first_byte_timeout,
            transport::DEFAULT_FIRST_BYTE_TIMEOUT_SECS
        );
        assert_eq!(s.stall_timeout, transport::DEFAULT_STALL_TIMEOUT_SECS);
        assert_eq!(s.min_rate, transport::DEFAULT_MIN_RATE);
        let c = s.http_config().unwrap();
        assert_eq!(c.first_byte_timeout, Duration::from_secs(10));
        assert_eq!(c.connect_timeout, Duration::from_secs(CONNECT_TIMEOUT_SECS));
        assert!(c.extra_root_pem.is_empty());
    }

    #[test]
    fn upstream_ca_is_the_former_name_of_ca() {
        let s: HttpSettings = toml::from_str("upstream_ca = \"/etc/ca.pem\"").unwrap();
        assert_eq!(s.ca, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn zero_timeouts_and_unreadable_or_empty_cas_are_named() {
        let zero = HttpSettings {
            stall_timeout: 0,
            ..HttpSettings::default()
        };
        assert!(zero
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("stall_timeout:"));
        assert!(zero.client().is_err());
        let missing = HttpSettings {
            ca: Some("/no/ca.pem".into()),
            ..HttpSettings::default()
        };
        let e = missing.client().unwrap_err().to_string();
        assert!(e.starts_with("ca: /no/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, b"not a certificate").unwrap();
        let e = HttpSettings {
            ca: Some(empty.clone()),
            ..HttpSettings::default()
        }
        .client()
        .unwrap_err()
        .to_string();
        assert!(e.contains(empty.to_str().unwrap()), "{e}");
    }
}
