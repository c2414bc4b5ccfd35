//! Groups: the policy each hands to its hosts, and the relay tree.

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{sql, Db};
use crate::error::{Error, Result};

/// Policy a group hands to its hosts in heartbeat replies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct Group {
    #[serde(default)]
    pub name: String,
    /// "agent" or "relay".
    pub role: String,
    /// For relay groups: the parent relay group (its relays are this group's upstreams).
    #[serde(default)]
    pub parent: Option<String>,
    /// Ordered relay list (agents) or upstreams (relays).
    #[serde(default)]
    pub relays: Vec<String>,
    #[serde(default = "default_poll")]
    pub poll_interval: u64,
    #[serde(default)]
    pub allow_direct: bool,
    /// component → pinned version.
    #[serde(default)]
    pub pinned: BTreeMap<String, String>,
}

fn default_poll() -> u64 {
    300
}

impl Db {
    // --- groups ---

    pub fn group(&self, name: &str) -> Result<Option<Group>> {
        self.conn()?
            .prepare_cached("SELECT name, role, parent, relays, poll_interval, allow_direct, pinned FROM groups WHERE name = ?1")
            .map_err(sql)?
            .query_row(params![name], row_group)
            .optional()
            .map_err(sql)
    }

    pub fn groups(&self) -> Result<Vec<Group>> {
        let c = self.conn()?;
        let mut st = c
            .prepare("SELECT name, role, parent, relays, poll_interval, allow_direct, pinned FROM groups ORDER BY name")
            .map_err(sql)?;
        let rows = st.query_map([], row_group).map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    /// Create or replace a group.
    pub fn put_group(&self, g: &Group, actor: &str) -> Result<()> {
        if g.name.is_empty() || g.name.len() > 100 {
            return Err(Error::BadRequest {
                field: "name".into(),
                reason: "1 to 100 characters".into(),
            });
        }
        if g.role != "agent" && g.role != "relay" {
            return Err(Error::BadRequest {
                field: "role".into(),
                reason: "agent or relay".into(),
            });
        }
        if let Some(p) = &g.parent {
            match self.group(p)? {
                Some(pg) if pg.role == "relay" => {}
                _ => {
                    return Err(Error::BadRequest {
                        field: "parent".into(),
                        reason: format!("parent {p:?} is not a relay group"),
                    })
                }
            }
            // No cycles in the relay tree.
            let mut cur = Some(p.clone());
            let mut seen = 0;
            while let Some(name) = cur {
                if name == g.name || seen > 1000 {
                    return Err(Error::BadRequest {
                        field: "parent".into(),
                        reason: "the relay tree would have a cycle".into(),
                    });
                }
                cur = self.group(&name)?.and_then(|x| x.parent);
                seen += 1;
            }
        }
        if g.poll_interval == 0 {
            return Err(Error::BadRequest {
                field: "poll_interval".into(),
                reason: "at least 1".into(),
            });
        }
        self.conn()?
            .execute(
                "INSERT OR REPLACE INTO groups (name, role, parent, relays, poll_interval, allow_direct, pinned)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    g.name,
                    g.role,
                    g.parent,
                    serde_json::to_string(&g.relays).unwrap_or_default(),
                    g.poll_interval as i64,
                    g.allow_direct,
                    serde_json::to_string(&g.pinned).unwrap_or_default()
                ],
            )
            .map_err(sql)?;
        self.audit(
            actor,
            "group-put",
            &serde_json::to_string(g).unwrap_or_default(),
        )
    }
}

fn row_group(r: &rusqlite::Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        name: r.get(0)?,
        role: r.get(1)?,
        parent: r.get(2)?,
        relays: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
        poll_interval: r.get::<_, i64>(4)?.max(1) as u64,
        allow_direct: r.get(5)?,
        pinned: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
    })
}
