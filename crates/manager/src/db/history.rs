//! Hosts' hotfix history, as [`model::protocol::HistoryEntry`]; the outcome is stored with its
//! wire spelling, so an outcome this build does not know is kept as it came.

use model::protocol::HistoryEntry;
use rusqlite::{params, Transaction};

use super::{sql, Db};
use crate::error::Result;

/// Append `entries` to `host_id`'s history (inside the heartbeat's transaction).
pub(super) fn append(tx: &Transaction<'_>, host_id: &str, entries: &[HistoryEntry]) -> Result<()> {
    let mut st = tx
        .prepare_cached(
            "INSERT INTO hotfix_history (host_id, time, patch_id, product, from_build, to_build, outcome, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(sql)?;
    for h in entries {
        st.execute(params![
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
    Ok(())
}

impl Db {
    /// History entries, oldest first, with the host id of each; filtered by host and/or patch.
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
                        outcome: r.get::<_, String>(6)?.into(),
                        message: r.get(7)?,
                    },
                ))
            })
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
        db.heartbeat(&host.host_id, &hb).unwrap();
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
}
