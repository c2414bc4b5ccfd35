//! Hosts' hotfix history, as [`model::protocol::HistoryEntry`]; the outcome is stored with its
//! wire spelling, so an outcome this build does not know is kept as it came.

use std::collections::HashSet;

use model::protocol::HistoryEntry;
use rusqlite::{params, Transaction};
use serde::{Deserialize, Serialize};

use super::{sql, Db};
use crate::error::Result;

/// How much hotfix history is kept: the newest `per_host` entries of each host and the newest
/// `total` entries in all (older ones are deleted when new ones arrive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryLimits {
    pub per_host: u64,
    pub total: u64,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            per_host: 10_000,
            total: 1_000_000,
        }
    }
}

/// A stored history entry with its id (the cursor of paged answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub id: i64,
    #[serde(flatten)]
    pub entry: HistoryEntry,
}

/// Append `entries` to `host_id`'s history (inside the heartbeat's transaction). An entry the
/// host already reported (same time, patch, product, builds, outcome and message) is stored once;
/// then the history is cut to `limits`, oldest first. Returns how many entries were new.
pub(super) fn append(
    tx: &Transaction<'_>,
    host_id: &str,
    entries: &[HistoryEntry],
    limits: HistoryLimits,
) -> Result<usize> {
    let mut st = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO hotfix_history (host_id, time, patch_id, product, from_build, to_build, outcome, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(sql)?;
    let mut added = 0;
    for h in entries {
        added += st
            .execute(params![
                host_id,
                h.time,
                h.patch_id,
                h.product,
                h.from_build,
                h.to_build,
                h.outcome.as_str(),
                h.message
            ])
            .map_err(sql)?;
    }
    if added > 0 {
        retain(tx, host_id, limits)?;
    }
    Ok(added)
}

/// Delete all but the newest `limits.per_host` entries of `host_id` and the newest
/// `limits.total` entries in all.
fn retain(tx: &Transaction<'_>, host_id: &str, limits: HistoryLimits) -> Result<()> {
    let offset = |n: u64| i64::try_from(n.saturating_sub(1)).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "DELETE FROM hotfix_history WHERE host_id = ?1 AND id < (
             SELECT id FROM hotfix_history WHERE host_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )
    .map_err(sql)?
    .execute(params![host_id, offset(limits.per_host)])
    .map_err(sql)?;
    // The id span bounds the row count from above: the exact cut runs only when it may matter.
    let span: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(id) - MIN(id) + 1, 0) FROM hotfix_history",
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;
    if u64::try_from(span).unwrap_or(0) > limits.total {
        tx.prepare_cached(
            "DELETE FROM hotfix_history WHERE id < (
                 SELECT id FROM hotfix_history ORDER BY id DESC LIMIT 1 OFFSET ?1)",
        )
        .map_err(sql)?
        .execute(params![offset(limits.total)])
        .map_err(sql)?;
    }
    Ok(())
}

const COLUMNS: &str =
    "id, host_id, time, patch_id, product, from_build, to_build, outcome, message";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, HistoryRow)> {
    Ok((
        r.get(1)?,
        HistoryRow {
            id: r.get(0)?,
            entry: HistoryEntry {
                time: r.get(2)?,
                patch_id: r.get(3)?,
                product: r.get(4)?,
                from_build: r.get(5)?,
                to_build: r.get(6)?,
                outcome: r.get::<_, String>(7)?.into(),
                message: r.get(8)?,
                version: None,
            },
        },
    ))
}

impl Db {
    /// History entries, oldest first, with the host id of each; filtered by host and/or patch
    /// (bounded by the history limits).
    pub fn history(
        &self,
        host_id: Option<&str>,
        patch_id: Option<&str>,
    ) -> Result<Vec<(String, HistoryEntry)>> {
        let c = self.conn()?;
        let mut st = c
            .prepare(&format!(
                "SELECT {COLUMNS} FROM hotfix_history
                 WHERE (?1 IS NULL OR host_id = ?1) AND (?2 IS NULL OR patch_id = ?2) ORDER BY id"
            ))
            .map_err(sql)?;
        let rows = st
            .query_map(params![host_id, patch_id], |r| {
                row(r).map(|(h, e)| (h, e.entry))
            })
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    /// One page of `host_id`'s history, oldest first: at most `limit` entries after the entry
    /// with id `after`.
    pub fn history_page(
        &self,
        host_id: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<HistoryRow>> {
        let c = self.conn()?;
        let mut st = c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM hotfix_history WHERE host_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
            ))
            .map_err(sql)?;
        let rows = st
            .query_map(params![host_id, after.unwrap_or(0), limit], |r| {
                row(r).map(|(_, e)| e)
            })
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    /// The newest `n` entries of `host_id`'s history, oldest first.
    pub fn history_latest(&self, host_id: &str, n: u32) -> Result<Vec<HistoryRow>> {
        let c = self.conn()?;
        let mut st = c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM hotfix_history WHERE host_id = ?1 ORDER BY id DESC LIMIT ?2"
            ))
            .map_err(sql)?;
        let rows = st
            .query_map(params![host_id, n], |r| row(r).map(|(_, e)| e))
            .map_err(sql)?;
        let mut v: Vec<HistoryRow> = rows.collect::<std::result::Result<_, _>>().map_err(sql)?;
        v.reverse();
        Ok(v)
    }

    /// How many history entries `host_id` has.
    pub fn history_count(&self, host_id: &str) -> Result<u64> {
        let n: i64 = self
            .conn()?
            .prepare_cached("SELECT COUNT(*) FROM hotfix_history WHERE host_id = ?1")
            .map_err(sql)?
            .query_row(params![host_id], |r| r.get(0))
            .map_err(sql)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The hosts that reported `outcome` for `patch_id`.
    pub fn hosts_reporting(&self, patch_id: &str, outcome: &str) -> Result<HashSet<String>> {
        let c = self.conn()?;
        let mut st = c
            .prepare_cached(
                "SELECT DISTINCT host_id FROM hotfix_history WHERE patch_id = ?1 AND outcome = ?2",
            )
            .map_err(sql)?;
        let rows = st
            .query_map(params![patch_id, outcome], |r| r.get(0))
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }
}

#[cfg(test)]
mod tests {
    use model::protocol::{Heartbeat, Outcome, Role};

    use crate::db::{Db, Group};

    fn entry(outcome: Outcome) -> model::protocol::HistoryEntry {
        model::protocol::HistoryEntry {
            time: "2026-01-01T00:00:00Z".into(),
            patch_id: "CP-1".into(),
            product: "scanner".into(),
            from_build: "1.0".into(),
            to_build: "1.1".into(),
            outcome,
            message: String::new(),
            version: None,
        }
    }

    #[test]
    fn outcomes_are_stored_with_their_wire_spelling_even_unknown_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(tmp.path().join("m.db").to_str().unwrap()).unwrap();
        db.put_group(
            &Group {
                name: "lab".into(),
                ..Group::default()
            },
            "test",
        )
        .unwrap();
        let token = db.create_enroll_token("lab", None, None).unwrap();
        let host = db.enroll(&token, "h", Role::Agent).unwrap().unwrap();
        let hb: Heartbeat = serde_json::from_value(serde_json::json!({
            "hostname": "h", "role": "agent",
            "history": [entry(Outcome::NotApplicable), entry(Outcome::Other("deferred".into()))],
        }))
        .unwrap();
        db.heartbeat(&host.host_id, &hb, &[]).unwrap();
        let stored: Vec<String> = db
            .conn()
            .unwrap()
            .prepare("SELECT outcome FROM hotfix_history ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(stored, ["not applicable", "deferred"]);
        let read: Vec<Outcome> = db
            .history(Some(&host.host_id), None)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.outcome)
            .collect();
        assert_eq!(
            read,
            [Outcome::NotApplicable, Outcome::Other("deferred".into())]
        );
    }

    #[test]
    fn history_is_deduplicated_and_cut_to_the_newest_per_host_and_in_all() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(tmp.path().join("m.db").to_str().unwrap())
            .unwrap()
            .with_history_limits(crate::db::HistoryLimits {
                per_host: 5,
                total: 8,
            });
        db.put_group(
            &Group {
                name: "lab".into(),
                ..Group::default()
            },
            "test",
        )
        .unwrap();
        let token = db.create_enroll_token("lab", None, None).unwrap();
        let a = db
            .enroll(&token, "a", Role::Agent)
            .unwrap()
            .unwrap()
            .host_id;
        let b = db
            .enroll(&token, "b", Role::Agent)
            .unwrap()
            .unwrap()
            .host_id;
        let beat = |host: &str, from: usize, n: usize| {
            let history: Vec<_> = (from..from + n)
                .map(|i| model::protocol::HistoryEntry {
                    message: format!("m{i}"),
                    ..entry(Outcome::Applied)
                })
                .collect();
            let hb = Heartbeat {
                history,
                ..serde_json::from_value(serde_json::json!({"hostname": "h", "role": "agent"}))
                    .unwrap()
            };
            db.heartbeat(host, &hb, &[]).unwrap()
        };
        assert_eq!(beat(&a, 0, 3), 3);
        assert_eq!(beat(&a, 0, 3), 0, "the same entries again are stored once");
        assert_eq!(db.history_count(&a).unwrap(), 3);
        assert_eq!(beat(&a, 3, 10), 10);
        let kept: Vec<String> = db
            .history_page(&a, None, 100)
            .unwrap()
            .into_iter()
            .map(|r| r.entry.message)
            .collect();
        assert_eq!(
            kept,
            ["m8", "m9", "m10", "m11", "m12"],
            "the newest 5 per host"
        );
        beat(&b, 100, 5);
        assert_eq!(db.history_count(&b).unwrap(), 5);
        assert_eq!(
            db.history_count(&a).unwrap(),
            3,
            "8 in all: the oldest went"
        );
    }
}
