//! Storage on SQLite (WAL): opening, versioned migrations and the shared helpers. One file per
//! subject: hosts and heartbeats, groups, tokens and credentials, hotfix history, advisories,
//! the audit log.

mod advisories;
mod audit;
mod groups;
mod history;
mod hosts;
mod tokens;

pub use advisories::Advisory;
pub use groups::Group;
pub use history::HistoryEntry;
pub use hosts::{Beat, Host};

use std::path::PathBuf;
use std::sync::Mutex;

use ring::rand::SecureRandom;
use rusqlite::Connection;

use crate::error::{Error, Result};

/// Versioned schema migrations, applied in order; `PRAGMA user_version` records the last one.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../migrations/0001_init.sql"))];

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
}

fn sql(e: rusqlite::Error) -> Error {
    Error::Db(e.to_string())
}

impl Db {
    /// Open (creating) and migrate.
    pub fn open(url: &str) -> Result<Self> {
        let path = sqlite_path(url)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
        }
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
        };
        db.migrate()?;
        Ok(db)
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| Error::Other("database lock poisoned".into()))
    }

    fn migrate(&self) -> Result<()> {
        let mut c = self.conn()?;
        let current: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql)?;
        for (v, script) in MIGRATIONS {
            if *v > current {
                let tx = c.transaction().map_err(sql)?;
                tx.execute_batch(script).map_err(sql)?;
                tx.pragma_update(None, "user_version", v).map_err(sql)?;
                tx.commit().map_err(sql)?;
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
