//! The bounds every server (origin, relay, manager; plain and TLS) puts on its connections: the
//! settings as configured (seconds and a count, flattened into the hosts' TOML and given as
//! flags) and the resolved limits the serving loop applies. The defaults are stated here and
//! nowhere else.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Seconds a client has to send a complete request head: from the connection (after the TLS
/// handshake) for the first request, from its first byte for the next ones.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// Seconds a client has to complete the TLS handshake after connecting.
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// Seconds a connection may stay without traffic (a kept-alive connection between requests, a
/// response the client does not read, a request body that does not arrive).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Connections served at once at most, whatever the descriptor limit allows.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 16_384;
/// The largest timeout accepted (one day): longer ones are configuration mistakes.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
/// The largest connection limit accepted.
pub const MAX_CONNECTIONS: u64 = 1_000_000;

/// Connection bounds as configured: TOML keys `header_timeout`, `handshake_timeout`,
/// `idle_timeout` (seconds) and `max_connections`, flattened into a server's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServeSettings {
    #[serde(default = "default_header_timeout")]
    pub header_timeout: u64,
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: u64,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: u64,
    /// At most this many connections at once; the descriptor limit (less a reserve for files
    /// and outgoing connections) lowers it further.
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
}

fn default_header_timeout() -> u64 {
    DEFAULT_HEADER_TIMEOUT_SECS
}
fn default_handshake_timeout() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_SECS
}
fn default_idle_timeout() -> u64 {
    DEFAULT_IDLE_TIMEOUT_SECS
}
fn default_max_connections() -> u64 {
    DEFAULT_MAX_CONNECTIONS
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            header_timeout: DEFAULT_HEADER_TIMEOUT_SECS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT_SECS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT_SECS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ServeSettings {
    /// Check the ranges; the error names the key and the accepted range.
    pub fn validate(&self) -> Result<(), Error> {
        for (key, v) in [
            ("header_timeout", self.header_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if !(1..=MAX_TIMEOUT_SECS).contains(&v) {
                return Err(Error::Setting {
                    key,
                    reason: format!("{v} is out of range: give 1 to {MAX_TIMEOUT_SECS} seconds"),
                });
            }
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(Error::Setting {
                key: "max_connections",
                reason: format!(
                    "{} is out of range: give 1 to {MAX_CONNECTIONS}",
                    self.max_connections
                ),
            });
        }
        Ok(())
    }

    /// The limits to serve with: validated, and the connection limit lowered to what this
    /// process's descriptor limit allows.
    pub fn limits(&self) -> Result<ServeLimits, Error> {
        self.validate()?;
        let max = self.max_connections.min(descriptor_budget(nofile_limit()));
        Ok(ServeLimits {
            header_timeout: Duration::from_secs(self.header_timeout),
            handshake_timeout: Duration::from_secs(self.handshake_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_connections: usize::try_from(max).unwrap_or(usize::MAX),
        })
    }
}

/// Validated limits, as the serving loop applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeLimits {
    pub header_timeout: Duration,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    /// At least 1.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    /// The default settings, resolved against this process's descriptor limit.
    fn default() -> Self {
        let s = ServeSettings::default();
        ServeLimits {
            header_timeout: Duration::from_secs(s.header_timeout),
            handshake_timeout: Duration::from_secs(s.handshake_timeout),
            idle_timeout: Duration::from_secs(s.idle_timeout),
            max_connections: usize::try_from(
                s.max_connections.min(descriptor_budget(nofile_limit())),
            )
            .unwrap_or(1),
        }
    }
}

/// The soft limit on open descriptors (`None`: unlimited).
fn nofile_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Connections that fit under a descriptor limit: an eighth of it (at least 32, at most 1024)
/// stays free for files, the database, outgoing connections and the listener; at least 1.
pub fn descriptor_budget(nofile: Option<u64>) -> u64 {
    match nofile {
        None => MAX_CONNECTIONS,
        Some(n) => {
            let reserve = (n / 8).clamp(32, 1024);
            n.saturating_sub(reserve).max(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_stays_below_the_descriptor_limit() {
        assert_eq!(descriptor_budget(Some(128)), 96);
        assert_eq!(descriptor_budget(Some(1024)), 896);
        assert_eq!(descriptor_budget(Some(1_048_576)), 1_047_552);
        assert_eq!(descriptor_budget(Some(10)), 1);
        assert_eq!(descriptor_budget(None), MAX_CONNECTIONS);
    }

    #[test]
    fn out_of_range_settings_are_refused_naming_the_key() {
        for (key, s) in [
            (
                "header_timeout",
                ServeSettings {
                    header_timeout: 0,
                    ..Default::default()
                },
            ),
            (
                "idle_timeout",
                ServeSettings {
                    idle_timeout: u64::MAX,
                    ..Default::default()
                },
            ),
            (
                "max_connections",
                ServeSettings {
                    max_connections: 0,
                    ..Default::default()
                },
            ),
        ] {
            let e = s.limits().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
        let l = ServeSettings::default().limits().unwrap();
        assert_eq!(l.header_timeout, Duration::from_secs(10));
        assert!(l.max_connections >= 1);
    }
}
