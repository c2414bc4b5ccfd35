//! Hosts' hotfix history.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{sql, Db};
use crate::error::Result;

/// One hotfix history entry as hosts report it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryEntry {
    pub time: String,
    pub patch_id: String,
    pub product: String,
    pub from_build: String,
    pub to_build: String,
    pub outcome: String,
    pub message: String,
}

impl Db {
    pub fn history(
        &self,
        host_id: Option<&str>,
        patch_id: Option<&str>,
    ) -> Result<Vec<(String, HistoryEntry)>> {
        let c = self.conn()?;
        let mut st = c
            .prepare(
                "SELECT host_id, time, patch_id, product, from_build, to_build, outcome, message FROM hotfix_history
                 WHERE (?1 IS NULL OR host_id = ?1) AND (?2 IS NULL OR patch_id = ?2) ORDER BY id",
            )
            .map_err(sql)?;
        let rows = st
            .query_map(params![host_id, patch_id], |r| {
                Ok((
                    r.get(0)?,
                    HistoryEntry {
                        time: r.get(1)?,
                        patch_id: r.get(2)?,
                        product: r.get(3)?,
                        from_build: r.get(4)?,
                        to_build: r.get(5)?,
                        outcome: r.get(6)?,
                        message: r.get(7)?,
                    },
                ))
            })
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }
}
