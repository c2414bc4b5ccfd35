//! Staged rollouts as stored: creation, administrator actions, what hosts report about a
//! rollout's version, the gates' transitions (each audited with its reason) and the holds a
//! heartbeat reply carries. The decisions themselves are [`crate::rollout`]'s (pure).

use std::collections::{BTreeMap, HashMap};

use model::protocol::{Channel, Heartbeat, Outcome, Policy};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{now, sql, to_json_text, Db, Group, Host};
use crate::error::{Error, Result};
use crate::rollout::{
    self, Hold, HostProgress, HostView, Rollout, RolloutSpec, State, WaveProgress, UPDRAFT,
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
/// (when it first ran it, a failure since the last resume, whether it does not apply).
type Report = (Option<String>, Option<String>, bool);

/// Host lines in one rollout status at most.
pub const MAX_HOST_LINES: usize = 1000;

const COLUMNS: &str = "id, spec, state, wave, wave_started, approved, rolled_back, reason, created,
    wave_times, resumed FROM rollouts";

/// Rollouts not complete at most (each adds to every heartbeat reply's policy).
pub const MAX_ACTIVE: usize = 100;

/// How long the heartbeat path reuses the list of active rollouts.
pub const ACTIVE_CACHE: std::time::Duration = std::time::Duration::from_secs(1);

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
        wave_times: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
        resumed: r.get(10)?,
    })
}

pub(super) fn audit_tx(
    tx: &Transaction<'_>,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO audit (time, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
        params![now(), actor, action, detail],
    )
    .map_err(sql)?;
    Ok(())
}

pub(super) fn i64_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Db {
    /// Start a rollout (validated). Refused while another rollout of the component is still
    /// deciding (running, paused or halted without a rollback): finish or abort it first.
    pub fn create_rollout(&self, spec: &RolloutSpec, actor: &str) -> Result<Rollout> {
        spec.validate()?;
        let planned;
        let spec = if spec.follow_plan {
            if spec.component != UPDRAFT {
                return Err(bad(
                    "follow_plan",
                    format!("only a rollout of {UPDRAFT} follows the upgrade plan"),
                ));
            }
            planned = RolloutSpec {
                waves: crate::fleet::plan_waves(&self.groups()?, &spec.waves),
                ..spec.clone()
            };
            let relay_waves = planned.waves.len().saturating_sub(spec.waves.len());
            planned.validate().map_err(|e| {
                bad(
                    "follow_plan",
                    format!("the upgrade plan adds {relay_waves} relay wave(s) (one per level of the relay tree) before the {} given: {e}", spec.waves.len()),
                )
            })?;
            &planned
        } else {
            spec
        };
        self.check_new_rollout(spec)?;
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
                return Err(bad(
                    "component",
                    format!(
                        "rollout {other} of {} is still running, paused or halted: finish or abort it first",
                        spec.component
                    ),
                ));
            }
            let t = now();
            tx.execute(
                "INSERT INTO rollouts (component, version, spec, state, wave, wave_started, wave_times, created)
                 VALUES (?1, ?2, ?3, 'running', 0, ?4, ?5, ?4)",
                params![spec.component, spec.version, detail, t, to_json_text("wave_times", &[&t])?],
            )
            .map_err(sql)?;
            let id = tx.last_insert_rowid();
            audit_tx(tx, actor, "rollout-create", &format!("rollout {id}: {detail}"))?;
            Ok(id)
        })?;
        self.forget_active();
        self.rollout(id)?
            .ok_or_else(|| Error::Db(format!("rollout {id} not found after saving it")))
    }

    /// Every group a wave names exists; not too many rollouts deciding; the version was not
    /// withheld by an earlier rollout (publish a new version instead).
    fn check_new_rollout(&self, spec: &RolloutSpec) -> Result<()> {
        // The support policy: no host newer than its manager.
        if spec.component == UPDRAFT {
            let (want, mine) = (
                spec.version.parse::<model::Version>(),
                env!("CARGO_PKG_VERSION").parse::<model::Version>(),
            );
            if let (Ok(want), Ok(mine)) = (want, mine) {
                if want > mine {
                    return Err(bad(
                        "version",
                        format!(
                            "updraft {} is newer than this manager ({}): upgrade the manager first",
                            spec.version,
                            env!("CARGO_PKG_VERSION")
                        ),
                    ));
                }
            }
        }
        let groups: std::collections::HashSet<String> =
            self.groups()?.into_iter().map(|g| g.name).collect();
        for (i, w) in spec.waves.iter().enumerate() {
            if let Some(g) = w.groups.iter().find(|g| !groups.contains(*g)) {
                return Err(bad(
                    &format!("waves[{i}].groups"),
                    format!("no group {:?}", crate::text::escape(g)),
                ));
            }
        }
        let active = self.active_rollouts()?;
        if active.len() >= MAX_ACTIVE {
            return Err(bad(
                "rollouts",
                format!("{MAX_ACTIVE} rollouts are not complete: finish or retire some first"),
            ));
        }
        let withheld = active.iter().find(|r| {
            r.spec.component == spec.component
                && rollout::same_version(&r.spec.version, &spec.version)
                && (r.rolled_back || r.state == State::Aborted)
        });
        if let Some(r) = withheld {
            return Err(bad(
                "version",
                format!(
                    "rollout {} withheld {} {}: publish a new version",
                    r.id, spec.component, spec.version
                ),
            ));
        }
        Ok(())
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

    /// The active rollouts as read at most [`ACTIVE_CACHE`] ago (the heartbeat path: one
    /// query a second, not one per heartbeat). A change this process makes is seen at once;
    /// one made by another process (`updraft admin`) within a second.
    pub fn active_rollouts_cached(&self) -> Result<std::sync::Arc<Vec<Rollout>>> {
        let mut cache = self
            .active_cache
            .lock()
            .map_err(|_| Error::Other("rollout cache lock poisoned".into()))?;
        if let Some((at, list)) = cache.as_ref() {
            if at.elapsed() < ACTIVE_CACHE {
                return Ok(list.clone());
            }
        }
        let list = std::sync::Arc::new(self.active_rollouts()?);
        *cache = Some((std::time::Instant::now(), list.clone()));
        Ok(list)
    }

    pub(super) fn forget_active(&self) {
        if let Ok(mut cache) = self.active_cache.lock() {
            *cache = None;
        }
    }

    /// When each host first ran rollout `id`'s version, oldest first (its adoption over time).
    pub fn rollout_adoption(&self, id: i64) -> Result<Vec<String>> {
        let c = self.conn()?;
        let mut st = c
            .prepare_cached(
                "SELECT took FROM rollout_hosts WHERE rollout_id = ?1 AND took IS NOT NULL ORDER BY took",
            )
            .map_err(sql)?;
        let rows = st.query_map(params![id], |r| r.get(0)).map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
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
        let resumed = if action == Action::Resume {
            Some(now())
        } else {
            r.resumed.clone()
        };
        self.transaction(|tx| {
            // Only if nobody (the gates, another administrator) changed it since it was read.
            let changed = tx
                .execute(
                    "UPDATE rollouts SET state = ?2, approved = ?3, rolled_back = ?4, reason = ?5,
                     resumed = ?6 WHERE id = ?1 AND state = ?7 AND wave = ?8 AND rolled_back = ?9
                     AND approved = ?10",
                    params![
                        id,
                        state.as_str(),
                        i64_of(approved),
                        rolled_back,
                        reason,
                        resumed,
                        r.state.as_str(),
                        i64_of(r.wave),
                        r.rolled_back,
                        i64_of(r.approved)
                    ],
                )
                .map_err(sql)?;
            if changed != 1 {
                return Err(bad(
                    "action",
                    format!("rollout {id} changed meanwhile: try again"),
                ));
            }
            let what = format!("rollout {id}: {} -> {}", r.state.as_str(), state.as_str());
            audit_tx(
                tx,
                actor,
                &format!("rollout-{action:?}").to_lowercase(),
                &what,
            )
        })?;
        // Heartbeats answered from now on carry the action's holds and withheld versions.
        self.forget_active();
        self.rollout(id)?
            .ok_or_else(|| Error::Db(format!("rollout {id} vanished")))
    }

    /// Note what a heartbeat says about each active rollout's version: the first time the host
    /// runs it, and a failure it reports for it.
    /// (In the heartbeat's transaction: one commit per heartbeat.)
    pub(super) fn observe_rollouts(
        tx: &Transaction<'_>,
        host_id: &str,
        b: &Heartbeat,
        active: &[Rollout],
    ) -> Result<()> {
        let t = now();
        for r in active {
            let (c, v) = (&r.spec.component, &r.spec.version);
            let runs = b
                .components
                .get(c)
                .is_some_and(|x| rollout::same_version(x, v));
            // A patch rollout's component is the product: its outcomes come as history.
            let patch = b.history.iter().rev().find(|e| {
                &e.product == c
                    && e.version
                        .as_deref()
                        .is_some_and(|x| rollout::same_version(x, v))
            });
            let runs = runs || patch.is_some_and(|e| e.outcome == Outcome::Applied);
            let skipped = patch
                .filter(|e| e.outcome == Outcome::NotApplicable)
                .map(|e| e.message.clone());
            let failed = b
                .failed_versions
                .iter()
                .find(|f| &f.component == c && rollout::same_version(&f.version, v))
                .map(|f| f.reason.clone())
                .or_else(|| {
                    patch
                        .filter(|e| matches!(e.outcome, Outcome::Failed | Outcome::RolledBack))
                        .map(|e| format!("patch {} {}: {}", e.patch_id, e.outcome, e.message))
                });
            if !runs && failed.is_none() && skipped.is_none() {
                continue;
            }
            tx.prepare_cached(
                    "INSERT INTO rollout_hosts (rollout_id, host_id, took, failed, failed_at, skipped)
                     VALUES (?1, ?2, ?3, ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE ?5 END, ?6)
                     ON CONFLICT (rollout_id, host_id) DO UPDATE SET
                       took = COALESCE(took, excluded.took),
                       failed_at = CASE WHEN failed IS NULL THEN excluded.failed_at ELSE failed_at END,
                       failed = COALESCE(failed, excluded.failed),
                       skipped = COALESCE(skipped, excluded.skipped)
                     -- written only when it learns something (the common heartbeat writes nothing)
                     WHERE (took IS NULL AND excluded.took IS NOT NULL)
                        OR (failed IS NULL AND excluded.failed IS NOT NULL)
                        OR (skipped IS NULL AND excluded.skipped IS NOT NULL)",
                )
                .map_err(sql)?
                .execute(params![r.id, host_id, runs.then_some(&t), failed, t, skipped])
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
        let reports = self.rollout_reports(r)?;
        let views: Vec<HostView<'_>> = hosts
            .iter()
            .map(|h| host_view(r, h, groups.get(&h.group), reports.get(&h.id)))
            .collect();
        Ok(rollout::progress(r, &views, now))
    }

    /// What hosts reported about `r`'s version; failures reported before the last resume are
    /// left out.
    fn rollout_reports(&self, r: &Rollout) -> Result<HashMap<String, Report>> {
        let c = self.conn()?;
        let mut st = c
            .prepare_cached(
                "SELECT host_id, took, CASE WHEN ?2 IS NULL OR failed_at >= ?2 THEN failed END,
                 skipped IS NOT NULL FROM rollout_hosts WHERE rollout_id = ?1",
            )
            .map_err(sql)?;
        let rows = st
            .query_map(params![r.id, r.resumed], |r| {
                Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
            })
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
        builds: &h.builds,
        modules: &h.modules,
        last_seen: parse_time(&h.last_seen),
        took: report.and_then(|(t, _, _)| parse_time(t)),
        failed: report.and_then(|(_, f, _)| f.as_deref()),
        // A revoked host (a stolen laptop) is not judged: its silence is no failure of the
        // version, and no wave waits for it.
        skipped: report.is_some_and(|(_, _, s)| *s) || h.revoked.is_some(),
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

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::BadRequest {
        field: field.into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests;
