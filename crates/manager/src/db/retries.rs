//! Retries: an operator asks a host to try again a version it gave up on (a failed reload).
//! The request is handed to the host in its policy (`Policy::retry`) until the host
//! acknowledges it (its heartbeat's applied policy names the request's id) or ignored it
//! [`MAX_SENT`] times (a host too old to know retries). While it is pending, the failure the
//! host still reports for that version is not recorded again; the request itself clears the
//! failure rollouts recorded for the host, so the host's next attempt is judged afresh.

use std::borrow::Cow;

use model::protocol::{Heartbeat, VersionRetry};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::{new_secret, now, sql, Db};
use crate::error::{Error, Result};

/// Replies a retry is handed out in without an acknowledgement before it is dropped.
pub const MAX_SENT: i64 = 3;

/// A retry as requested (the answer of `POST /api/v1/hosts/{id}/retry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    pub id: String,
    pub host_id: String,
    pub component: String,
    pub version: String,
    pub requested: String,
}

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::BadRequest {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Db {
    /// Ask host `host_id` to try `version` of `component` again; clears the failure rollouts
    /// recorded for the host and that version. `actor` is recorded in the audit log.
    pub fn request_retry(
        &self,
        host_id: &str,
        component: &str,
        version: &str,
        actor: &str,
    ) -> Result<Retry> {
        model::check_component(component).map_err(|e| bad("component", e.to_string()))?;
        version
            .parse::<model::Version>()
            .map_err(|e| bad("version", e.to_string()))?;
        let id = new_secret("retry")?[6..22].to_string();
        let requested = now();
        self.transaction(|tx| {
            let exists: Option<i64> = tx
                .query_row("SELECT 1 FROM hosts WHERE id = ?1", params![host_id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql)?;
            if exists.is_none() {
                return Err(Error::NotFound(format!("host {host_id:?}")));
            }
            tx.execute(
                "INSERT OR REPLACE INTO host_retries (id, host_id, component, version, requested)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, host_id, component, version, requested],
            )
            .map_err(sql)?;
            let cleared = tx
                .execute(
                    "UPDATE rollout_hosts SET failed = NULL, failed_at = NULL
                     WHERE host_id = ?1 AND failed IS NOT NULL AND rollout_id IN
                       (SELECT id FROM rollouts WHERE component = ?2 AND version = ?3)",
                    params![host_id, component, version],
                )
                .map_err(sql)?;
            super::rollouts::audit_tx(
                tx,
                actor,
                "host-retry",
                &format!("{host_id}: {component} {version} (rollout failures cleared: {cleared})"),
            )
        })?;
        self.forget_active();
        Ok(Retry {
            id,
            host_id: host_id.to_string(),
            component: component.to_string(),
            version: version.to_string(),
            requested,
        })
    }

    /// The retries to hand host `host_id` in this reply (each counted as sent once more).
    pub fn retries_to_send(&self, host_id: &str) -> Result<Vec<VersionRetry>> {
        self.transaction(|tx| {
            let list = pending(tx, host_id)?;
            if !list.is_empty() {
                tx.execute(
                    "UPDATE host_retries SET sent = sent + 1 WHERE host_id = ?1",
                    params![host_id],
                )
                .map_err(sql)?;
            }
            Ok(list.into_iter().map(|(r, _)| r).collect())
        })
    }
}

fn pending(tx: &Transaction<'_>, host_id: &str) -> Result<Vec<(VersionRetry, i64)>> {
    let mut st = tx
        .prepare_cached(
            "SELECT id, component, version, sent FROM host_retries WHERE host_id = ?1 ORDER BY id",
        )
        .map_err(sql)?;
    let rows = st
        .query_map(params![host_id], |r| {
            Ok((
                VersionRetry {
                    id: r.get(0)?,
                    component: r.get(1)?,
                    version: r.get(2)?,
                },
                r.get(3)?,
            ))
        })
        .map_err(sql)?;
    rows.collect::<std::result::Result<_, _>>().map_err(sql)
}

/// In a heartbeat's transaction: drop the retries the host acknowledged (or ignored
/// [`MAX_SENT`] times), and leave out of the heartbeat the failures it still reports for
/// versions whose retry is pending (reported before it acted on the retry).
pub(super) fn settle<'a>(
    tx: &Transaction<'_>,
    host_id: &str,
    b: &'a Heartbeat,
) -> Result<Cow<'a, Heartbeat>> {
    let list = pending(tx, host_id)?;
    if list.is_empty() {
        return Ok(Cow::Borrowed(b));
    }
    let acked = |id: &str| {
        b.applied_policy
            .as_ref()
            .is_some_and(|p| p.retry.iter().any(|r| r.id == id))
    };
    let mut waiting = Vec::new();
    for (r, sent) in list {
        if acked(&r.id) || sent >= MAX_SENT {
            tx.execute("DELETE FROM host_retries WHERE id = ?1", params![r.id])
                .map_err(sql)?;
        } else {
            waiting.push(r);
        }
    }
    if waiting.is_empty() {
        return Ok(Cow::Borrowed(b));
    }
    let mut b = b.clone();
    b.failed_versions.retain(|f| {
        !waiting
            .iter()
            .any(|r| r.component == f.component && r.version == f.version)
    });
    Ok(Cow::Owned(b))
}
