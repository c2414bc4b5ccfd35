//! Staged rollouts, the pure part: which wave a host belongs to, whether it may take the
//! version yet (its *hold*), how healthy each host of a released wave is, and what the gates
//! decide. No I/O and no clock: the caller passes `now`, so every decision is unit-tested.
//!
//! The publisher decides *what* exists (signed versions); a rollout only decides *when* a host
//! may take one: it hands hosts not yet released a hold ("no version of this component at or
//! above V"), which the agent applies to the versions its verified metadata lists. A rollout
//! never names content of its own.

use std::collections::BTreeMap;

use model::protocol::{ModuleState, Role};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

mod spec;
pub use spec::{RolloutSpec, Wave, MAX_SECONDS, MAX_WAVES};

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waves are released as their gates pass.
    Running,
    /// Released waves keep the version; no further wave is released until resumed.
    Paused,
    /// The error threshold was reached (see `reason`).
    Halted,
    /// Stopped by an administrator.
    Aborted,
    /// Every wave released and passed: the version is the fleet's.
    Complete,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Paused => "paused",
            State::Halted => "halted",
            State::Aborted => "aborted",
            State::Complete => "complete",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [
            State::Running,
            State::Paused,
            State::Halted,
            State::Aborted,
            State::Complete,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Still holding back some hosts (everything but complete).
    pub fn active(self) -> bool {
        self != State::Complete
    }
}

/// A rollout as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: i64,
    pub spec: RolloutSpec,
    pub state: State,
    /// Index of the newest released wave.
    pub wave: usize,
    /// When that wave was released (RFC 3339).
    pub wave_started: String,
    /// When each released wave was released (RFC 3339), in order.
    #[serde(default)]
    pub wave_times: Vec<String>,
    /// When an administrator last resumed it (failures reported before are not counted).
    #[serde(default)]
    pub resumed: Option<String>,
    /// Waves up to this index (exclusive) are approved.
    pub approved: usize,
    /// Hosts that took the version were told to return to the version below it.
    pub rolled_back: bool,
    /// Why it stands where it does (the last transition's reason).
    pub reason: String,
    pub created: String,
}

/// A host as a rollout sees it.
#[derive(Debug, Clone)]
pub struct HostView<'a> {
    pub id: &'a str,
    pub hostname: &'a str,
    pub role: Role,
    pub group: &'a str,
    pub components: &'a BTreeMap<String, String>,
    /// product → build (a patch rollout's component is its product).
    pub builds: &'a BTreeMap<String, String>,
    pub modules: &'a [model::protocol::ModuleReport],
    pub last_seen: Option<OffsetDateTime>,
    /// First heartbeat that reported the version installed.
    pub took: Option<OffsetDateTime>,
    /// A failure the host reported for this version (reload failed, patch failed).
    pub failed: Option<&'a str>,
    /// The host reported the version does not apply to it (a patch for another build).
    pub skipped: bool,
    /// The host's group pins the component or follows another channel than `latest`.
    pub held_by_group: bool,
}

/// The component of Updraft's own builds: every host reports its build under this name, but
/// only hosts whose agent upgrades itself (a `self_upgrade` module) take it.
pub const UPDRAFT: &str = "updraft";

/// A host's random but stable position in 0..10000 for this rollout (SHA-256 of both ids).
pub fn position(rollout_id: i64, host_id: &str) -> u32 {
    let h = tuf::crypto::sha256_hex(format!("{rollout_id}:{host_id}").as_bytes());
    let n = u64::from_str_radix(&h[..12], 16).unwrap_or(0);
    u32::try_from(n % 10_000).unwrap_or(0)
}

/// The first wave that takes this host: its group is named (or the wave names none) and its
/// position is below the wave's share. `None`: no wave reaches it.
pub fn wave_of(r: &Rollout, host_id: &str, group: &str) -> Option<usize> {
    let pos = position(r.id, host_id);
    r.spec.waves.iter().position(|w| {
        (w.groups.is_empty() || w.groups.iter().any(|g| g == group))
            && pos < u32::from(w.share) * 100
    })
}

/// What a rollout asks of one host for its component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold<'r> {
    /// Nothing: the host may take the version.
    None,
    /// Take no version at or above this one (not released yet, or the rollout is halted).
    Below(&'r str),
    /// Never take exactly this version (rolled back, or aborted before reaching the host);
    /// later versions stay free for their own rollouts.
    Withheld(&'r str),
}

/// What `r` asks of `host_id` (in `group`): hosts of released waves take the version; a
/// rollback withholds it from everyone (those who took it return to the version below it,
/// which they still hold); an abort withholds it from hosts it had not reached; a complete
/// rollout asks nothing.
pub fn hold<'r>(r: &'r Rollout, host_id: &str, group: &str) -> Hold<'r> {
    let v = r.spec.version.as_str();
    let released = wave_of(r, host_id, group).is_some_and(|w| w <= r.wave);
    match r.state {
        State::Complete => Hold::None,
        _ if r.rolled_back => Hold::Withheld(v),
        _ if released => Hold::None,
        State::Aborted => Hold::Withheld(v),
        State::Running | State::Paused | State::Halted => Hold::Below(v),
    }
}

/// How a released host is doing with the version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "health", content = "why", rename_all = "lowercase")]
pub enum Health {
    /// Installed, the modules using it online, still heart-beating.
    Healthy,
    /// Not installed yet, or a module using it not online yet.
    Pending,
    /// Reported a failure, or went silent after its wave was released.
    Failed(String),
    /// Silent since before its wave was released: not judged (neither counted nor waited for).
    Absent,
}

/// Whether two version texts name the same version (numerically: `18.600` is `18.600.00`).
pub fn same_version(a: &str, b: &str) -> bool {
    match (a.parse::<model::Version>(), b.parse::<model::Version>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn parse_time(t: &str) -> Option<OffsetDateTime> {
    tuf::metadata::parse_expires("rollout", t).ok()
}

/// When the wave of `h` was released, if it was.
fn released_at(r: &Rollout, h: &HostView<'_>) -> Option<OffsetDateTime> {
    let w = wave_of(r, h.id, h.group)?;
    let t = r
        .wave_times
        .get(w)
        .or((w == r.wave).then_some(&r.wave_started))?;
    parse_time(t)
}

/// Health of a released host: a reported failure (since the last resume) fails it, and so
/// does silence: no heartbeat for `silent_after` seconds after its wave was released (whether
/// it crashed on the install or before reporting it). A host already silent when its wave was
/// released is `Absent`, not judged.
pub fn health(r: &Rollout, h: &HostView<'_>, now: OffsetDateTime) -> Health {
    if let Some(why) = h.failed {
        return Health::Failed(why.to_string());
    }
    let limit = i64::try_from(r.spec.silent_after).unwrap_or(i64::MAX);
    if let Some(seen) = h.last_seen {
        let silent = (now - seen).whole_seconds();
        let seen_since_release = released_at(r, h).is_none_or(|t| seen >= t);
        if silent > limit {
            return if seen_since_release || h.took.is_some() {
                Health::Failed(format!("silent for {silent} s after its wave was released"))
            } else {
                Health::Absent
            };
        }
    }
    let c = &r.spec.component;
    // A module component is installed when the host runs it; a patch (whose component is its
    // product) when the host reported it applied.
    let installed = match h.components.get(c) {
        Some(v) => same_version(v, &r.spec.version),
        None => h.took.is_some(),
    };
    if !installed {
        return Health::Pending;
    }
    let online = h
        .modules
        .iter()
        .filter(|m| m.components.contains_key(c))
        .all(|m| m.status == ModuleState::Online);
    if online {
        Health::Healthy
    } else {
        Health::Pending
    }
}

/// Whether the rollout judges `h` at all: agents whose modules use the component (or with the
/// product a patch component names), and relays that upgrade their own build (a module using
/// `updraft`), whose group does not hold it otherwise (a pin or another channel). A host that
/// took the version or reported a failure for it is judged whatever it reports now (a first
/// build that died leaves no component behind).
pub fn eligible(r: &Rollout, h: &HostView<'_>) -> bool {
    let c = &r.spec.component;
    (h.role == Role::Agent || (h.role == Role::Relay && c == UPDRAFT))
        && !h.held_by_group
        && !h.skipped
        && (h.failed.is_some()
            || h.took.is_some()
            || h.components.contains_key(c)
            || (h.builds.contains_key(c) && c != UPDRAFT)
            || h.modules.iter().any(|m| m.components.contains_key(c)))
}

/// One host's line in a rollout's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostProgress {
    pub host_id: String,
    pub hostname: String,
    pub wave: Option<usize>,
    pub released: bool,
    #[serde(flatten)]
    pub health: Health,
}

/// Per-wave counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveProgress {
    /// Hosts judged (all but the absent ones).
    pub hosts: usize,
    pub healthy: usize,
    pub pending: usize,
    pub failed: usize,
    /// Silent since before the wave's release: not judged.
    pub absent: usize,
}

/// What the gates decide for a running rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Keep watching; the reason says what it waits for.
    Wait(String),
    /// Release the next wave.
    Advance(String),
    /// Every wave passed.
    Complete(String),
    /// Too many failures.
    Halt(String),
}

/// Every eligible host with its wave and health, and the counts per wave.
pub fn progress(
    r: &Rollout,
    hosts: &[HostView<'_>],
    now: OffsetDateTime,
) -> (Vec<HostProgress>, Vec<WaveProgress>) {
    let mut waves = vec![WaveProgress::default(); r.spec.waves.len()];
    let mut lines = Vec::new();
    for h in hosts.iter().filter(|h| eligible(r, h)) {
        let wave = wave_of(r, h.id, h.group);
        let released = hold(r, h.id, h.group) == Hold::None;
        let health = if wave.is_some_and(|w| w <= r.wave) {
            health(r, h, now)
        } else {
            Health::Pending
        };
        if let Some(w) = wave.and_then(|w| waves.get_mut(w)) {
            match health {
                Health::Healthy => w.healthy += 1,
                Health::Pending => w.pending += 1,
                Health::Failed(_) => w.failed += 1,
                Health::Absent => w.absent += 1,
            }
            w.hosts += usize::from(health != Health::Absent);
        }
        lines.push(HostProgress {
            host_id: h.id.to_string(),
            hostname: h.hostname.to_string(),
            wave,
            released,
            health,
        });
    }
    (lines, waves)
}

/// The gates of a running rollout: halt on the error threshold (failures in all released
/// waves), advance when the current wave has soaked, reached its success share and (for the
/// next wave) been approved where approval is required.
pub fn decide(
    r: &Rollout,
    lines: &[HostProgress],
    waves: &[WaveProgress],
    now: OffsetDateTime,
) -> Decision {
    let Some(wave) = r.spec.waves.get(r.wave) else {
        return Decision::Complete("no wave left".into());
    };
    if let Some(why) = over_error_threshold(r, wave, lines) {
        return Decision::Halt(why);
    }
    let cur = waves.get(r.wave).cloned().unwrap_or_default();
    let started = parse_time(&r.wave_started).unwrap_or(now);
    let soaked = (now - started).whole_seconds();
    let soak = i64::try_from(wave.soak).unwrap_or(i64::MAX);
    let n = r.wave + 1;
    if soaked < soak {
        return Decision::Wait(format!("wave {n} soaking: {soaked} of {soak} s"));
    }
    // A wave with no host to judge (a mistyped canary group, say) gives no signal: it goes on
    // only when an administrator approves.
    if cur.hosts == 0 && r.approved <= n {
        return Decision::Wait(format!(
            "wave {n} has no host to judge: approve to go on without its signal"
        ));
    }
    let share_ok = cur.hosts == 0
        || cur.healthy.saturating_mul(100) >= usize::from(wave.success).saturating_mul(cur.hosts);
    if !share_ok {
        return Decision::Wait(format!(
            "wave {n}: {} of {} hosts healthy, {}% needed",
            cur.healthy, cur.hosts, wave.success
        ));
    }
    let summary = format!("wave {n}: {} of {} hosts healthy", cur.healthy, cur.hosts);
    match r.spec.waves.get(n) {
        None => Decision::Complete(summary),
        Some(next) if next.approval && r.approved <= n => {
            Decision::Wait(format!("{summary}; wave {} awaits approval", n + 1))
        }
        Some(_) => Decision::Advance(summary),
    }
}

fn over_error_threshold(r: &Rollout, wave: &Wave, lines: &[HostProgress]) -> Option<String> {
    let released: Vec<&HostProgress> = lines
        .iter()
        .filter(|l| l.wave.is_some_and(|w| w <= r.wave))
        .collect();
    let failed: Vec<&HostProgress> = released
        .iter()
        .copied()
        .filter(|l| matches!(l.health, Health::Failed(_)))
        .collect();
    let count = u32::try_from(failed.len()).unwrap_or(u32::MAX);
    let by_count = wave.max_failures > 0 && count >= wave.max_failures;
    let by_share = wave.max_failure_share > 0
        && !released.is_empty()
        && failed.len().saturating_mul(100)
            >= usize::from(wave.max_failure_share).saturating_mul(released.len());
    if !(by_count || by_share) {
        return None;
    }
    let first = failed.first().map_or(String::new(), |l| match &l.health {
        Health::Failed(why) => format!(" (first: {}: {why})", l.hostname),
        _ => String::new(),
    });
    Some(format!(
        "{} of {} released hosts failed{first}",
        failed.len(),
        released.len()
    ))
}

#[cfg(test)]
mod tests;
