//! The audit log of administrative changes.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{now, sql, Db};
use crate::error::Result;

/// One administrative change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
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
        let c = self.conn()?;
        let mut st = c
            .prepare("SELECT time, actor, action, detail FROM audit ORDER BY id DESC LIMIT ?1")
            .map_err(sql)?;
        let rows = st
            .query_map(params![limit], |r| {
                Ok(AuditEntry {
                    time: r.get(0)?,
                    actor: r.get(1)?,
                    action: r.get(2)?,
                    detail: r.get(3)?,
                })
            })
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }
}
