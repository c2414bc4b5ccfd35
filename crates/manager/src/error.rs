//! Errors of the manager.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Db(String),
    #[error("{field}: {reason}")]
    BadRequest { field: String, reason: String },
    /// What was asked for does not exist (404).
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
