//! Hosts as recorded from their heartbeats.

use std::collections::BTreeMap;

use model::protocol::{Heartbeat, ModuleReport, Policy, Role};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{history, now, role_column, sql, to_json_text, Db};
use crate::error::{Error, Result};

/// A host as recorded from its heartbeats.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Host {
    pub id: String,
    pub hostname: String,
    pub role: Role,
    pub group: String,
    pub enrolled: String,
    pub last_seen: Option<String>,
    pub upstream: Option<String>,
    pub builds: BTreeMap<String, String>,
    pub components: BTreeMap<String, String>,
    pub modules: Vec<ModuleReport>,
    pub last_result: Option<String>,
    pub applied_policy: Option<Policy>,
    /// Another enrolled host reports the same hostname (a copied credential, a re-enrolled
    /// machine, or a host impersonating another).
    #[serde(default)]
    pub duplicate_hostname: bool,
    /// When an operator revoked the host: its credential no longer authenticates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    /// The metadata the host last said it trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<model::protocol::TrustState>,
}

impl Db {
    /// Record a (validated) heartbeat of `host_id`: its state, its new history entries
    /// (deduplicated and cut to the history limits) and what it says about the `active`
    /// rollouts, in one transaction; returns how many history entries were new.
    pub fn heartbeat(
        &self,
        host_id: &str,
        b: &Heartbeat,
        active: &[crate::rollout::Rollout],
    ) -> Result<usize> {
        let builds = to_json_text("builds", &b.builds)?;
        let components = to_json_text("components", &b.components)?;
        let modules = to_json_text("modules", &b.modules)?;
        let trust = b
            .trust
            .as_ref()
            .map(|t| to_json_text("trust", t))
            .transpose()?;
        let policy = b
            .applied_policy
            .as_ref()
            .map(|p| to_json_text("applied_policy", p))
            .transpose()?;
        self.transaction(|tx| {
            // The hostname is indexed: written only when it changed (the common heartbeat keeps it).
            tx.prepare_cached(
                "UPDATE hosts SET hostname = ?2 WHERE id = ?1 AND hostname IS NOT ?2",
            )
            .map_err(sql)?
            .execute(params![host_id, b.hostname])
            .map_err(sql)?;
            let recorded = tx
                .prepare_cached(
                    "UPDATE hosts SET last_seen = ?2, upstream = ?3, builds = ?4, components = ?5,
                 modules = ?6, last_result = ?7, applied_policy = ?8, trust = ?9
                 WHERE id = ?1 AND revoked IS NULL",
                )
                .map_err(sql)?
                .execute(params![
                    host_id,
                    now(),
                    b.upstream,
                    builds,
                    components,
                    modules,
                    b.last_result,
                    policy,
                    trust,
                ])
                .map_err(sql)?;
            // Revoked or deleted while this request was on its way (it authenticated before):
            // nothing of it is recorded.
            if recorded != 1 {
                return Err(Error::NotFound(format!("host {host_id}")));
            }
            let b = super::retries::settle(tx, host_id, b)?;
            Db::observe_rollouts(tx, host_id, &b, active)?;
            history::append(tx, host_id, &b.history, self.history_limits)
        })
    }

    /// Every host, ordered by hostname and id.
    pub fn hosts(&self) -> Result<Vec<Host>> {
        let c = self.conn()?;
        let mut st = c
            .prepare(&format!("{HOST_SELECT} ORDER BY hostname, id"))
            .map_err(sql)?;
        let rows = st.query_map([], row_host).map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    /// How many hosts are enrolled.
    pub fn host_count(&self) -> Result<u64> {
        let n: i64 = self
            .conn()?
            .query_row("SELECT COUNT(*) FROM hosts", [], |r| r.get(0))
            .map_err(sql)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Revoke host `id`: its credential stops working at once (heartbeats are answered 401);
    /// its record and history stay until it is deleted. False: no such host (or revoked).
    pub fn revoke_host(&self, id: &str, actor: &str) -> Result<bool> {
        self.transaction(|tx| {
            let n = tx
                .execute(
                    "UPDATE hosts SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL",
                    params![id, now()],
                )
                .map_err(sql)?;
            if n > 0 {
                super::rollouts::audit_tx(tx, actor, "host-revoke", id)?;
            }
            Ok(n > 0)
        })
    }

    /// Delete host `id` with its credential, hotfix history, rollout reports and retries
    /// (a host that enrols again is a new host). False: no such host.
    pub fn delete_host(&self, id: &str, actor: &str) -> Result<bool> {
        self.transaction(|tx| {
            let hostname: Option<String> = tx
                .query_row(
                    "SELECT hostname FROM hosts WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            let Some(hostname) = hostname else {
                return Ok(false);
            };
            for table in ["hotfix_history", "rollout_hosts", "host_retries"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE host_id = ?1"),
                    params![id],
                )
                .map_err(sql)?;
            }
            tx.execute("DELETE FROM hosts WHERE id = ?1", params![id])
                .map_err(sql)?;
            super::rollouts::audit_tx(tx, actor, "host-delete", &format!("{id} ({hostname:?})"))?;
            Ok(true)
        })
    }

    pub fn host(&self, id: &str) -> Result<Option<Host>> {
        self.conn()?
            .prepare_cached(&format!("{HOST_SELECT} WHERE id = ?1"))
            .map_err(sql)?
            .query_row(params![id], row_host)
            .optional()
            .map_err(sql)
    }
}

const HOST_SELECT: &str = "SELECT id, hostname, role, grp, enrolled, last_seen, upstream, builds,
    components, modules, last_result, applied_policy,
    (SELECT COUNT(*) FROM hosts AS o WHERE o.hostname = hosts.hostname) > 1, revoked, trust FROM hosts";

/// The JSON columns were written by [`Db::heartbeat`]; one a reader cannot parse shows as empty
/// rather than hiding the whole fleet.
fn row_host(r: &rusqlite::Row<'_>) -> rusqlite::Result<Host> {
    Ok(Host {
        id: r.get(0)?,
        hostname: r.get(1)?,
        role: role_column(r, 2)?,
        group: r.get(3)?,
        enrolled: r.get(4)?,
        last_seen: r.get(5)?,
        upstream: r.get(6)?,
        builds: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
        components: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or_default(),
        modules: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
        last_result: r.get(10)?,
        applied_policy: r
            .get::<_, Option<String>>(11)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        duplicate_hostname: r.get(12)?,
        revoked: r.get(13)?,
        trust: r
            .get::<_, Option<String>>(14)?
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}
