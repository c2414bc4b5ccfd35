//! `updraft manager` (the server) and `updraft admin …` (administration on the database).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use manager::db::{Advisory, AdvisoryRole, Group};
use manager::text::escape as esc;

mod hosts;
mod rollouts;
mod users;

use hosts::hosts;
pub use hosts::hosts_table;
use manager::{fleet, Db, ManagerConfig};
use model::protocol::{ModuleState, Role};
use serde::Serialize;

#[derive(Args)]
pub struct ManagerArgs {
    /// TOML file with the same keys as the flags (flags given win)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Database URL [default: sqlite://updraft-manager.db] (created and migrated on start)
    #[arg(long)]
    db: Option<String>,
    /// Address to listen on [default: 127.0.0.1:8443]
    #[arg(long)]
    listen: Option<String>,
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Seconds without a heartbeat before a host shows offline [default: 900]
    #[arg(long)]
    offline_after: Option<u64>,
    /// Milliseconds added per authentication failure from one address beyond the fifth in a
    /// minute (at most 2 s) [default: 100]
    #[arg(long)]
    failure_delay_ms: Option<u64>,
    #[command(flatten)]
    serve: crate::serve_cmd::ServeFlags,
    /// Hotfix history entries kept per host, the newest [default: 10000]
    #[arg(long)]
    history_per_host: Option<u64>,
    /// Hotfix history entries kept in all, the newest [default: 1000000]
    #[arg(long)]
    history_total: Option<u64>,
    /// Heartbeats one host may send per minute, sustained; more are answered 429 [default: 60]
    #[arg(long)]
    heartbeats_per_minute: Option<u32>,
    /// Heartbeats one host may send at once above its rate [default: 10]
    #[arg(long)]
    heartbeat_burst: Option<u32>,
    /// Seconds between two runs of the rollout gates (soak, silent hosts, thresholds) [default: 5]
    #[arg(long)]
    rollout_tick: Option<u64>,
    /// Seconds a host keeps its rollout holds without hearing from this manager; then it
    /// follows its group's channel (at most 604800) [default: 86400]
    #[arg(long)]
    decision_lease: Option<u64>,
}

pub fn run_manager(a: &ManagerArgs) -> Result<()> {
    use crate::flags::{set, set_some};
    let mut c: ManagerConfig = match &a.config {
        Some(p) => {
            toml::from_str(&std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?)
                .with_context(|| format!("{}", p.display()))?
        }
        None => toml::from_str("")?,
    };
    set(&mut c.db, &a.db);
    set(&mut c.listen, &a.listen);
    set_some(&mut c.tls_cert, &a.tls_cert);
    set_some(&mut c.tls_key, &a.tls_key);
    set(&mut c.offline_after, &a.offline_after);
    set(&mut c.failure_delay_ms, &a.failure_delay_ms);
    a.serve.apply(&mut c.serve);
    set(&mut c.history_per_host, &a.history_per_host);
    set(&mut c.history_total, &a.history_total);
    set(&mut c.heartbeats_per_minute, &a.heartbeats_per_minute);
    set(&mut c.heartbeat_burst, &a.heartbeat_burst);
    set(&mut c.rollout_tick, &a.rollout_tick);
    set(&mut c.decision_lease, &a.decision_lease);
    crate::runtime()?.block_on(manager::run(c, crate::shutdown_signal("manager")))?;
    tracing::info!("manager stopped");
    Ok(())
}

#[derive(Args)]
pub struct AdminArgs {
    /// Database URL, e.g. sqlite:///var/lib/updraft/manager.db
    #[arg(long, default_value = "sqlite://updraft-manager.db")]
    db: String,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// API tokens (stored hashed), each with a role
    #[command(subcommand)]
    Token(TokenCmd),
    /// Console users (argon2id password hashes), each with a role
    #[command(subcommand)]
    User(users::UserCmd),
    /// Enrolment tokens for hosts
    #[command(subcommand)]
    EnrollToken(EnrollCmd),
    /// Groups and their policy
    #[command(subcommand)]
    Group(GroupCmd),
    /// List hosts (filters as in GET /api/v1/hosts)
    Hosts(HostsArgs),
    /// Advisories
    #[command(subcommand)]
    Advisory(AdvisoryCmd),
    /// Patch coverage: hosts with the patch, eligible without it, not eligible and why
    Coverage {
        patch_id: String,
        #[arg(long)]
        product: String,
        #[arg(long)]
        requires_build: String,
    },
    /// Staged rollouts: release a signed version in health-gated waves
    #[command(subcommand)]
    Rollout(rollouts::RolloutCmd),
    /// Ordered upgrade plan for target builds (product=build, repeatable)
    Plan {
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
    },
}

#[derive(Args)]
struct HostsArgs {
    /// agent or relay
    #[arg(long)]
    role: Option<Role>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    product: Option<String>,
    #[arg(long)]
    build: Option<String>,
    #[arg(long)]
    build_below: Option<String>,
    #[arg(long)]
    component: Option<String>,
    #[arg(long)]
    version: Option<String>,
    /// online or offline
    #[arg(long)]
    status: Option<ModuleState>,
    #[arg(long, default_value_t = 900)]
    offline_after: u64,
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Print a new API token
    Create {
        #[arg(long, default_value = "admin")]
        name: String,
        /// auditor (reads everything), operator (also rollouts, groups, advisories), admin
        #[arg(long, default_value = "admin")]
        role: manager::db::UserRole,
    },
    List,
    Revoke {
        id: i64,
    },
}

#[derive(Subcommand)]
enum EnrollCmd {
    /// Print a new enrolment token for a group
    Create {
        #[arg(long)]
        group: String,
        /// Days the token is valid (1 to 3650) [default: never expires]
        #[arg(long)]
        expires: Option<u32>,
        /// How many hosts it may enrol (at least 1) [default: unlimited]
        #[arg(long)]
        uses: Option<u32>,
    },
}

#[derive(Args)]
struct GroupPut {
    name: String,
    /// agent or relay
    #[arg(long, default_value = "agent")]
    role: Role,
    /// Parent relay group (relay groups)
    #[arg(long)]
    parent: Option<String>,
    /// Relay URL, repeatable, in order
    #[arg(long = "relay")]
    relays: Vec<String>,
    /// Seconds between the hosts' cycles (1 to 604800)
    #[arg(long, default_value_t = 300)]
    poll_interval: u64,
    #[arg(long)]
    allow_direct: bool,
    /// Pinned version component=version, repeatable
    #[arg(long = "pin")]
    pins: Vec<String>,
    /// Which signed version the group's hosts take where no pin decides: latest or n-1
    #[arg(long, default_value = "latest")]
    channel: String,
    /// Maintenance window for engines, programs and patches (urgent content and patterns and
    /// rules any time), judged by each host's clock: "DAYS HH:MM-HH:MM [ZONE]" with ZONE an
    /// IANA time zone or a +HH:MM offset [default: UTC], e.g. "sat,sun 01:00-05:00 Europe/Berlin"
    #[arg(long)]
    window: Option<String>,
}

#[derive(Subcommand)]
enum GroupCmd {
    /// Create or replace a group
    Put(GroupPut),
    List,
}

#[derive(Args)]
struct AdvisoryCreate {
    id: String,
    #[arg(long)]
    title: String,
    /// agent, relay or any
    #[arg(long, default_value = "any")]
    role: AdvisoryRole,
    #[arg(long)]
    product: String,
    /// Affected builds, e.g. "<9.5.1519"
    #[arg(long)]
    affected: String,
    #[arg(long)]
    fixed: Option<String>,
}

#[derive(Subcommand)]
enum AdvisoryCmd {
    /// Create or replace an advisory
    Create(AdvisoryCreate),
    List,
    /// Hosts an advisory affects
    Hosts {
        id: String,
        #[arg(long, default_value_t = 900)]
        offline_after: u64,
    },
}

/// Print `v` as JSON with `--json`, else as the table `table` prints.
fn print<T: Serialize>(json: bool, v: &T, table: impl FnOnce(&T)) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        table(v);
    }
    Ok(())
}

pub fn run_admin(a: &AdminArgs) -> Result<()> {
    let db = Db::open(&a.db).with_context(|| format!("opening the database {}", a.db))?;
    match &a.cmd {
        AdminCommand::Token(c) => token(&db, a.json, c),
        AdminCommand::EnrollToken(EnrollCmd::Create {
            group,
            expires,
            uses,
        }) => {
            println!("{}", db.create_enroll_token(group, *expires, *uses)?);
            Ok(())
        }
        AdminCommand::Group(GroupCmd::Put(g)) => group_put(&db, g),
        AdminCommand::Group(GroupCmd::List) => group_list(&db, a.json),
        AdminCommand::Hosts(f) => hosts(&db, a.json, f),
        AdminCommand::Advisory(AdvisoryCmd::Create(c)) => advisory_create(&db, c),
        AdminCommand::Advisory(AdvisoryCmd::List) => advisory_list(&db, a.json),
        AdminCommand::Advisory(AdvisoryCmd::Hosts { id, offline_after }) => {
            advisory_hosts(&db, a.json, id, *offline_after)
        }
        AdminCommand::Coverage {
            patch_id,
            product,
            requires_build,
        } => coverage(&db, a.json, patch_id, product, requires_build),
        AdminCommand::Plan { targets } => plan(&db, a.json, targets),
        AdminCommand::Rollout(c) => rollouts::run(&db, a.json, c),
        AdminCommand::User(c) => users::run(&db, a.json, c),
    }
}

/// An administrator token as `admin token list` shows it (never the token itself).
#[derive(Serialize)]
struct TokenRow {
    id: i64,
    name: String,
    created: String,
    revoked: bool,
}

fn token(db: &Db, json: bool, c: &TokenCmd) -> Result<()> {
    match c {
        TokenCmd::Create { name, role } => println!("{}", db.create_admin_token(name, *role)?),
        TokenCmd::List => {
            let rows: Vec<TokenRow> = db
                .list_admin_tokens()?
                .into_iter()
                .map(|(id, name, created, revoked)| TokenRow {
                    id,
                    name,
                    created,
                    revoked,
                })
                .collect();
            print(json, &rows, |rows| {
                println!("{:<5} {:<20} {:<22} revoked", "id", "name", "created");
                for t in rows {
                    println!(
                        "{:<5} {:<20} {:<22} {}",
                        t.id,
                        esc(&t.name),
                        esc(&t.created),
                        t.revoked
                    );
                }
            })?;
        }
        TokenCmd::Revoke { id } => {
            if !db.revoke_admin_token(*id)? {
                bail!("no token with id {id}");
            }
            println!("revoked token {id}");
        }
    }
    Ok(())
}

/// `key=value` pairs of a repeatable flag.
fn pairs(flag: &str, form: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|x| {
            let (k, v) = x
                .split_once('=')
                .with_context(|| format!("--{flag} {x:?}: use {form}"))?;
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

fn group_put(db: &Db, g: &GroupPut) -> Result<()> {
    let group = Group {
        name: g.name.clone(),
        role: g.role,
        parent: g.parent.clone(),
        relays: g.relays.clone(),
        poll_interval: g.poll_interval,
        allow_direct: g.allow_direct,
        pinned: pairs("pin", "component=version", &g.pins)?,
        channel: model::protocol::Channel::from(g.channel.clone()),
        maintenance: g.window.as_deref().map(window).transpose()?,
    };
    db.put_group(&group, "cli")?;
    println!("group {} saved", g.name);
    Ok(())
}

/// `--window "DAYS HH:MM-HH:MM [ZONE]"`, ZONE an IANA name or a `+HH:MM` offset.
fn window(text: &str) -> Result<model::protocol::MaintenanceWindow> {
    let form = "use \"DAYS HH:MM-HH:MM [ZONE]\", ZONE an IANA time zone or +HH:MM, e.g. \"sat,sun 01:00-05:00 Europe/Berlin\"";
    let parts: Vec<&str> = text.split_whitespace().collect();
    let (days, hours, zone) = match parts.as_slice() {
        [d, h] => (d, h, "+00:00"),
        [d, h, z] => (d, h, *z),
        _ => bail!("--window {text:?}: {form}"),
    };
    let (start, end) = hours
        .split_once('-')
        .with_context(|| format!("--window {text:?}: {form}"))?;
    let offset = zone.starts_with(['+', '-']);
    let w = model::protocol::MaintenanceWindow {
        days: days.split(',').map(str::to_string).collect(),
        start: start.into(),
        end: end.into(),
        utc_offset: if offset { zone } else { "+00:00" }.into(),
        time_zone: (!offset).then(|| zone.to_string()),
    };
    w.validate()
        .map_err(|e| anyhow::anyhow!("--window {text:?}: {e}"))?;
    Ok(w)
}

fn group_list(db: &Db, json: bool) -> Result<()> {
    print(json, &db.groups()?, |groups| {
        println!(
            "{:<16} {:<6} {:<16} {:<6} {:<6} {:<7} relays",
            "group", "role", "parent", "poll", "direct", "channel"
        );
        for x in groups {
            println!(
                "{:<16} {:<6} {:<16} {:<6} {:<6} {:<7} {}",
                esc(&x.name),
                x.role.as_str(),
                esc(x.parent.as_deref().unwrap_or("-")),
                x.poll_interval,
                x.allow_direct,
                esc(x.channel.as_str()),
                esc(&x.relays.join(" "))
            );
        }
    })
}

fn advisory_create(db: &Db, c: &AdvisoryCreate) -> Result<()> {
    let a = Advisory {
        id: c.id.clone(),
        title: c.title.clone(),
        role: c.role,
        product: c.product.clone(),
        affected: c.affected.clone(),
        fixed: c.fixed.clone(),
    };
    db.put_advisory(&a, "cli")?;
    println!("advisory {} saved", c.id);
    Ok(())
}

fn advisory_list(db: &Db, json: bool) -> Result<()> {
    print(json, &db.advisories()?, |list| {
        for x in list {
            println!(
                "{:<12} {:<6} {} {} — {}",
                esc(&x.id),
                x.role.as_str(),
                esc(&x.product),
                esc(&x.affected),
                esc(&x.title)
            );
        }
    })
}

fn advisory_hosts(db: &Db, json: bool, id: &str, offline_after: u64) -> Result<()> {
    print(json, &fleet::affected(db, id, offline_after)?, |v| {
        println!(
            "{} host(s) affected by {} (by reported builds)",
            v.count,
            esc(id)
        );
        for h in &v.hosts {
            println!(
                "  {:<18} {:<6} {:<12} {}",
                esc(&h.hostname),
                h.role.as_str(),
                esc(&h.group),
                esc(&h.build)
            );
        }
    })
}

fn coverage(db: &Db, json: bool, patch_id: &str, product: &str, requires: &str) -> Result<()> {
    let v = fleet::coverage(db, patch_id, product, requires, 900)?;
    print(json, &v, |v| {
        let c = &v.counts;
        println!(
            "{}: have (reported) {}, eligible without {}, not eligible {}, unknown {}",
            esc(patch_id),
            c.have,
            c.eligible_without,
            c.not_eligible,
            c.unknown
        );
        for (k, list) in v.lists() {
            for h in list {
                println!(
                    "  {k:<17} {:<18} {} {}",
                    esc(&h.hostname),
                    esc(h.build.as_deref().unwrap_or("-")),
                    esc(h.reason.as_deref().unwrap_or(""))
                );
            }
        }
    })
}

fn plan(db: &Db, json: bool, targets: &[String]) -> Result<()> {
    let req = fleet::PlanRequest {
        targets: pairs("target", "product=build", targets)?,
    };
    let v = fleet::plan(db, &req, env!("CARGO_PKG_VERSION"), 900)?;
    print(json, &v, |v| {
        for s in &v.steps {
            println!("{}. {}", s.step, esc(&s.what));
        }
        for x in &v.violations {
            println!("violation: {}", esc(&x.violation));
        }
    })
}
