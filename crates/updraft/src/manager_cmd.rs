//! `updraft manager` (the server) and `updraft admin …` (administration over the manager's API
//! with an API token; directly on the database only for bootstrap, with `--db`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use manager::db::{Advisory, AdvisoryRole, Group};
use manager::text::escape as esc;

mod backend;
mod hosts;
mod rollouts;
mod users;

use backend::path_method::{DELETE, POST, PUT};
use backend::{enc, query, Backend, NewSecret, Saved};
use hosts::hosts;
pub use hosts::hosts_table;
use manager::db::{AdminToken, EnrollToken, GroupSettings};
use manager::{fleet, ManagerConfig};
use model::protocol::{ModuleState, Role};
use serde::{Deserialize, Serialize};

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
    #[command(flatten)]
    connection: backend::Connection,
    /// Print JSON instead of tables and messages
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// API tokens (stored hashed), each with a role (admin role)
    #[command(subcommand)]
    Token(TokenCmd),
    /// Console users (argon2id password hashes), each with a role (admin role)
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
    /// One host: revoke, delete, retry a version it gave up on
    #[command(subcommand)]
    Host(hosts::HostCmd),
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
    /// With --db: seconds without a heartbeat before a host shows offline (over the API the
    /// manager's setting decides)
    #[arg(long, default_value_t = 900)]
    offline_after: u64,
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Print a new API token (shown once)
    Create {
        #[arg(long, default_value = "admin")]
        name: String,
        /// auditor (reads everything), operator (also rollouts, groups, hosts, enrolment
        /// tokens, advisories), admin (also users and API tokens)
        #[arg(long, default_value = "admin")]
        role: manager::db::UserRole,
    },
    /// API tokens with their roles (never the tokens)
    List,
    /// Revoke an API token (by the id the list shows)
    Revoke { id: i64 },
}

#[derive(Subcommand)]
enum EnrollCmd {
    /// Print a new enrolment token for a group (shown once)
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
    /// Enrolment tokens: group, uses left, expiry, state (never the tokens)
    List,
    /// Revoke an enrolment token (by the id the list shows): it enrols no further host
    Revoke { id: i64 },
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

/// `group set`: only what is given changes.
#[derive(Args)]
struct GroupSet {
    name: String,
    /// Parent relay group (relay groups); "" removes it
    #[arg(long)]
    parent: Option<String>,
    /// Relay URL, repeatable, in order: replaces the whole list
    #[arg(long = "relay")]
    relays: Vec<String>,
    /// Remove every relay
    #[arg(long, conflicts_with = "relays")]
    no_relays: bool,
    /// Seconds between the hosts' cycles (1 to 604800)
    #[arg(long)]
    poll_interval: Option<u64>,
    /// Whether agents may fall back to the origin: true or false
    #[arg(long)]
    allow_direct: Option<bool>,
    /// Pin component=version (added or changed), repeatable
    #[arg(long = "pin")]
    pins: Vec<String>,
    /// Remove the pin of a component, repeatable
    #[arg(long = "unpin")]
    unpins: Vec<String>,
    /// latest or n-1
    #[arg(long)]
    channel: Option<String>,
    /// Maintenance window, as for `group put`
    #[arg(long)]
    window: Option<String>,
    /// Remove the maintenance window
    #[arg(long, conflicts_with = "window")]
    no_window: bool,
}

#[derive(Subcommand)]
enum GroupCmd {
    /// Create or replace a group (every setting: what is not given takes its default)
    Put(GroupPut),
    /// Change some settings of a group; the others (and its role) stay
    Set(GroupSet),
    /// Delete a group (refused while hosts, child groups, valid enrolment tokens or unfinished
    /// rollouts use it)
    Delete {
        name: String,
    },
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
        /// With --db: seconds without a heartbeat before a host shows offline
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

/// Print a change's answer: `v` as JSON with `--json`, else `message`.
fn done<T: Serialize>(json: bool, v: &T, message: &str) -> Result<()> {
    print(json, v, |_| println!("{message}"))
}

pub fn run_admin(a: &AdminArgs) -> Result<()> {
    let b = a.connection.open()?;
    let json = a.json;
    match &a.cmd {
        AdminCommand::Token(c) => token(&b, json, c),
        AdminCommand::EnrollToken(c) => enroll_token(&b, json, c),
        AdminCommand::Group(GroupCmd::Put(g)) => group_put(&b, json, g),
        AdminCommand::Group(GroupCmd::Set(g)) => group_set(&b, json, g),
        AdminCommand::Group(GroupCmd::Delete { name }) => group_delete(&b, json, name),
        AdminCommand::Group(GroupCmd::List) => group_list(&b, json),
        AdminCommand::Hosts(f) => hosts(&b, json, f),
        AdminCommand::Host(c) => hosts::host(&b, json, c),
        AdminCommand::Advisory(AdvisoryCmd::Create(c)) => advisory_create(&b, json, c),
        AdminCommand::Advisory(AdvisoryCmd::List) => advisory_list(&b, json),
        AdminCommand::Advisory(AdvisoryCmd::Hosts { id, offline_after }) => {
            advisory_hosts(&b, json, id, *offline_after)
        }
        AdminCommand::Coverage {
            patch_id,
            product,
            requires_build,
        } => coverage(&b, json, patch_id, product, requires_build),
        AdminCommand::Plan { targets } => plan(&b, json, targets),
        AdminCommand::Rollout(c) => rollouts::run(&b, json, c),
        AdminCommand::User(c) => users::run(&b, json, c),
    }
}

/// The answer of a list route: `{key: [...]}`.
#[derive(Deserialize)]
struct Listed<T> {
    #[serde(
        alias = "tokens",
        alias = "groups",
        alias = "advisories",
        alias = "users"
    )]
    list: Vec<T>,
}

fn token(b: &Backend, json: bool, c: &TokenCmd) -> Result<()> {
    match c {
        TokenCmd::Create { name, role } => {
            let s: NewSecret = match b {
                Backend::Db(db) => {
                    let (id, token) = db.create_admin_token_by(name, *role, "cli")?;
                    NewSecret { id, token }
                }
                Backend::Api(api) => api.call(
                    POST,
                    "/api/v1/tokens",
                    Some(&serde_json::json!({"name": name, "role": role})),
                )?,
            };
            done(json, &s, &s.token)
        }
        TokenCmd::List => {
            let rows: Vec<AdminToken> = match b {
                Backend::Db(db) => db.admin_tokens()?,
                Backend::Api(api) => api.get::<Listed<_>>("/api/v1/tokens")?.list,
            };
            print(json, &rows, |rows| {
                println!(
                    "{:<5} {:<20} {:<9} {:<22} revoked",
                    "id", "name", "role", "created"
                );
                for t in rows {
                    println!(
                        "{:<5} {:<20} {:<9} {:<22} {}",
                        t.id,
                        esc(&t.name),
                        t.role,
                        esc(&t.created),
                        t.revoked
                    );
                }
            })
        }
        TokenCmd::Revoke { id } => {
            match b {
                Backend::Db(db) => {
                    if !db.revoke_admin_token_by(*id, "cli")? {
                        bail!("no token with id {id}: see `updraft admin token list`");
                    }
                }
                Backend::Api(api) => {
                    api.call::<Saved>(DELETE, &format!("/api/v1/tokens/{id}"), None::<&()>)?;
                }
            }
            done(json, &Saved { ok: true }, &format!("revoked token {id}"))
        }
    }
}

fn enroll_token(b: &Backend, json: bool, c: &EnrollCmd) -> Result<()> {
    match c {
        EnrollCmd::Create {
            group,
            expires,
            uses,
        } => {
            let s: NewSecret = match b {
                Backend::Db(db) => {
                    let (id, token) = db.create_enroll_token_by(group, *expires, *uses, "cli")?;
                    NewSecret { id, token }
                }
                Backend::Api(api) => api.call(
                    POST,
                    "/api/v1/enroll-tokens",
                    Some(
                        &serde_json::json!({"group": group, "expires_days": expires, "uses": uses}),
                    ),
                )?,
            };
            done(json, &s, &s.token)
        }
        EnrollCmd::List => {
            let rows: Vec<EnrollToken> = match b {
                Backend::Db(db) => db.enroll_tokens()?,
                Backend::Api(api) => api.get::<Listed<_>>("/api/v1/enroll-tokens")?.list,
            };
            print(json, &rows, |rows| {
                println!(
                    "{:<5} {:<16} {:<9} {:<22} {:<22} state",
                    "id", "group", "uses left", "expires", "created"
                );
                for t in rows {
                    println!(
                        "{:<5} {:<16} {:<9} {:<22} {:<22} {}",
                        t.id,
                        esc(&t.group),
                        t.uses_left.map_or("unlimited".into(), |u| u.to_string()),
                        esc(t.expires.as_deref().unwrap_or("never")),
                        esc(&t.created),
                        esc(&t.state)
                    );
                }
            })
        }
        EnrollCmd::Revoke { id } => {
            match b {
                Backend::Db(db) => {
                    if !db.revoke_enroll_token(*id, "cli")? {
                        bail!("no enrolment token with id {id}: see `updraft admin enroll-token list`");
                    }
                }
                Backend::Api(api) => {
                    api.call::<Saved>(DELETE, &format!("/api/v1/enroll-tokens/{id}"), None::<&()>)?;
                }
            }
            done(
                json,
                &Saved { ok: true },
                &format!("revoked enrolment token {id}"),
            )
        }
    }
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

fn group_put(b: &Backend, json: bool, g: &GroupPut) -> Result<()> {
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
    match b {
        Backend::Db(db) => db.put_group(&group, "cli")?,
        Backend::Api(api) => {
            api.call::<Saved>(
                PUT,
                &format!("/api/v1/groups/{}", enc(&g.name)),
                Some(&group),
            )?;
        }
    }
    done(
        json,
        &Saved { ok: true },
        &format!("group {} saved", esc(&g.name)),
    )
}

fn group_set(b: &Backend, json: bool, g: &GroupSet) -> Result<()> {
    let s = GroupSettings {
        parent: g
            .parent
            .as_ref()
            .map(|p| (!p.is_empty()).then(|| p.clone())),
        relays: if g.no_relays {
            Some(Vec::new())
        } else {
            (!g.relays.is_empty()).then(|| g.relays.clone())
        },
        poll_interval: g.poll_interval,
        allow_direct: g.allow_direct,
        pin: pairs("pin", "component=version", &g.pins)?,
        unpin: g.unpins.clone(),
        channel: g.channel.clone().map(model::protocol::Channel::from),
        maintenance: if g.no_window {
            Some(None)
        } else {
            g.window.as_deref().map(window).transpose()?.map(Some)
        },
    };
    anyhow::ensure!(
        s != GroupSettings::default(),
        "nothing to change: give a setting (see `updraft admin group set --help`)"
    );
    let stored: Group = match b {
        Backend::Db(db) => db.update_group(&g.name, &s, "cli")?,
        Backend::Api(api) => api.call(
            POST,
            &format!("/api/v1/groups/{}/settings", enc(&g.name)),
            Some(&s),
        )?,
    };
    print(json, &stored, |x| {
        println!("group {} saved", esc(&x.name));
        group_rows(std::slice::from_ref(x));
    })
}

fn group_delete(b: &Backend, json: bool, name: &str) -> Result<()> {
    match b {
        Backend::Db(db) => db.delete_group(name, "cli")?,
        Backend::Api(api) => {
            api.call::<Saved>(
                DELETE,
                &format!("/api/v1/groups/{}", enc(name)),
                None::<&()>,
            )?;
        }
    }
    done(
        json,
        &Saved { ok: true },
        &format!("group {} deleted", esc(name)),
    )
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

fn group_list(b: &Backend, json: bool) -> Result<()> {
    let groups: Vec<Group> = match b {
        Backend::Db(db) => db.groups()?,
        Backend::Api(api) => api.get::<Listed<_>>("/api/v1/groups")?.list,
    };
    print(json, &groups, |groups| group_rows(groups))
}

fn group_rows(groups: &[Group]) {
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
}

fn advisory_create(b: &Backend, json: bool, c: &AdvisoryCreate) -> Result<()> {
    let a = Advisory {
        id: c.id.clone(),
        title: c.title.clone(),
        role: c.role,
        product: c.product.clone(),
        affected: c.affected.clone(),
        fixed: c.fixed.clone(),
    };
    match b {
        Backend::Db(db) => db.put_advisory(&a, "cli")?,
        Backend::Api(api) => {
            api.call::<Saved>(PUT, &format!("/api/v1/advisories/{}", enc(&c.id)), Some(&a))?;
        }
    }
    done(
        json,
        &Saved { ok: true },
        &format!("advisory {} saved", esc(&c.id)),
    )
}

fn advisory_list(b: &Backend, json: bool) -> Result<()> {
    let list: Vec<Advisory> = match b {
        Backend::Db(db) => db.advisories()?,
        Backend::Api(api) => api.get::<Listed<_>>("/api/v1/advisories")?.list,
    };
    print(json, &list, |list| {
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

fn advisory_hosts(b: &Backend, json: bool, id: &str, offline_after: u64) -> Result<()> {
    let v = match b {
        Backend::Db(db) => fleet::affected(db, id, offline_after)?,
        Backend::Api(api) => {
            // Every page (the number of pages is bounded by the fleet's size).
            let path = format!("/api/v1/advisories/{}/hosts", enc(id));
            let mut all: fleet::AdvisoryHosts = api.get(&format!(
                "{path}{}",
                query(&[("limit", Some("1000".into()))])
            ))?;
            while let Some(next) = all.next.take() {
                let page: fleet::AdvisoryHosts = api.get(&format!(
                    "{path}{}",
                    query(&[("limit", Some("1000".into())), ("after", Some(next))])
                ))?;
                all.hosts.extend(page.hosts);
                all.next = page.next;
            }
            all
        }
    };
    print(json, &v, |v| {
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

fn coverage(b: &Backend, json: bool, patch_id: &str, product: &str, requires: &str) -> Result<()> {
    let v = match b {
        Backend::Db(db) => fleet::coverage(db, patch_id, product, requires, 900)?,
        Backend::Api(api) => api.get(&format!(
            "/api/v1/patches/{}/coverage{}",
            enc(patch_id),
            query(&[
                ("product", Some(product.to_string())),
                ("requires_build", Some(requires.to_string()))
            ])
        ))?,
    };
    print(json, &v, |v: &fleet::Coverage| {
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

fn plan(b: &Backend, json: bool, targets: &[String]) -> Result<()> {
    let req = fleet::PlanRequest {
        targets: pairs("target", "product=build", targets)?,
    };
    let v: fleet::Plan = match b {
        Backend::Db(db) => fleet::plan(db, &req, env!("CARGO_PKG_VERSION"), 900)?,
        Backend::Api(api) => api.call(POST, "/api/v1/upgrade-plan", Some(&req))?,
    };
    print(json, &v, |v| {
        for s in &v.steps {
            println!("{}. {}", s.step, esc(&s.what));
        }
        for x in &v.violations {
            println!("violation: {}", esc(&x.violation));
        }
    })
}
