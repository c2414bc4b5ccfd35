//! Advisories: which builds of a product are affected.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{now, sql, Db};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Advisory {
    pub id: String,
    pub title: String,
    /// "agent", "relay" or "any".
    pub role: String,
    pub product: String,
    /// Affected builds, e.g. "<9.5.1519" or ">=9.0,<9.5.1519".
    pub affected: String,
    #[serde(default)]
    pub fixed: Option<String>,
}

impl Db {
    // --- advisories ---

    pub fn put_advisory(&self, a: &Advisory, actor: &str) -> Result<()> {
        if !matches!(a.role.as_str(), "agent" | "relay" | "any") {
            return Err(Error::BadRequest {
                field: "role".into(),
                reason: "agent, relay or any".into(),
            });
        }
        a.affected
            .parse::<model::Requirement>()
            .map_err(|e| Error::BadRequest {
                field: "affected".into(),
                reason: e.to_string(),
            })?;
        self.conn()?
            .execute(
                "INSERT OR REPLACE INTO advisories (id, title, role, product, affected, fixed, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![a.id, a.title, a.role, a.product, a.affected, a.fixed, now()],
            )
            .map_err(sql)?;
        self.audit(actor, "advisory-put", &a.id)
    }

    pub fn advisories(&self) -> Result<Vec<Advisory>> {
        let c = self.conn()?;
        let mut st = c
            .prepare("SELECT id, title, role, product, affected, fixed FROM advisories ORDER BY id")
            .map_err(sql)?;
        let rows = st
            .query_map([], |r| {
                Ok(Advisory {
                    id: r.get(0)?,
                    title: r.get(1)?,
                    role: r.get(2)?,
                    product: r.get(3)?,
                    affected: r.get(4)?,
                    fixed: r.get(5)?,
                })
            })
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }
}
