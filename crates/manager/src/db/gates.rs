//! The rollout gates as they run: every `rollout_tick`, each running rollout's progress is
//! judged by [`crate::rollout::decide`] and the decision stored, compare-and-set on the
//! rollout as it was read, and audited (actor `rollouts`) with its reason.

use rusqlite::params;
use time::OffsetDateTime;

use super::rollouts::{audit_tx, i64_of};
use super::{now, sql, to_json_text, Db};
use crate::error::Result;
use crate::rollout::{self, Decision, Rollout, State};

impl Db {
    /// Run the gates of every running rollout at `now` (and the error threshold of paused
    /// ones); each transition is stored and audited (actor `rollouts`) with its reason.
    /// Returns the transitions made.
    pub fn rollout_tick(&self, now: OffsetDateTime) -> Result<Vec<(i64, Decision)>> {
        let mut made = Vec::new();
        for r in self.active_rollouts()? {
            if !matches!(r.state, State::Running | State::Paused) {
                continue;
            }
            let (lines, waves) = self.rollout_progress(&r, now)?;
            let d = rollout::decide(&r, &lines, &waves, now);
            if r.state == State::Paused && !matches!(d, Decision::Halt(_)) {
                continue;
            }
            if self.apply_decision(&r, &d)? {
                made.push((r.id, d));
            }
        }
        Ok(made)
    }

    /// Store a decision made on `r` as read; nothing when the rollout changed meanwhile (an
    /// administrator's action wins over the gates' stale view).
    pub(super) fn apply_decision(&self, r: &Rollout, d: &Decision) -> Result<bool> {
        let (state, wave, rolled_back, why, action) = match d {
            Decision::Wait(why) => return self.note_wait(r, why).map(|()| false),
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
        let released = wave > r.wave;
        let mut times = r.wave_times.clone();
        if released {
            times.push(t.clone());
        }
        let to = Transition {
            state,
            wave,
            started: if released { t } else { r.wave_started.clone() },
            rolled_back,
            why,
            times: to_json_text("wave_times", &times)?,
        };
        let done = self.transaction(|tx| {
            if !to.store(tx, r)? {
                return Ok(false);
            }
            let rb = if rolled_back { "; hosts roll back" } else { "" };
            audit_tx(
                tx,
                "rollouts",
                action,
                &format!("rollout {}: {why}{rb}", r.id),
            )?;
            Ok(true)
        })?;
        if done {
            self.forget_active();
            tracing::info!(rollout = r.id, action, "{why}");
        }
        Ok(done)
    }

    /// What the gates wait for, shown as the rollout's reason.
    fn note_wait(&self, r: &Rollout, why: &str) -> Result<()> {
        if why != r.reason {
            self.conn()?
                .execute(
                    "UPDATE rollouts SET reason = ?2 WHERE id = ?1 AND state = 'running'",
                    params![r.id, why],
                )
                .map_err(sql)?;
        }
        Ok(())
    }
}

/// A rollout's new standing, as the gates decided it.
struct Transition<'a> {
    state: State,
    wave: usize,
    started: String,
    rolled_back: bool,
    why: &'a str,
    times: String,
}

impl Transition<'_> {
    /// Store it only if `r` is still as the gates read it; whether it was stored.
    fn store(&self, tx: &rusqlite::Transaction<'_>, r: &Rollout) -> Result<bool> {
        let changed = tx
            .execute(
                "UPDATE rollouts SET state = ?2, wave = ?3, wave_started = ?4, rolled_back = ?5,
                 reason = ?6, wave_times = ?7
                 WHERE id = ?1 AND state = ?8 AND wave = ?9 AND rolled_back = ?10",
                params![
                    r.id,
                    self.state.as_str(),
                    i64_of(self.wave),
                    self.started,
                    self.rolled_back,
                    self.why,
                    self.times,
                    r.state.as_str(),
                    i64_of(r.wave),
                    r.rolled_back
                ],
            )
            .map_err(sql)?;
        Ok(changed == 1)
    }
}
