//! Hosts as recorded from their heartbeats.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{now, sql, Db, HistoryEntry};
use crate::error::Result;

/// A host as recorded from its heartbeats.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Host {
    pub id: String,
    pub hostname: String,
    pub role: String,
    pub group: String,
    pub enrolled: String,
    pub last_seen: Option<String>,
    pub upstream: Option<String>,
    pub builds: BTreeMap<String, String>,
    pub components: BTreeMap<String, String>,
    pub modules: serde_json::Value,
    pub last_result: Option<String>,
    pub applied_policy: Option<serde_json::Value>,
}

/// What a heartbeat updates.
#[derive(Debug, Clone)]
pub struct Beat {
    pub hostname: String,
    pub upstream: Option<String>,
    pub builds: BTreeMap<String, String>,
    pub components: BTreeMap<String, String>,
    pub modules: serde_json::Value,
    pub history: Vec<HistoryEntry>,
    pub last_result: Option<String>,
    pub applied_policy: Option<serde_json::Value>,
}

impl Db {
    // --- heartbeats ---

    pub fn heartbeat(&self, host_id: &str, b: &Beat) -> Result<()> {
        let mut c = self.conn()?;
        let tx = c.transaction().map_err(sql)?;
        let js = |v: &BTreeMap<String, String>| serde_json::to_string(v).unwrap_or_default();
        tx.prepare_cached(
            "UPDATE hosts SET hostname = ?2, last_seen = ?3, upstream = ?4, builds = ?5, components = ?6,
             modules = ?7, last_result = ?8, applied_policy = ?9 WHERE id = ?1",
        )
        .map_err(sql)?
        .execute(params![
            host_id,
            b.hostname,
            now(),
            b.upstream,
            js(&b.builds),
            js(&b.components),
            b.modules.to_string(),
            b.last_result,
            b.applied_policy.as_ref().map(|p| p.to_string()),
        ])
        .map_err(sql)?;
        for h in &b.history {
            tx.prepare_cached(
                "INSERT INTO hotfix_history (host_id, time, patch_id, product, from_build, to_build, outcome, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(sql)?
            .execute(params![host_id, h.time, h.patch_id, h.product, h.from_build, h.to_build, h.outcome, h.message])
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(())
    }

    // --- hosts ---

    pub fn hosts(&self) -> Result<Vec<Host>> {
        let c = self.conn()?;
        let mut st = c
            .prepare(
                "SELECT id, hostname, role, grp, enrolled, last_seen, upstream, builds, components, modules,
                 last_result, applied_policy FROM hosts ORDER BY hostname, id",
            )
            .map_err(sql)?;
        let rows = st.query_map([], row_host).map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    pub fn host(&self, id: &str) -> Result<Option<Host>> {
        Ok(self.hosts()?.into_iter().find(|h| h.id == id))
    }
}

fn row_host(r: &rusqlite::Row<'_>) -> rusqlite::Result<Host> {
    Ok(Host {
        id: r.get(0)?,
        hostname: r.get(1)?,
        role: r.get(2)?,
        group: r.get(3)?,
        enrolled: r.get(4)?,
        last_seen: r.get(5)?,
        upstream: r.get(6)?,
        builds: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
        components: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or_default(),
        modules: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or(serde_json::Value::Null),
        last_result: r.get(10)?,
        applied_policy: r
            .get::<_, Option<String>>(11)?
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}
