//! `updraft manager` (the server) and `updraft admin …` (administration on the database).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use manager::{db::Advisory, db::Group, fleet, Db, ManagerConfig};

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
}

pub fn run_manager(a: &ManagerArgs) -> Result<()> {
    let mut c: ManagerConfig = match &a.config {
        Some(p) => {
            toml::from_str(&std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?)
                .with_context(|| format!("{}", p.display()))?
        }
        None => toml::from_str("")?,
    };
    if let Some(v) = &a.db {
        c.db = v.clone();
    }
    if let Some(v) = &a.listen {
        c.listen = v.clone();
    }
    if a.tls_cert.is_some() {
        c.tls_cert = a.tls_cert.clone();
    }
    if a.tls_key.is_some() {
        c.tls_key = a.tls_key.clone();
    }
    if let Some(v) = a.offline_after {
        c.offline_after = v;
    }
    if let Some(v) = a.failure_delay_ms {
        c.failure_delay_ms = v;
    }
    crate::runtime()?.block_on(manager::run(c, async {
        let _ = tokio::signal::ctrl_c().await;
    }))?;
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
    /// Administrator API tokens (stored hashed)
    #[command(subcommand)]
    Token(TokenCmd),
    /// Enrolment tokens for hosts
    #[command(subcommand)]
    EnrollToken(EnrollCmd),
    /// Groups and their policy
    #[command(subcommand)]
    Group(GroupCmd),
    /// List hosts (filters as in GET /api/v1/hosts)
    Hosts {
        #[arg(long)]
        role: Option<String>,
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
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 900)]
        offline_after: u64,
    },
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
    /// Ordered upgrade plan for target builds (product=build, repeatable)
    Plan {
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Print a new administrator token
    Create {
        #[arg(long, default_value = "admin")]
        name: String,
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
        #[arg(long)]
        expires: Option<u32>,
        #[arg(long)]
        uses: Option<u32>,
    },
}

#[derive(Subcommand)]
enum GroupCmd {
    /// Create or replace a group
    Put {
        name: String,
        /// agent or relay
        #[arg(long, default_value = "agent")]
        role: String,
        /// Parent relay group (relay groups)
        #[arg(long)]
        parent: Option<String>,
        /// Relay URL, repeatable, in order
        #[arg(long = "relay")]
        relays: Vec<String>,
        #[arg(long, default_value_t = 300)]
        poll_interval: u64,
        #[arg(long)]
        allow_direct: bool,
        /// Pinned version component=version, repeatable
        #[arg(long = "pin")]
        pins: Vec<String>,
    },
    List,
}

#[derive(Subcommand)]
enum AdvisoryCmd {
    /// Create or replace an advisory
    Create {
        id: String,
        #[arg(long)]
        title: String,
        /// agent, relay or any
        #[arg(long, default_value = "any")]
        role: String,
        #[arg(long)]
        product: String,
        /// Affected builds, e.g. "<9.5.1519"
        #[arg(long)]
        affected: String,
        #[arg(long)]
        fixed: Option<String>,
    },
    List,
    /// Hosts an advisory affects
    Hosts {
        id: String,
        #[arg(long, default_value_t = 900)]
        offline_after: u64,
    },
}

fn print(json: bool, v: &serde_json::Value, table: impl FnOnce()) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        table();
    }
    Ok(())
}

pub fn run_admin(a: &AdminArgs) -> Result<()> {
    let db = Db::open(&a.db)?;
    match &a.cmd {
        AdminCommand::Token(TokenCmd::Create { name }) => {
            println!("{}", db.create_admin_token(name)?)
        }
        AdminCommand::Token(TokenCmd::List) => {
            let t = db.list_admin_tokens()?;
            let v = serde_json::json!(t.iter().map(|(id, n, c, r)| serde_json::json!({"id": id, "name": n, "created": c, "revoked": r})).collect::<Vec<_>>());
            print(a.json, &v, || {
                println!("{:<5} {:<20} {:<22} revoked", "id", "name", "created");
                for (id, n, c, r) in &t {
                    println!("{id:<5} {n:<20} {c:<22} {r}");
                }
            })?;
        }
        AdminCommand::Token(TokenCmd::Revoke { id }) => {
            if !db.revoke_admin_token(*id)? {
                bail!("no token with id {id}");
            }
            println!("revoked token {id}");
        }
        AdminCommand::EnrollToken(EnrollCmd::Create {
            group,
            expires,
            uses,
        }) => {
            println!("{}", db.create_enroll_token(group, *expires, *uses)?)
        }
        AdminCommand::Group(GroupCmd::Put {
            name,
            role,
            parent,
            relays,
            poll_interval,
            allow_direct,
            pins,
        }) => {
            let mut pinned = BTreeMap::new();
            for p in pins {
                let (c, v) = p
                    .split_once('=')
                    .with_context(|| format!("--pin {p:?}: use component=version"))?;
                pinned.insert(c.to_string(), v.to_string());
            }
            let g = Group {
                name: name.clone(),
                role: role.clone(),
                parent: parent.clone(),
                relays: relays.clone(),
                poll_interval: *poll_interval,
                allow_direct: *allow_direct,
                pinned,
            };
            db.put_group(&g, "cli")?;
            println!("group {name} saved");
        }
        AdminCommand::Group(GroupCmd::List) => {
            let g = db.groups()?;
            print(a.json, &serde_json::to_value(&g)?, || {
                println!(
                    "{:<16} {:<6} {:<16} {:<6} {:<6} relays",
                    "group", "role", "parent", "poll", "direct"
                );
                for x in &g {
                    println!(
                        "{:<16} {:<6} {:<16} {:<6} {:<6} {}",
                        x.name,
                        x.role,
                        x.parent.as_deref().unwrap_or("-"),
                        x.poll_interval,
                        x.allow_direct,
                        x.relays.join(" ")
                    );
                }
            })?;
        }
        AdminCommand::Hosts {
            role,
            group,
            product,
            build,
            build_below,
            component,
            version,
            status,
            offline_after,
        } => {
            let f = fleet::HostFilter {
                role: role.clone(),
                group: group.clone(),
                product: product.clone(),
                build: build.clone(),
                build_below: build_below.clone(),
                component: component.clone(),
                version: version.clone(),
                status: status.clone(),
            };
            let hosts = fleet::hosts(&db, &f, *offline_after)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&hosts)?);
            } else {
                hosts_table(&db, &hosts)?;
            }
        }
        AdminCommand::Advisory(AdvisoryCmd::Create {
            id,
            title,
            role,
            product,
            affected,
            fixed,
        }) => {
            db.put_advisory(
                &Advisory {
                    id: id.clone(),
                    title: title.clone(),
                    role: role.clone(),
                    product: product.clone(),
                    affected: affected.clone(),
                    fixed: fixed.clone(),
                },
                "cli",
            )?;
            println!("advisory {id} saved");
        }
        AdminCommand::Advisory(AdvisoryCmd::List) => {
            let v = db.advisories()?;
            print(a.json, &serde_json::to_value(&v)?, || {
                for x in &v {
                    println!(
                        "{:<12} {:<6} {} {} — {}",
                        x.id, x.role, x.product, x.affected, x.title
                    );
                }
            })?;
        }
        AdminCommand::Advisory(AdvisoryCmd::Hosts { id, offline_after }) => {
            let v = fleet::affected(&db, id, *offline_after)?;
            print(a.json, &v, || {
                println!("{} host(s) affected by {id}", v["count"]);
                for h in v["hosts"].as_array().into_iter().flatten() {
                    println!(
                        "  {:<18} {:<6} {:<12} {}",
                        h["hostname"].as_str().unwrap_or(""),
                        h["role"].as_str().unwrap_or(""),
                        h["group"].as_str().unwrap_or(""),
                        h["build"].as_str().unwrap_or("")
                    );
                }
            })?;
        }
        AdminCommand::Coverage {
            patch_id,
            product,
            requires_build,
        } => {
            let v = fleet::coverage(&db, patch_id, product, requires_build, 900)?;
            print(a.json, &v, || {
                println!("{patch_id}: {}", v["counts"]);
                for k in ["have", "eligible_without", "not_eligible", "unknown"] {
                    for h in v[k].as_array().into_iter().flatten() {
                        println!(
                            "  {k:<17} {:<18} {} {}",
                            h["hostname"].as_str().unwrap_or(""),
                            h["build"].as_str().unwrap_or("-"),
                            h["reason"].as_str().unwrap_or("")
                        );
                    }
                }
            })?;
        }
        AdminCommand::Plan { targets } => {
            let mut t = BTreeMap::new();
            for x in targets {
                let (p, b) = x
                    .split_once('=')
                    .with_context(|| format!("--target {x:?}: use product=build"))?;
                t.insert(p.to_string(), b.to_string());
            }
            let v = fleet::plan(
                &db,
                &fleet::PlanRequest { targets: t },
                env!("CARGO_PKG_VERSION"),
                900,
            )?;
            print(a.json, &v, || {
                for s in v["steps"].as_array().into_iter().flatten() {
                    println!("{}. {}", s["step"], s["what"].as_str().unwrap_or(""));
                }
                for x in v["violations"].as_array().into_iter().flatten() {
                    println!("violation: {}", x["violation"].as_str().unwrap_or(""));
                }
            })?;
        }
    }
    Ok(())
}

/// The fleet table: host, role, group, status, builds, component versions, module status and the
/// hotfix history (used by `updraft admin hosts` and the demo).
pub fn hosts_table(db: &Db, hosts: &[fleet::HostView]) -> Result<()> {
    println!(
        "{:<16} {:<6} {:<15} {:<8} {:<38} {:<56} {:<24} hotfix history",
        "host", "role", "group", "status", "builds", "components", "modules"
    );
    let join = |it: &mut dyn Iterator<Item = String>| it.collect::<Vec<_>>().join(", ");
    for h in hosts {
        let builds = join(&mut h.host.builds.iter().map(|(k, v)| format!("{k} {v}")));
        let comps = join(
            &mut h
                .host
                .components
                .iter()
                .map(|(k, v)| format!("{} {v}", k.rsplit('.').next().unwrap_or(k))),
        );
        let mods = join(
            &mut h.host.modules.as_array().into_iter().flatten().map(|m| {
                format!(
                    "{} {}",
                    m["name"].as_str().unwrap_or("?"),
                    m["status"].as_str().unwrap_or("?")
                )
            }),
        );
        let hist: Vec<String> = db
            .history(Some(&h.host.id), None)?
            .into_iter()
            .map(|(_, e)| {
                if e.outcome == "applied" {
                    format!("{} applied", e.patch_id)
                } else {
                    format!("{} {}", e.patch_id, e.message)
                }
            })
            .collect();
        println!(
            "{:<16} {:<6} {:<15} {:<8} {:<38} {:<56} {:<24} {}",
            h.host.hostname,
            h.host.role,
            h.host.group,
            h.status,
            builds,
            comps,
            mods,
            hist.join("; ")
        );
    }
    Ok(())
}
