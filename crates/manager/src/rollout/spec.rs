//! What an administrator asks for: one signed version in waves, validated before it is stored.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::text;

/// Most waves a rollout may have.
pub const MAX_WAVES: usize = 20;
/// Longest soak or silence time: 30 days, in seconds.
pub const MAX_SECONDS: u64 = 30 * 24 * 3600;
/// Most groups a wave may name.
const MAX_WAVE_GROUPS: usize = 100;

/// One wave: a share of the eligible hosts (optionally only those of named groups), released
/// together, then watched for `soak` seconds before the gates decide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wave {
    /// Only hosts of these groups (empty: any group).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Percent of the eligible hosts this wave reaches, counted from the first wave (a host's
    /// random but stable position in 0..100 below `share` puts it in the first such wave).
    pub share: u8,
    /// Seconds the wave is watched after its release before it may advance.
    #[serde(default)]
    pub soak: u64,
    /// Percent of the wave's hosts that must be installed and healthy to advance.
    #[serde(default = "default_success")]
    pub success: u8,
    /// Failed hosts (in all released waves) that halt the rollout.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// Percent of failed hosts among the released ones that halts the rollout (0: not used).
    #[serde(default)]
    pub max_failure_share: u8,
    /// An administrator must approve the release of this wave.
    #[serde(default)]
    pub approval: bool,
}

fn default_success() -> u8 {
    100
}
fn default_max_failures() -> u32 {
    1
}

/// What an administrator asks for: one signed version of one component, in waves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    pub component: String,
    pub version: String,
    pub waves: Vec<Wave>,
    /// On a halt, hosts that took the version return to the version below it [default: true].
    #[serde(default = "default_true")]
    pub auto_rollback: bool,
    /// Seconds without a heartbeat after which a host that took the version counts as failed
    /// (the crash case) [default: 900].
    #[serde(default = "default_silent_after")]
    pub silent_after: u64,
    /// For `updraft` only: waves follow the upgrade plan. Relay groups go first, parents before
    /// children (one wave per tree level, gated like the first wave given), then `waves` for
    /// the agents. The waves stored and shown are the expanded ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow_plan: bool,
}

fn default_true() -> bool {
    true
}
fn default_silent_after() -> u64 {
    900
}

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::BadRequest {
        field: field.into(),
        reason: reason.into(),
    }
}

impl RolloutSpec {
    /// Administrator input checked before it is stored.
    pub fn validate(&self) -> Result<()> {
        model::check_component(&self.component).map_err(|e| bad("component", e.to_string()))?;
        self.version
            .parse::<model::Version>()
            .map_err(|e| bad("version", e.to_string()))?;
        if self.waves.is_empty() || self.waves.len() > MAX_WAVES {
            return Err(bad("waves", format!("give 1 to {MAX_WAVES} waves")));
        }
        for (i, w) in self.waves.iter().enumerate() {
            w.validate(&format!("waves[{i}]"))?;
        }
        if self.waves[0].approval {
            return Err(bad(
                "waves[0].approval",
                "the first wave is released when the rollout is created: create it when ready",
            ));
        }
        let mut share = 0;
        for (i, w) in self
            .waves
            .iter()
            .enumerate()
            .filter(|(_, w)| w.groups.is_empty())
        {
            if w.share < share {
                return Err(bad(
                    &format!("waves[{i}].share"),
                    "shares of waves without groups never decrease (a later wave would be empty)",
                ));
            }
            share = w.share;
        }
        let last = &self.waves[self.waves.len() - 1];
        if last.share != 100 || !last.groups.is_empty() {
            return Err(bad(
                "waves",
                "the last wave must reach every host: share 100 and no groups",
            ));
        }
        if !(1..=MAX_SECONDS).contains(&self.silent_after) {
            return Err(bad(
                "silent_after",
                format!("give 1 to {MAX_SECONDS} seconds"),
            ));
        }
        Ok(())
    }
}

impl Wave {
    fn validate(&self, at: &str) -> Result<()> {
        let field = |f: &str| format!("{at}.{f}");
        if !(1..=100).contains(&self.share) {
            return Err(bad(&field("share"), "give 1 to 100 percent"));
        }
        if self.success > 100 || self.max_failure_share > 100 {
            return Err(bad(&field("success"), "percentages are 0 to 100"));
        }
        if self.soak > MAX_SECONDS {
            return Err(bad(
                &field("soak"),
                format!("at most {MAX_SECONDS} seconds"),
            ));
        }
        if self.groups.len() > MAX_WAVE_GROUPS {
            return Err(bad(&field("groups"), format!("at most {MAX_WAVE_GROUPS}")));
        }
        for g in &self.groups {
            text::check_name(&field("groups"), g, 100)?;
        }
        Ok(())
    }
}
