//! `updraft admin rollout …`: start a staged rollout, watch it, act on it.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use manager::db::rollouts::Action;
use manager::db::rollouts::RolloutStatus;
use manager::rollout::Rollout;
use manager::rollout::{Health, RolloutSpec, Wave};
use manager::text::escape as esc;

use super::backend::path_method::POST;
use super::backend::Backend;
use super::print;

#[derive(Subcommand)]
pub enum RolloutCmd {
    /// Start releasing one signed version of a component in waves
    Create(CreateArgs),
    /// The newest rollouts
    List,
    /// One rollout: per-wave counts and its hosts (failed first) with their health
    Show { id: i64 },
    /// Release no further wave (released hosts keep the version)
    Pause { id: i64 },
    /// Continue a paused or halted rollout (undoing a rollback)
    Resume { id: i64 },
    /// Approve the release of the next wave
    Approve { id: i64 },
    /// Stop for good: hosts not reached never take the version
    Abort {
        id: i64,
        /// Also return every host that took the version to the one below it
        #[arg(long)]
        rollback: bool,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// Component, e.g. antimalware.pattern
    component: String,
    /// A version the publisher signed, e.g. 18.600.00
    version: String,
    /// A wave, repeatable, in order: comma-separated share=PERCENT (required), groups=a+b,
    /// soak=SECS, success=PERCENT (default 100), max-failures=N (default 1),
    /// max-failure-share=PERCENT, approval. The last wave must be share=100 without groups.
    /// Example: --wave groups=canary,share=100,soak=600 --wave share=10,soak=3600 --wave share=100
    #[arg(long = "wave", required = true)]
    waves: Vec<String>,
    /// Keep the version on hosts that took it when the rollout halts (default: they roll back)
    #[arg(long)]
    no_auto_rollback: bool,
    /// Seconds without a heartbeat after which a host that took the version counts as failed
    #[arg(long, default_value_t = 900)]
    silent_after: u64,
    /// For `updraft` builds: follow the upgrade plan. Relay groups first, parents before
    /// children (a wave per tree level, gated like the first --wave), then the --wave waves
    /// for the agents
    #[arg(long)]
    follow_plan: bool,
}

/// One `--wave` value.
fn wave(text: &str) -> Result<Wave> {
    let mut w = Wave {
        groups: Vec::new(),
        share: 0,
        soak: 0,
        success: 100,
        max_failures: 1,
        max_failure_share: 0,
        approval: false,
    };
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let num = || {
            v.parse::<u64>()
                .with_context(|| format!("--wave {text:?}: {k}={v:?} is not a number"))
        };
        let pct = || -> Result<u8> {
            u8::try_from(num()?)
                .ok()
                .filter(|p| *p <= 100)
                .with_context(|| format!("--wave {text:?}: {k} is a percentage, 0 to 100"))
        };
        match k {
            "share" => w.share = pct()?,
            "groups" => w.groups = v.split('+').map(str::to_string).collect(),
            "soak" => w.soak = num()?,
            "success" => w.success = pct()?,
            "max-failures" => w.max_failures = u32::try_from(num()?).context("max-failures is too large")?,
            "max-failure-share" => w.max_failure_share = pct()?,
            "approval" => w.approval = true,
            _ => bail!("--wave {text:?}: unknown key {k:?} (share, groups, soak, success, max-failures, max-failure-share, approval)"),
        }
    }
    Ok(w)
}

pub fn run(b: &Backend, json: bool, c: &RolloutCmd) -> Result<()> {
    let action = |id: &i64, a: Action| -> Result<()> {
        let r: Rollout = match b {
            Backend::Db(db) => db.rollout_action(*id, a, "cli")?,
            Backend::Api(api) => {
                let name = serde_json::to_value(a)?;
                let name = name.as_str().unwrap_or_default();
                api.call(POST, &format!("/api/v1/rollouts/{id}/{name}"), None::<&()>)?
            }
        };
        print(json, &r, |r| {
            println!("rollout {} is {}", r.id, r.state.as_str())
        })
    };
    match c {
        RolloutCmd::Create(a) => create(b, json, a),
        RolloutCmd::List => list(b, json),
        RolloutCmd::Show { id } => show(b, json, *id),
        RolloutCmd::Pause { id } => action(id, Action::Pause),
        RolloutCmd::Resume { id } => action(id, Action::Resume),
        RolloutCmd::Approve { id } => action(id, Action::Approve),
        RolloutCmd::Abort {
            id,
            rollback: false,
        } => action(id, Action::Abort),
        RolloutCmd::Abort { id, rollback: true } => action(id, Action::AbortAndRollBack),
    }
}

fn create(b: &Backend, json: bool, a: &CreateArgs) -> Result<()> {
    let spec = RolloutSpec {
        component: a.component.clone(),
        version: a.version.clone(),
        waves: a.waves.iter().map(|w| wave(w)).collect::<Result<_>>()?,
        auto_rollback: !a.no_auto_rollback,
        silent_after: a.silent_after,
        follow_plan: a.follow_plan,
    };
    let r: Rollout = match b {
        Backend::Db(db) => db.create_rollout(&spec, "cli")?,
        Backend::Api(api) => api.call(POST, "/api/v1/rollouts", Some(&spec))?,
    };
    print(json, &r, |r| {
        println!(
            "rollout {} started: {} {} in {} wave(s)",
            r.id,
            esc(&r.spec.component),
            esc(&r.spec.version),
            r.spec.waves.len()
        )
    })
}

/// `GET /api/v1/rollouts`.
#[derive(serde::Deserialize)]
struct RolloutList {
    rollouts: Vec<Rollout>,
}

fn list(b: &Backend, json: bool) -> Result<()> {
    let rollouts = match b {
        Backend::Db(db) => db.rollouts()?,
        Backend::Api(api) => api.get::<RolloutList>("/api/v1/rollouts")?.rollouts,
    };
    print(json, &rollouts, |list| {
        println!(
            "{:<5} {:<24} {:<12} {:<9} {:<6} reason",
            "id", "component", "version", "state", "wave"
        );
        for r in list {
            println!(
                "{:<5} {:<24} {:<12} {:<9} {:<6} {}",
                r.id,
                esc(&r.spec.component),
                esc(&r.spec.version),
                r.state.as_str(),
                format!("{}/{}", r.wave + 1, r.spec.waves.len()),
                esc(&r.reason)
            );
        }
    })
}

fn show(b: &Backend, json: bool, id: i64) -> Result<()> {
    let s: RolloutStatus = match b {
        Backend::Db(db) => match db.rollout_status(id, time::OffsetDateTime::now_utc())? {
            Some(s) => s,
            None => bail!("no rollout with id {id}"),
        },
        Backend::Api(api) => api.get(&format!("/api/v1/rollouts/{id}"))?,
    };
    print(json, &s, |s| {
        let r = &s.rollout;
        println!(
            "rollout {}: {} {} — {}{}; wave {} of {}: {}",
            r.id,
            esc(&r.spec.component),
            esc(&r.spec.version),
            r.state.as_str(),
            if r.rolled_back { " (rolled back)" } else { "" },
            r.wave + 1,
            r.spec.waves.len(),
            esc(&r.reason)
        );
        for (i, w) in s.waves.iter().enumerate() {
            println!(
                "  wave {}: {} hosts, {} healthy, {} pending, {} failed, {} absent",
                i + 1,
                w.hosts,
                w.healthy,
                w.pending,
                w.failed,
                w.absent
            );
        }
        for h in &s.hosts {
            let (health, why) = match &h.health {
                Health::Healthy => ("healthy", String::new()),
                Health::Pending => ("pending", String::new()),
                Health::Failed(why) => ("failed", why.clone()),
                Health::Absent => ("absent", "silent since before its wave".to_string()),
            };
            let wave = h.wave.map_or("-".to_string(), |w| (w + 1).to_string());
            println!(
                "  {:<20} wave {wave:<3} {health:<8} {}",
                esc(&h.hostname),
                esc(&why)
            );
        }
    })
}
