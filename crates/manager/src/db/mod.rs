//! Storage on SQLite (WAL): opening, versioned migrations and the shared helpers. One file per
//! subject: hosts and heartbeats, groups, tokens and credentials, console users and sessions,
//! hotfix history, advisories, the audit log.

mod advisories;
mod audit;
mod gates;
mod groups;
mod history;
mod hosts;
mod retries;
pub mod rollouts;
mod tokens;
pub mod users;

pub use advisories::Advisory;
pub use advisories::AdvisoryRole;
pub use audit::AuditEntry;
pub use groups::{Group, GroupSettings};
pub use history::{HistoryLimits, HistoryRow};
pub use hosts::Host;
pub use retries::Retry;
pub use tokens::{AdminToken, EnrollToken, HostCredential};
pub use users::{Person, Session, User, UserRole};

use std::path::PathBuf;
use std::sync::Mutex;

use model::protocol::Role;
use ring::rand::SecureRandom;
use rusqlite::{Connection, Transaction};

use crate::error::{Error, Result};

/// Versioned schema migrations, applied in order; `PRAGMA user_version` records the last one.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_bounds.sql")),
    (3, include_str!("../../migrations/0003_rollouts.sql")),
    (4, include_str!("../../migrations/0004_users.sql")),
    (5, include_str!("../../migrations/0005_lifecycle.sql")),
    (6, include_str!("../../migrations/0006_trust.sql")),
];

pub fn now() -> String {
    tuf::metadata::format_expires(time::OffsetDateTime::now_utc())
}

fn hash(token: &str) -> String {
    tuf::crypto::sha256_hex(token.as_bytes())
}

/// A new random secret with a readable prefix.
pub fn new_secret(prefix: &str) -> Result<String> {
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::Other("no randomness".into()))?;
    Ok(format!("{prefix}_{}", hex::encode(b)))
}

/// Parse `sqlite://PATH` (or a bare path).
pub fn sqlite_path(url: &str) -> Result<PathBuf> {
    if let Some(p) = url.strip_prefix("sqlite://") {
        return Ok(PathBuf::from(p));
    }
    if url.contains("://") {
        return Err(Error::Config(format!(
            "database URL {url:?} is not supported by this build: use sqlite://PATH"
        )));
    }
    Ok(PathBuf::from(url))
}

/// The database.
#[derive(Debug)]
pub struct Db {
    conn: Mutex<Connection>,
    history_limits: HistoryLimits,
    /// The active rollouts as last read, and when (see `active_rollouts_cached`).
    active_cache: Mutex<
        Option<(
            std::time::Instant,
            std::sync::Arc<Vec<crate::rollout::Rollout>>,
        )>,
    >,
}

fn sql(e: rusqlite::Error) -> Error {
    Error::Db(e.to_string())
}

/// Column `i` of a row as a [`Role`] (this crate writes roles as [`Role::as_str`]).
fn role_column(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Role> {
    let text: String = r.get(i)?;
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    })
}

/// A value stored as JSON text (data this crate serialized itself).
fn to_json_text<T: serde::Serialize>(what: &str, v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Other(format!("cannot store {what}: {e}")))
}

/// Create the database file 0600 (in a new directory 0700) before SQLite opens it, and narrow
/// an existing one: host credentials' hashes and fleet data are for the manager only. SQLite
/// gives its `-wal` and `-shm` files the database file's mode.
fn private_file(path: &std::path::Path) -> Result<()> {
    let bad = |e: std::io::Error| Error::Config(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            tuf::fsutil::create_private_dir_all(dir)
                .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path).map_err(bad)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(bad)?;
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let side = std::path::Path::new(&name);
            if side.exists() {
                std::fs::set_permissions(side, std::fs::Permissions::from_mode(0o600))
                    .map_err(bad)?;
            }
        }
    }
    #[cfg(not(unix))]
    options.open(path).map_err(bad)?;
    Ok(())
}

impl Db {
    /// Open (creating) and migrate.
    pub fn open(url: &str) -> Result<Self> {
        let path = sqlite_path(url)?;
        private_file(&path)?;
        let conn = Connection::open(&path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        let db = Db {
            conn: Mutex::new(conn),
            history_limits: HistoryLimits::default(),
            active_cache: Mutex::new(None),
        };
        db.migrate()?;
        Ok(db)
    }

    /// Keep at most these many history entries (per host, in all), the newest.
    pub fn with_history_limits(mut self, limits: HistoryLimits) -> Self {
        self.history_limits = limits;
        self
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| Error::Other("database lock poisoned".into()))
    }

    /// Run `f` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    fn transaction<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut c = self.conn()?;
        let tx = c.transaction().map_err(sql)?;
        let v = f(&tx)?;
        tx.commit().map_err(sql)?;
        Ok(v)
    }

    fn migrate(&self) -> Result<()> {
        let current = self.schema_version()?;
        for (v, script) in MIGRATIONS {
            if *v > current {
                self.transaction(|tx| {
                    tx.execute_batch(script).map_err(sql)?;
                    tx.pragma_update(None, "user_version", v).map_err(sql)
                })?;
                tracing::info!(version = v, "database migrated");
            }
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        self.conn()?
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql)
    }
}
