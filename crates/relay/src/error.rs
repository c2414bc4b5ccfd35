//! Errors of the relay, each naming what failed and where.

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
    /// Host plumbing shared with the agent: trust anchor, settings, cache directory, manager.
    #[error(transparent)]
    Node(#[from] node::Error),
    #[error("{0}")]
    Transport(#[from] transport::Error),
    #[error("every upstream failed: {0}")]
    AllUpstreamsFailed(String),
    #[error("bundle {}: {reason}", path.display())]
    Bundle { path: PathBuf, reason: String },
    #[error("no view to serve yet in {}: run a sync or import a bundle", .0.display())]
    NoView(PathBuf),
    /// A sync cycle panicked (a bug): the cycle failed, the view in service is unchanged.
    #[error("the sync cycle panicked: {0}; the view in service is unchanged, the next cycle retries (please report this bug)")]
    Panicked(String),
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
