//! Advisories: which builds of a product are affected, on which kind of host.

use std::fmt;

use model::protocol::Role;
use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{now, sql, Db};
use crate::error::{Error, Result};

/// An advisory (administrator input: unknown fields are refused).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Advisory {
    pub id: String,
    pub title: String,
    pub role: AdvisoryRole,
    pub product: String,
    /// Affected builds, e.g. "<9.5.1519" or ">=9.0,<9.5.1519".
    pub affected: String,
    #[serde(default)]
    pub fixed: Option<String>,
}

/// The hosts an advisory is about: one role, or `any`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdvisoryRole {
    Any,
    Agent,
    Relay,
}

impl AdvisoryRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AdvisoryRole::Any => "any",
            AdvisoryRole::Agent => "agent",
            AdvisoryRole::Relay => "relay",
        }
    }

    /// Whether a host of `role` is concerned.
    pub fn covers(self, role: Role) -> bool {
        matches!(
            (self, role),
            (AdvisoryRole::Any, _)
                | (AdvisoryRole::Agent, Role::Agent)
                | (AdvisoryRole::Relay, Role::Relay)
        )
    }
}

impl fmt::Display for AdvisoryRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AdvisoryRole {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "any" => Ok(AdvisoryRole::Any),
            "agent" => Ok(AdvisoryRole::Agent),
            "relay" => Ok(AdvisoryRole::Relay),
            other => Err(format!("role {other:?} is not agent, relay or any")),
        }
    }
}

impl Db {
    pub fn put_advisory(&self, a: &Advisory, actor: &str) -> Result<()> {
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
                params![a.id, a.title, a.role.as_str(), a.product, a.affected, a.fixed, now()],
            )
            .map_err(sql)?;
        self.audit(actor, "advisory-put", &a.id)
    }

    pub fn advisories(&self) -> Result<Vec<Advisory>> {
        let c = self.conn()?;
        let mut st = c
            .prepare("SELECT id, title, role, product, affected, fixed FROM advisories ORDER BY id")
            .map_err(sql)?;
        let rows = st.query_map([], row_advisory).map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }
}

fn row_advisory(r: &rusqlite::Row<'_>) -> rusqlite::Result<Advisory> {
    let role: String = r.get(2)?;
    Ok(Advisory {
        id: r.get(0)?,
        title: r.get(1)?,
        role: role.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
        })?,
        product: r.get(3)?,
        affected: r.get(4)?,
        fixed: r.get(5)?,
    })
}
