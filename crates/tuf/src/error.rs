//! Typed errors of the TUF crate. Each says what failed and on which role, file or URL.

use std::path::PathBuf;

/// Failure to fetch bytes through a [`crate::Fetcher`].
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered 403 or 404 (the file does not exist).
    #[error("{url}: not found")]
    NotFound { url: String },
    /// Any other HTTP status.
    #[error("{url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    /// The response is longer than the caller allows (announced or actual length).
    #[error("{url}: more than the allowed {max} bytes (endless data?)")]
    TooLarge { url: String, max: u64 },
    /// Connection, timeout or read failure.
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
}

/// Everything that can go wrong while verifying, fetching, persisting or publishing TUF metadata.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{role}: malformed metadata: {reason}")]
    Malformed { role: String, reason: String },
    #[error(
        "{role}: only {valid} valid signature(s) from distinct keys, threshold is {threshold}"
    )]
    Threshold {
        role: String,
        valid: usize,
        threshold: u64,
    },
    /// Two entries of the `signatures` array name the same key id (hex compared without regard
    /// to case). The specification requires unique key ids; such metadata is invalid as a whole.
    #[error(
        "{role}: key id {keyid} appears more than once in \"signatures\" (key ids in signatures must be unique); the metadata is invalid, ask the publisher to re-sign it"
    )]
    DuplicateSignature { role: String, keyid: String },
    #[error(
        "{role}: version {got} is lower than the trusted version {trusted} (rollback attack?)"
    )]
    Rollback {
        role: String,
        got: u64,
        trusted: u64,
    },
    #[error("{role}: version {got} does not match the expected version {expected}")]
    VersionMismatch {
        role: String,
        expected: u64,
        got: u64,
    },
    #[error("{role}: expired at {expires} (update started at {now}); the repository or mirror may be frozen, or the publisher must refresh it")]
    Expired {
        role: String,
        expires: String,
        now: String,
    },
    #[error("{what}: length {got} does not match the signed length {expected}")]
    LengthMismatch {
        what: String,
        expected: u64,
        got: u64,
    },
    #[error("{what}: {algorithm} hash does not match the signed hash")]
    HashMismatch { what: String, algorithm: String },
    #[error("{what}: more than the allowed {max} bytes (endless data?)")]
    TooLarge { what: String, max: u64 },
    #[error("{what}: not listed in {listed_in}")]
    NotListed { what: String, listed_in: String },
    #[error("{role} (delegated by {delegator}): not trusted through this delegation: {reason}")]
    Delegation {
        role: String,
        delegator: String,
        reason: String,
    },
    #[error("{role}: {reason}")]
    Order { role: String, reason: String },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A key rotation would make a role's threshold 0 or larger than its number of keys.
    #[error("{role}: threshold {threshold} must be between 1 and the number of keys ({keys}); choose a threshold (--threshold) of at most the number of keys (--keys)")]
    ThresholdAboveKeys {
        role: String,
        threshold: u64,
        keys: usize,
    },
    /// A key rotation would lower a role's threshold without being told to.
    #[error("{role}: rotation would lower the threshold from {from} to {to}, which weakens the role; pass --allow-lower-threshold if that is intended (or keep --threshold {from})")]
    ThresholdLowered { role: String, from: u64, to: u64 },
    #[error("repository: {0}")]
    Repository(String),
    #[error("key: {0}")]
    Key(String),
}

impl Error {
    /// `(served, trusted)` when a source served a timestamp older than the trusted one (5.4.3.1):
    /// the source is behind (a lagging mirror) or replaying; either way it was refused.
    pub fn timestamp_rollback(&self) -> Option<(u64, u64)> {
        match self {
            Error::Rollback { role, got, trusted } if role == "timestamp" => Some((*got, *trusted)),
            _ => None,
        }
    }

    pub(crate) fn malformed(role: &str, reason: impl std::fmt::Display) -> Self {
        Error::Malformed {
            role: role.to_string(),
            reason: reason.to_string(),
        }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
