//! Staged rollouts as stored: creation, administrator actions, what hosts report about a
//! rollout's version, the gates' transitions (each audited with its reason) and the holds a
//! heartbeat reply carries. The decisions themselves are [`crate::rollout`]'s (pure).

use std::collections::{BTreeMap, HashMap};

use model::protocol::{Channel, Heartbeat, Policy};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{now, sql, to_json_text, Db, Group, Host};
use crate::error::{Error, Result};
use crate::rollout::{
    self, Decision, Hold, HostProgress, HostView, Rollout, RolloutSpec, State, WaveProgress,
};

/// Most rollouts listed at once (newest first).
pub const MAX_LISTED: u32 = 100;

/// An administrator's action on a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Release no further wave (released hosts keep the version).
    Pause,
    /// Continue a paused or halted rollout (a rollback is undone: released hosts take the
    /// version again).
    Resume,
    /// Approve the release of the next wave.
    Approve,
    /// Stop for good; hosts not reached never take the version; released hosts keep it.
    Abort,
    /// Stop for good and return every host that took the version to the one below it.
    AbortAndRollBack,
}

/// A rollout with its progress (the answer of `GET /api/v1/rollouts/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutStatus {
    #[serde(flatten)]
    pub rollout: Rollout,
    pub waves: Vec<WaveProgress>,
    /// Eligible hosts (at most [`MAX_HOST_LINES`]), failed ones first.
    pub hosts: Vec<HostProgress>,
    pub hosts_total: usize,
}

/// What a host reported about a rollout's version: when it first ran it, and a failure.
type Report = (Option<String>, Option<String>);

/// Host lines in one rollout status at most.
pub const MAX_HOST_LINES: usize = 1000;

const COLUMNS: &str =
    "id, spec, state, wave, wave_started, approved, rolled_back, reason, created FROM rollouts";

fn row_rollout(r: &rusqlite::Row<'_>) -> rusqlite::Result<Rollout> {
    let spec: String = r.get(1)?;
    let state: String = r.get(2)?;
    let conv = |i, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    Ok(Rollout {
        id: r.get(0)?,
        spec: serde_json::from_str(&spec).map_err(|e| conv(1, e.to_string()))?,
        state: State::parse(&state).ok_or_else(|| conv(2, format!("state {state:?}")))?,
        wave: usize::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        wave_started: r.get(4)?,
        approved: usize::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
        rolled_back: r.get(6)?,
        reason: r.get(7)?,
        created: r.get(8)?,
    })
}

fn audit_tx(tx: &Transaction<'_>, actor: &str, action: &str, detail: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO audit (time, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
        params![now(), actor, action, detail],
    )
    .map_err(sql)?;
    Ok(())
}

fn i64_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Db {
    /// Start a rollout (validated). Refused while another rollout of the component is still
    /// deciding (running, paused or halted without a rollback): finish or abort it first.
    pub fn create_rollout(&self, spec: &RolloutSpec, actor: &str) -> Result<Rollout> {
        spec.validate()?;
        let detail = to_json_text("rollout", spec)?;
        let id = self.transaction(|tx| {
            let busy: Option<i64> = tx
                .query_row(
                    "SELECT id FROM rollouts WHERE component = ?1 AND rolled_back = 0
                     AND state IN ('running', 'paused', 'halted') LIMIT 1",
                    params![spec.component],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            if let Some(other) = busy {
                return Err(Error::BadRequest {
                    field: "component".into(),
                    reason: format!(
                        "rollout {other} of {} is still running, paused or halted: finish or abort it first",
                        spec.component
                    ),
                });
            }
            let t = now();
            tx.execute(
                "INSERT INTO rollouts (component, version, spec, state, wave, wave_started, created)
                 VALUES (?1, ?2, ?3, 'running', 0, ?4, ?4)",
                params![spec.component, spec.version, detail, t],
            )
            .map_err(sql)?;
            let id = tx.last_insert_rowid();
            audit_tx(tx, actor, "rollout-create", &format!("rollout {id}: {detail}"))?;
            Ok(id)
        })?;
        self.rollout(id)?
            .ok_or_else(|| Error::Db(format!("rollout {id} not found after saving it")))
    }

    pub fn rollout(&self, id: i64) -> Result<Option<Rollout>> {
        self.conn()?
            .prepare_cached(&format!("SELECT {COLUMNS} WHERE id = ?1"))
            .map_err(sql)?
            .query_row(params![id], row_rollout)
            .optional()
            .map_err(sql)
    }

    /// The newest rollouts, at most [`MAX_LISTED`].
    pub fn rollouts(&self) -> Result<Vec<Rollout>> {
        self.select_rollouts(&format!(
            "SELECT {COLUMNS} ORDER BY id DESC LIMIT {MAX_LISTED}"
        ))
    }

    /// Rollouts that still ask something of hosts (all but complete ones).
    pub fn active_rollouts(&self) -> Result<Vec<Rollout>> {
        self.select_rollouts(&format!(
            "SELECT {COLUMNS} WHERE state != 'complete' ORDER BY id"
        ))
    }

    fn select_rollouts(&self, query: &str) -> Result<Vec<Rollout>> {
        let c = self.conn()?;
        let mut st = c.prepare_cached(query).map_err(sql)?;
        let rows = st.query_map([], row_rollout).map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    /// Carry out an administrator's action (audited with the actor's name); the rollout as it
    /// then stands.
    pub fn rollout_action(&self, id: i64, action: Action, actor: &str) -> Result<Rollout> {
        let r = self
            .rollout(id)?
            .ok_or_else(|| Error::NotFound(format!("rollout {id}")))?;
        let (state, approved, rolled_back) = match (action, r.state) {
            (_, State::Complete | State::Aborted) => {
                return Err(conflict(id, r.state, action));
            }
            (Action::Pause, State::Running) => (State::Paused, r.approved, r.rolled_back),
            (Action::Resume, State::Paused | State::Halted) => (State::Running, r.approved, false),
            (Action::Approve, _) => (r.state, r.approved.max(r.wave + 2), r.rolled_back),
            (Action::Abort, _) => (State::Aborted, r.approved, r.rolled_back),
            (Action::AbortAndRollBack, _) => (State::Aborted, r.approved, true),
            _ => return Err(conflict(id, r.state, action)),
        };
        let reason = format!("{action:?} by {actor}");
        self.transaction(|tx| {
            tx.execute(
                "UPDATE rollouts SET state = ?2, approved = ?3, rolled_back = ?4, reason = ?5
                 WHERE id = ?1",
                params![id, state.as_str(), i64_of(approved), rolled_back, reason],
            )
            .map_err(sql)?;
            let what = format!("rollout {id}: {} -> {}", r.state.as_str(), state.as_str());
            audit_tx(
                tx,
                actor,
                &format!("rollout-{action:?}").to_lowercase(),
                &what,
            )
        })?;
        self.rollout(id)?
            .ok_or_else(|| Error::Db(format!("rollout {id} vanished")))
    }

    /// Note what a heartbeat says about each active rollout's version: the first time the host
    /// runs it, and a failure it reports for it.
    pub fn observe_rollouts(&self, host_id: &str, b: &Heartbeat, active: &[Rollout]) -> Result<()> {
        let t = now();
        for r in active {
            let (c, v) = (&r.spec.component, &r.spec.version);
            let runs = b.components.get(c) == Some(v);
            let failed = b
                .failed_versions
                .iter()
                .find(|f| &f.component == c && &f.version == v)
                .map(|f| f.reason.clone());
            if !runs && failed.is_none() {
                continue;
            }
            self.conn()?
                .prepare_cached(
                    "INSERT INTO rollout_hosts (rollout_id, host_id, took, failed) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (rollout_id, host_id) DO UPDATE SET
                       took = COALESCE(took, excluded.took), failed = COALESCE(failed, excluded.failed)",
                )
                .map_err(sql)?
                .execute(params![r.id, host_id, runs.then_some(&t), failed])
                .map_err(sql)?;
        }
        Ok(())
    }

    /// Every eligible host of `r` with its wave and health, and the counts per wave.
    pub fn rollout_progress(
        &self,
        r: &Rollout,
        now: OffsetDateTime,
    ) -> Result<(Vec<HostProgress>, Vec<WaveProgress>)> {
        let hosts = self.hosts()?;
        let groups: HashMap<String, Group> = self
            .groups()?
            .into_iter()
            .map(|g| (g.name.clone(), g))
            .collect();
        let reports = self.rollout_reports(r.id)?;
        let views: Vec<HostView<'_>> = hosts
            .iter()
            .map(|h| host_view(r, h, groups.get(&h.group), reports.get(&h.id)))
            .collect();
        Ok(rollout::progress(r, &views, now))
    }

    fn rollout_reports(&self, id: i64) -> Result<HashMap<String, Report>> {
        let c = self.conn()?;
        let mut st = c
            .prepare_cached("SELECT host_id, took, failed FROM rollout_hosts WHERE rollout_id = ?1")
            .map_err(sql)?;
        let rows = st
            .query_map(params![id], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    /// A rollout with its progress, failed hosts first, at most [`MAX_HOST_LINES`] hosts.
    pub fn rollout_status(&self, id: i64, now: OffsetDateTime) -> Result<Option<RolloutStatus>> {
        let Some(r) = self.rollout(id)? else {
            return Ok(None);
        };
        let (mut hosts, waves) = self.rollout_progress(&r, now)?;
        hosts.sort_by_key(|h| (!matches!(h.health, rollout::Health::Failed(_)), h.wave));
        let hosts_total = hosts.len();
        hosts.truncate(MAX_HOST_LINES);
        Ok(Some(RolloutStatus {
            rollout: r,
            waves,
            hosts,
            hosts_total,
        }))
    }

    /// Run the gates of every running rollout at `now`; each transition is stored and audited
    /// (actor `rollouts`) with its reason. Returns the transitions made.
    pub fn rollout_tick(&self, now: OffsetDateTime) -> Result<Vec<(i64, Decision)>> {
        let mut made = Vec::new();
        for r in self.active_rollouts()? {
            if r.state != State::Running {
                continue;
            }
            let (lines, waves) = self.rollout_progress(&r, now)?;
            let d = rollout::decide(&r, &lines, &waves, now);
            if let Some(()) = self.apply_decision(&r, &d)? {
                made.push((r.id, d));
            }
        }
        Ok(made)
    }

    fn apply_decision(&self, r: &Rollout, d: &Decision) -> Result<Option<()>> {
        let (state, wave, rolled_back, why, action) = match d {
            Decision::Wait(why) => {
                if *why != r.reason {
                    self.conn()?
                        .execute(
                            "UPDATE rollouts SET reason = ?2 WHERE id = ?1",
                            params![r.id, why],
                        )
                        .map_err(sql)?;
                }
                return Ok(None);
            }
            Decision::Advance(why) => (State::Running, r.wave + 1, false, why, "rollout-advance"),
            Decision::Complete(why) => (State::Complete, r.wave, false, why, "rollout-complete"),
            Decision::Halt(why) => (
                State::Halted,
                r.wave,
                r.spec.auto_rollback,
                why,
                "rollout-halt",
            ),
        };
        let t = now();
        self.transaction(|tx| {
            tx.execute(
                "UPDATE rollouts SET state = ?2, wave = ?3, wave_started = ?4, rolled_back = ?5,
                 reason = ?6 WHERE id = ?1",
                params![r.id, state.as_str(), i64_of(wave), t, rolled_back, why],
            )
            .map_err(sql)?;
            let rb = if rolled_back { "; hosts roll back" } else { "" };
            audit_tx(
                tx,
                "rollouts",
                action,
                &format!("rollout {}: {why}{rb}", r.id),
            )
        })?;
        tracing::info!(rollout = r.id, action, "{why}");
        Ok(Some(()))
    }
}

fn conflict(id: i64, state: State, action: Action) -> Error {
    Error::BadRequest {
        field: "action".into(),
        reason: format!(
            "rollout {id} is {}: {action:?} does not apply",
            state.as_str()
        ),
    }
}

fn parse_time(s: &Option<String>) -> Option<OffsetDateTime> {
    s.as_deref()
        .and_then(|t| tuf::metadata::parse_expires("host", t).ok())
}

fn host_view<'a>(
    r: &Rollout,
    h: &'a Host,
    group: Option<&Group>,
    report: Option<&'a Report>,
) -> HostView<'a> {
    let held_by_group = group
        .is_some_and(|g| g.pinned.contains_key(&r.spec.component) || g.channel != Channel::Latest);
    HostView {
        id: &h.id,
        hostname: &h.hostname,
        role: h.role,
        group: &h.group,
        components: &h.components,
        modules: &h.modules,
        last_seen: parse_time(&h.last_seen),
        took: report.and_then(|(t, _)| parse_time(t)),
        failed: report.and_then(|(_, f)| f.as_deref()),
        held_by_group,
    }
}

/// Add the holds of `active` rollouts to the policy handed to `host_id` (components the group
/// pins are the pin's).
pub fn add_holds(policy: &mut Policy, host_id: &str, active: &[Rollout]) {
    let mut holds = BTreeMap::new();
    let mut withheld: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in active {
        let c = &r.spec.component;
        if policy.pinned.contains_key(c) {
            continue;
        }
        match rollout::hold(r, host_id, &policy.group) {
            Hold::None => {}
            Hold::Below(v) => {
                holds.insert(c.clone(), v.to_string());
            }
            Hold::Withheld(v) => withheld.entry(c.clone()).or_default().push(v.to_string()),
        }
    }
    policy.holds = holds;
    policy.withheld = withheld;
}
