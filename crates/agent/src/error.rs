//! Errors of the agent, each naming what failed and where.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tuf(#[from] tuf::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Transport(#[from] transport::Error),
    /// Host plumbing shared with the relay (node): trust anchor, settings, the manager link.
    #[error(transparent)]
    Node(#[from] node::Error),
    /// A patch archive that is refused: what is wrong with it and, for limits, which key.
    #[error("patch archive {}: {reason}", archive.display())]
    PatchArchive { archive: PathBuf, reason: String },
    /// A member path beneath a product's or module's directory that the agent will not use: a
    /// symlink, or something other than the directory or regular file expected, at the member or
    /// one of its parents (see `beneath`).
    #[error("{member} in {}: {reason}", root.display())]
    UnsafePath {
        root: PathBuf,
        member: String,
        reason: String,
    },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
