//! Errors of the host plumbing, each naming the setting, file or URL that failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trust anchor cannot be read or is not a root signed by a threshold of its own keys.
    #[error("trusted root {}: {reason}", path.display())]
    Anchor { path: PathBuf, reason: String },
    /// A setting with a value that cannot work (`key` as the configuration file spells it).
    #[error("{key}: {reason}")]
    Setting { key: String, reason: String },
    /// A directory the host must write to cannot be created or written.
    #[error("{key} {}: {reason}", path.display())]
    Dir {
        key: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A state file that does not parse.
    #[error("{}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    /// A manager call that failed: which URL, and why (refused, unreachable, bad answer).
    #[error("manager {url}: {reason}")]
    Manager { url: String, reason: String },
    #[error(transparent)]
    Tuf(#[from] tuf::Error),
    #[error(transparent)]
    Transport(#[from] transport::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn setting(key: &str, reason: impl Into<String>) -> Self {
        Error::Setting {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
