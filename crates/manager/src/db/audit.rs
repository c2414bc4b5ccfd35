//! The audit log of administrative changes.

use rusqlite::params;

use super::{now, sql, Db};
use crate::error::Result;

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

    pub fn audit_log(&self, limit: u32) -> Result<Vec<serde_json::Value>> {
        let c = self.conn()?;
        let mut st = c
            .prepare("SELECT time, actor, action, detail FROM audit ORDER BY id DESC LIMIT ?1")
            .map_err(sql)?;
        let rows = st
            .query_map(params![limit], |r| {
                Ok(serde_json::json!({"time": r.get::<_, String>(0)?, "actor": r.get::<_, String>(1)?,
                    "action": r.get::<_, String>(2)?, "detail": r.get::<_, String>(3)?}))
            })
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }
}
