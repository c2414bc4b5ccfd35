//! The audit log of administrative changes.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{now, sql, Db};
use crate::error::Result;

/// One administrative change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The cursor of paged answers.
    #[serde(default)]
    pub id: i64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

impl Db {
    pub fn audit(&self, actor: &str, action: &str, detail: &str) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO audit (time, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
                params![now(), actor, action, detail],
            )
            .map_err(sql)?;
        Ok(())
    }

    /// The last `limit` changes, newest first.
    pub fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        self.audit_page(None, limit)
    }

    /// At most `limit` changes older than the one with id `before`, newest first.
    pub fn audit_page(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>> {
        let c = self.conn()?;
        let mut st = c
            .prepare_cached(
                "SELECT id, time, actor, action, detail FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(sql)?;
        let rows = st
            .query_map(params![before.unwrap_or(i64::MAX), limit], |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    time: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    detail: r.get(4)?,
                })
            })
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }
}
