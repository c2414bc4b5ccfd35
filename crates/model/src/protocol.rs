//! The manager protocol: every field a host and the manager exchange, spelled once.
//!
//! Compatibility rule: a *reader* accepts and ignores fields it does not know, so a newer host can
//! report to an older manager and an older host can read a newer manager's policy (the body size
//! is bounded by the reader, not by this crate). A field that must be there has no
//! `#[serde(default)]`, so a renamed or missing field is an error, never a silent default. Enums a
//! newer peer may extend ([`Outcome`], [`ModuleState`]) keep an unknown spelling as `Other`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Path of each endpoint hosts call, relative to the manager's base URL.
pub const ENROLL_PATH: &str = "/api/v1/enroll";
pub const HEARTBEAT_PATH: &str = "/api/v1/heartbeat";

/// Largest enrolment reply a host reads.
pub const MAX_ENROLL_REPLY: u64 = 64 * 1024;
/// Largest heartbeat reply (the policy) a host reads.
pub const MAX_HEARTBEAT_REPLY: u64 = 256 * 1024;
/// History entries a host sends in one heartbeat at most (the rest go with the next ones).
pub const MAX_HISTORY_PER_HEARTBEAT: usize = 1000;

/// What a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Relay,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Relay => "relay",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "agent" => Ok(Role::Agent),
            "relay" => Ok(Role::Relay),
            other => Err(format!("role {other:?} is not agent or relay")),
        }
    }
}

/// `POST /api/v1/enroll` body (with the one-time enrolment token as bearer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub hostname: String,
    pub role: Role,
}

/// The enrolment answer: the host's id and its credential for every later call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollReply {
    pub host_id: String,
    pub credential: String,
}

/// The policy a host's group hands it in every heartbeat reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub group: String,
    /// Ordered relay list (agents) or upstreams (relays).
    pub relays: Vec<String>,
    /// Seconds between cycles.
    pub poll_interval: u64,
    /// Agents only: fall back to the origin when no relay answers.
    pub allow_direct: bool,
    /// component → pinned version.
    pub pinned: BTreeMap<String, String>,
    /// Which signed version to take where no pin decides (absent from older managers:
    /// `latest`). The fields below are left out when they say nothing, so a policy without
    /// them reads as before.
    #[serde(default, skip_serializing_if = "Channel::is_latest")]
    pub channel: Channel,
    /// component → version: take no version at or above it (a staged rollout has not released
    /// it to this host yet). Applied to the versions verified metadata lists; never a version of
    /// its own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub holds: BTreeMap<String, String>,
    /// component → versions never to take (a rollout rolled back or aborted); a host running
    /// one returns to the newest version it may take.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub withheld: BTreeMap<String, Vec<String>>,
    /// When engines, programs and patches may be installed (content marked urgent any time;
    /// patterns and rules always). The host judges it with its own clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceWindow>,
    /// Seconds the per-host decisions above (`holds`) stay good without a newer reply from
    /// the manager; past it the host follows its group's channel again, so a manager outage
    /// cannot hold protection back for ever. Never longer than [`MAX_DECISION_LEASE`] (0,
    /// from an older manager: that bound). `withheld` versions stay refused: taking a version
    /// a rollout rolled back is never the safe side.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub decision_lease: u64,
    /// Versions an operator asked this host to try again although it gave up on them (a
    /// failed reload): the host forgets that failure once per retry `id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry: Vec<VersionRetry>,
}

/// An operator's request that a host try a version again (see [`Policy::retry`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRetry {
    /// Unique per request: a host acts on each id once and echoes it in its applied policy.
    pub id: String,
    pub component: String,
    pub version: String,
}

/// The longest a host keeps per-host decisions without hearing from its manager (7 days).
pub const MAX_DECISION_LEASE: u64 = 7 * 24 * 3600;
/// The lease a manager states by default (1 day).
pub const DEFAULT_DECISION_LEASE: u64 = 24 * 3600;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Policy {
    /// The lease of the per-host decisions, bounded by [`MAX_DECISION_LEASE`].
    pub fn lease(&self) -> u64 {
        match self.decision_lease {
            0 => MAX_DECISION_LEASE,
            n => n.min(MAX_DECISION_LEASE),
        }
    }

    /// This policy as it stands `age` seconds after the host received it: past the lease the
    /// per-host decisions (`holds`) have lapsed and the group's channel and pins decide alone.
    /// Returns whether they lapsed.
    pub fn lapse_decisions(&mut self, age: u64) -> bool {
        if age <= self.lease() || self.holds.is_empty() {
            return false;
        }
        self.holds.clear();
        true
    }
}

/// A weekly maintenance window in the site's local time: `days` of the week, from `start` to
/// `end` (`HH:MM`; an `end` at or before `start` runs past midnight into the next day). Local
/// time is that of the IANA `time_zone` (e.g. `Europe/Berlin`, daylight saving included, from
/// the time-zone database built into Updraft, so hosts agree whatever their own system has),
/// or else a fixed `utc_offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    /// `mon` … `sun`.
    pub days: Vec<String>,
    pub start: String,
    pub end: String,
    /// `+HH:MM` or `-HH:MM` from UTC (used when no `time_zone` is given).
    #[serde(default = "utc")]
    pub utc_offset: String,
    /// IANA time-zone name; absent from older managers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

fn utc() -> String {
    "+00:00".into()
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `HH:MM` as minutes of the day.
fn minutes(field: &str, s: &str) -> Result<u32, String> {
    let bad = || format!("{field}: {s:?} is not HH:MM (00:00 to 23:59)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl MaintenanceWindow {
    /// Check every field; the error names it.
    pub fn validate(&self) -> Result<(), String> {
        if self.days.is_empty() || self.days.len() > 7 {
            return Err("days: give 1 to 7 of mon, tue, wed, thu, fri, sat, sun".into());
        }
        for d in &self.days {
            if !DAYS.contains(&d.as_str()) {
                return Err(format!("days: {d:?} is not one of {}", DAYS.join(", ")));
            }
        }
        minutes("start", &self.start)?;
        minutes("end", &self.end)?;
        self.offset_minutes()?;
        if let Some(tz) = &self.time_zone {
            jiff::tz::TimeZone::get(tz).map_err(|_| {
                format!("time_zone: {tz:?} is not an IANA time-zone name (e.g. Europe/Berlin)")
            })?;
        }
        Ok(())
    }

    /// The window's time zone: the named one, or else the fixed offset.
    fn zone(&self) -> Option<jiff::tz::TimeZone> {
        match &self.time_zone {
            Some(name) => jiff::tz::TimeZone::get(name).ok(),
            None => {
                let minutes = self.offset_minutes().ok()?;
                let offset = jiff::tz::Offset::from_seconds(minutes.checked_mul(60)?).ok()?;
                Some(jiff::tz::TimeZone::fixed(offset))
            }
        }
    }

    /// Whether the window is open at `unix` seconds (UTC), in its time zone or offset. An
    /// invalid window is never open (fail closed: wait).
    pub fn is_open(&self, unix: i64) -> bool {
        let Ok(at) = jiff::Timestamp::from_second(unix) else {
            return false;
        };
        let Some(zone) = self.zone() else {
            return false;
        };
        let local = zone.to_datetime(at);
        let (Ok(weekday), Ok(hour), Ok(minute)) = (
            usize::try_from(local.weekday().to_monday_zero_offset()),
            u32::try_from(local.hour()),
            u32::try_from(local.minute()),
        ) else {
            return false;
        };
        self.contains_local(weekday, hour * 60 + minute)
    }

    /// The offset from UTC in minutes (−23:59 to +23:59).
    pub fn offset_minutes(&self) -> Result<i32, String> {
        let s = &self.utc_offset;
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(format!("utc_offset: {s:?} is not +HH:MM or -HH:MM")),
        };
        let m = minutes("utc_offset", rest)?;
        Ok(sign * i32::try_from(m).map_err(|_| format!("utc_offset: {s:?}"))?)
    }

    /// Whether the local time (`weekday` 0 = Monday, `minute` of the day) is inside the
    /// window. An invalid window is never open (fail closed: wait).
    pub fn contains_local(&self, weekday: usize, minute: u32) -> bool {
        let (Ok(start), Ok(end)) = (minutes("start", &self.start), minutes("end", &self.end))
        else {
            return false;
        };
        let on = |d: usize| {
            self.days
                .iter()
                .any(|x| DAYS.get(d % 7) == Some(&x.as_str()))
        };
        if start < end {
            on(weekday) && (start..end).contains(&minute)
        } else {
            // Past midnight: the evening of a listed day, or the small hours after one.
            (on(weekday) && minute >= start) || (on(weekday + 6) && minute < end)
        }
    }
}

/// `POST /api/v1/heartbeat` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// `None` while the host is in no group.
    pub policy: Option<Policy>,
}

/// `POST /api/v1/heartbeat` body: what a host runs, sent after every cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub hostname: String,
    pub role: Role,
    /// The relay (or origin) the last successful refresh used.
    #[serde(default)]
    pub upstream: Option<String>,
    /// product → build (`updraft` is the host's own build).
    #[serde(default)]
    pub builds: BTreeMap<String, String>,
    /// component → installed version.
    #[serde(default)]
    pub components: BTreeMap<String, String>,
    #[serde(default)]
    pub modules: Vec<ModuleReport>,
    /// Hotfix history entries the manager has not acknowledged yet, oldest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// The last cycle's result, with what went wrong.
    #[serde(default)]
    pub last_result: Option<String>,
    /// The policy the host runs on (as it last received it).
    #[serde(default)]
    pub applied_policy: Option<Policy>,
    /// Versions this host tried and gave up on (a failed reload), for rollout health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_versions: Vec<VersionFailure>,
    /// The metadata the host trusts now (absent from older hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<TrustState>,
}

/// What a host trusts: the versions of its verified root and timestamp, and when that
/// timestamp expires (RFC 3339). Shown in the console; a timestamp near expiry warns that the
/// host will stop taking updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustState {
    pub root_version: u64,
    pub timestamp_version: u64,
    pub timestamp_expires: String,
}

/// A version of a component a host tried and gave up on, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionFailure {
    pub component: String,
    pub version: String,
    pub reason: String,
}

/// A module of the host and whether its protection is current.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleReport {
    pub name: String,
    pub status: ModuleState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// component → installed version (`None`: not installed yet).
    #[serde(default)]
    pub components: BTreeMap<String, Option<String>>,
}

/// One entry of a host's hotfix history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub time: String,
    pub patch_id: String,
    pub product: String,
    pub from_build: String,
    pub to_build: String,
    pub outcome: Outcome,
    pub message: String,
    /// The version of the patch target (its path's), for rollout health; absent from older
    /// hosts and from entries that are not about one target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vm])* $variant,)+
            /// A spelling this build does not know (from a newer peer), kept as it came.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(s) => s,
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($text => $name::$variant,)+
                    _ => $name::Other(s),
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl fmt::Display for $name {
            // `pad`: a width in the format (`{:<8}`, tables) applies.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

string_enum! {
    /// What happened to a patch on a host.
    Outcome {
        Applied = "applied",
        /// The host's build is outside the patch's requirement.
        NotApplicable = "not applicable",
        /// The patch's preflight check failed; retried next cycle.
        PreflightFailed = "preflight failed",
        /// Unpacking, swapping or restarting failed; the backup was restored.
        Failed = "failed",
        /// A crash interrupted the patch; recovery restored the backup.
        RolledBack = "rolled back",
        /// A signed patch target whose description is invalid (e.g. an id that is not a name).
        Refused = "refused",
    }
}

string_enum! {
    /// Which signed version a group's hosts take where no pin decides.
    Channel {
        /// The newest signed version.
        Latest = "latest",
        /// The newest but one signed version (the newest while only one is signed).
        Previous = "n-1",
    }
}

// Not derivable through the macro's derive list.
#[allow(clippy::derivable_impls)]
impl Default for Channel {
    fn default() -> Self {
        Channel::Latest
    }
}

impl Channel {
    pub fn is_latest(&self) -> bool {
        *self == Channel::Latest
    }
}

string_enum! {
    /// Whether a module's protection is current.
    ModuleState {
        Online = "online",
        Offline = "offline",
    }
}

// Not derivable through the macro's derive list.
#[allow(clippy::derivable_impls)]
impl Default for ModuleState {
    fn default() -> Self {
        ModuleState::Offline
    }
}

/// How a relay's sync cycle ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", content = "error", rename_all = "lowercase")]
pub enum SyncResult {
    /// A newer verified state was committed.
    Changed,
    /// The upstream had nothing newer.
    Unchanged,
    /// The cycle failed; the previous state is still served.
    Failed(String),
}

impl fmt::Display for SyncResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncResult::Changed => f.write_str("ok"),
            SyncResult::Unchanged => f.write_str("unchanged"),
            SyncResult::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_from_a_newer_host_with_unknown_fields_parses() {
        let body = r#"{"hostname":"h","role":"agent","future_field":{"x":[1,2]},
            "modules":[{"name":"m","status":"degraded","components":{},"new":1}],
            "history":[{"time":"t","patch_id":"p","product":"x","from_build":"1","to_build":"2",
                        "outcome":"deferred","message":"","extra":true}],
            "applied_policy":{"group":"g","relays":[],"poll_interval":60,"allow_direct":false,
                              "pinned":{},"waves":3}}"#;
        let hb: Heartbeat = serde_json::from_str(body).unwrap();
        assert_eq!(hb.role, Role::Agent);
        assert_eq!(hb.modules[0].status, ModuleState::Other("degraded".into()));
        assert_eq!(hb.history[0].outcome, Outcome::Other("deferred".into()));
        assert_eq!(hb.applied_policy.unwrap().poll_interval, 60);
    }

    #[test]
    fn maintenance_windows_open_on_their_days_and_hours_also_past_midnight() {
        let w = |days: &[&str], start: &str, end: &str| MaintenanceWindow {
            days: days.iter().map(|d| d.to_string()).collect(),
            start: start.into(),
            end: end.into(),
            utc_offset: "+01:00".into(),
            time_zone: None,
        };
        let day = w(&["sat"], "02:00", "05:00");
        assert!(day.validate().is_ok());
        assert!(day.contains_local(5, 2 * 60) && !day.contains_local(5, 5 * 60));
        assert!(!day.contains_local(4, 3 * 60), "friday is not listed");
        let night = w(&["fri"], "22:00", "04:00");
        assert!(night.contains_local(4, 23 * 60), "friday evening");
        assert!(
            night.contains_local(5, 3 * 60),
            "the small hours of saturday"
        );
        assert!(
            !night.contains_local(4, 3 * 60),
            "not the small hours of friday"
        );
        assert_eq!(night.offset_minutes(), Ok(60));
        assert!(w(&["sun"], "24:00", "01:00").validate().is_err());
        assert!(w(&["sunday"], "00:00", "01:00").validate().is_err());
        let mut bad = w(&["sun"], "00:00", "01:00");
        bad.utc_offset = "01:00".into();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_window_in_a_named_time_zone_follows_daylight_saving() {
        let berlin = MaintenanceWindow {
            days: vec!["sun".into()],
            start: "02:30".into(),
            end: "03:30".into(),
            utc_offset: "+00:00".into(),
            time_zone: Some("Europe/Berlin".into()),
        };
        assert!(berlin.validate().is_ok());
        // Sunday 2026-01-04 01:45 UTC is 02:45 in Berlin (CET, +01:00): open.
        assert!(berlin.is_open(1_767_491_100));
        // Sunday 2026-07-05 01:45 UTC is 03:45 in Berlin (CEST, +02:00): closed; 00:45 UTC
        // is 02:45 there: open. A fixed +01:00 would judge both the other way round.
        assert!(!berlin.is_open(1_783_215_900));
        assert!(berlin.is_open(1_783_212_300));
        let fixed = MaintenanceWindow {
            time_zone: None,
            utc_offset: "+01:00".into(),
            ..berlin.clone()
        };
        assert!(fixed.is_open(1_783_215_900) && !fixed.is_open(1_783_212_300));
        let unknown = MaintenanceWindow {
            time_zone: Some("Mars/Olympus_Mons".into()),
            ..berlin
        };
        let e = unknown.validate().unwrap_err();
        assert!(
            e.contains("time_zone") && e.contains("Mars/Olympus_Mons"),
            "{e}"
        );
        assert!(
            !unknown.is_open(1_767_491_100),
            "an unknown zone fails closed"
        );
    }

    #[test]
    fn per_host_decisions_lapse_after_the_lease_and_withheld_versions_stay() {
        let mut p = Policy {
            holds: [("c".to_string(), "2".to_string())].into(),
            withheld: [("c".to_string(), vec!["3".to_string()])].into(),
            decision_lease: 60,
            ..Default::default()
        };
        assert!(!p.clone().lapse_decisions(60), "within the lease");
        assert!(p.lapse_decisions(61));
        assert!(p.holds.is_empty() && p.withheld["c"] == ["3"]);
        let unbounded = Policy {
            decision_lease: u64::MAX,
            ..Default::default()
        };
        assert_eq!(unbounded.lease(), MAX_DECISION_LEASE);
        assert_eq!(Policy::default().lease(), MAX_DECISION_LEASE);
    }

    #[test]
    fn a_policy_missing_a_field_is_an_error_not_a_default() {
        let renamed = r#"{"group":"g","relays":[],"poll_interval":60,"direct":true,"pinned":{}}"#;
        let e = serde_json::from_str::<Policy>(renamed).unwrap_err();
        assert!(e.to_string().contains("allow_direct"), "{e}");
    }

    #[test]
    fn enums_round_trip_with_their_wire_spelling() {
        for o in [
            Outcome::Applied,
            Outcome::NotApplicable,
            Outcome::PreflightFailed,
            Outcome::Failed,
            Outcome::RolledBack,
            Outcome::Refused,
        ] {
            let s = serde_json::to_string(&o).unwrap();
            assert_eq!(s, format!("\"{}\"", o.as_str()));
            assert_eq!(serde_json::from_str::<Outcome>(&s).unwrap(), o);
        }
        assert_eq!(serde_json::to_string(&Role::Relay).unwrap(), "\"relay\"");
        assert!(serde_json::from_str::<Role>("\"sensor\"").is_err());
        assert_eq!(SyncResult::Failed("x".into()).to_string(), "failed: x");
    }
}
