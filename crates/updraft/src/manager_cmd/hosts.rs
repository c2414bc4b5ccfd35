//! `updraft admin hosts`: the fleet table (also the demo's), a page at a time, every string from
//! the database escaped and what hosts reported labelled so; `updraft admin host …`: revoke,
//! delete, retry.

use anyhow::{bail, Result};
use clap::Subcommand;
use manager::text::escape as esc;
use manager::{fleet, Db};
use model::protocol::Outcome;

use super::backend::path_method::{DELETE, POST};
use super::backend::{enc, query, Backend, Saved};
use super::{done, HostsArgs};

/// The host list, a page at a time (at most [`fleet::MAX_PAGE`] hosts in memory): a table, or
/// with `--json` one JSON array.
pub(super) fn hosts(b: &Backend, json: bool, a: &HostsArgs) -> Result<()> {
    let mut f = fleet::HostFilter {
        role: a.role,
        group: a.group.clone(),
        product: a.product.clone(),
        build: a.build.clone(),
        build_below: a.build_below.clone(),
        component: a.component.clone(),
        version: a.version.clone(),
        status: a.status.clone(),
        limit: Some(fleet::MAX_PAGE),
        after: None,
    };
    let mut first = true;
    let mut opened = false;
    // Each page moves the cursor forward; the number of pages is bounded by the fleet's size.
    loop {
        let page = match b {
            Backend::Db(db) => fleet::host_list(db, &f, a.offline_after)?,
            Backend::Api(api) => api.get(&format!("/api/v1/hosts{}", filter_query(&f)))?,
        };
        // Opened once the first page is in: an error before it leaves stdout empty.
        if !opened {
            if json {
                print!("[");
            } else {
                hosts_header();
            }
            opened = true;
        }
        for h in &page.hosts {
            if json {
                let sep = if first { "" } else { "," };
                print!("{sep}\n{}", serde_json::to_string_pretty(h)?);
            } else {
                let db = match b {
                    Backend::Db(db) => Some(db),
                    Backend::Api(_) => None,
                };
                println!("{}", host_row(db, h)?);
            }
            first = false;
        }
        match page.next {
            Some(next) => f.after = Some(next),
            None => break,
        }
    }
    if json {
        println!("\n]");
    }
    Ok(())
}

fn filter_query(f: &fleet::HostFilter) -> String {
    query(&[
        ("role", f.role.map(|r| r.as_str().to_string())),
        ("group", f.group.clone()),
        ("product", f.product.clone()),
        ("build", f.build.clone()),
        ("build_below", f.build_below.clone()),
        ("component", f.component.clone()),
        ("version", f.version.clone()),
        ("status", f.status.as_ref().map(|s| s.as_str().to_string())),
        ("limit", f.limit.map(|l| l.to_string())),
        ("after", f.after.clone()),
    ])
}

#[derive(Subcommand)]
pub enum HostCmd {
    /// Revoke a host (by id): its credential stops working at once (its heartbeats are
    /// refused); it stays listed until deleted
    Revoke { id: String },
    /// Delete a host (by id) with its credential, hotfix history and rollout reports
    Delete { id: String },
    /// Ask a host to try again a version it gave up on (a failed reload): clears its failure
    /// in rollouts of that version, and the host forgets its failure once it hears of it
    Retry {
        id: String,
        #[arg(long)]
        component: String,
        #[arg(long)]
        version: String,
    },
}

pub(super) fn host(b: &Backend, json: bool, c: &HostCmd) -> Result<()> {
    match c {
        HostCmd::Revoke { id } => {
            match b {
                Backend::Db(db) => {
                    if !db.revoke_host(id, "cli")? && db.host(id)?.is_none() {
                        bail!("no host {id:?}: see `updraft admin hosts`");
                    }
                }
                Backend::Api(api) => {
                    api.call::<Saved>(
                        POST,
                        &format!("/api/v1/hosts/{}/revoke", enc(id)),
                        None::<&()>,
                    )?;
                }
            }
            done(
                json,
                &Saved { ok: true },
                &format!("host {} revoked", esc(id)),
            )
        }
        HostCmd::Delete { id } => {
            match b {
                Backend::Db(db) => {
                    if !db.delete_host(id, "cli")? {
                        bail!("no host {id:?}: see `updraft admin hosts`");
                    }
                }
                Backend::Api(api) => {
                    api.call::<Saved>(DELETE, &format!("/api/v1/hosts/{}", enc(id)), None::<&()>)?;
                }
            }
            done(
                json,
                &Saved { ok: true },
                &format!("host {} deleted", esc(id)),
            )
        }
        HostCmd::Retry {
            id,
            component,
            version,
        } => {
            let r: manager::db::Retry = match b {
                Backend::Db(db) => db.request_retry(id, component, version, "cli")?,
                Backend::Api(api) => api.call(
                    POST,
                    &format!("/api/v1/hosts/{}/retry", enc(id)),
                    Some(&serde_json::json!({"component": component, "version": version})),
                )?,
            };
            done(
                json,
                &r,
                &format!(
                    "host {} will try {} {} again with its next heartbeat",
                    esc(id),
                    esc(component),
                    esc(version)
                ),
            )
        }
    }
}

/// History entries shown per host in the fleet table (the newest).
const TABLE_HISTORY: u32 = 5;

/// The fleet table: host, role, group, status, builds, component versions, module status and the
/// newest hotfix history entries (used by `updraft admin hosts` and the demo). What hosts
/// reported is labelled so, and every string from the database is escaped.
pub fn hosts_table(db: &Db, hosts: &[fleet::HostView]) -> Result<()> {
    hosts_header();
    for h in hosts {
        println!("{}", host_row(Some(db), h)?);
    }
    Ok(())
}

fn hosts_header() {
    println!(
        "{:<16} {:<6} {:<15} {:<8} {:<38} {:<56} {:<24} hotfix history (reported)",
        "host",
        "role",
        "group",
        "status",
        "builds (reported)",
        "components (reported)",
        "modules (reported)"
    );
}

/// One host's line; its newest hotfix history from `db` (over the API the line shows "-").
fn host_row(db: Option<&Db>, h: &fleet::HostView) -> Result<String> {
    let host = &h.host;
    let builds: Vec<String> = host
        .builds
        .iter()
        .map(|(k, v)| format!("{} {}", esc(k), esc(v)))
        .collect();
    let comps: Vec<String> = host
        .components
        .iter()
        .map(|(k, v)| format!("{} {}", esc(k.rsplit('.').next().unwrap_or(k)), esc(v)))
        .collect();
    let mods: Vec<String> = host
        .modules
        .iter()
        .map(|m| format!("{} {}", esc(&m.name), esc(m.status.as_str())))
        .collect();
    let hist = match db {
        Some(db) => history(db, &host.id)?,
        None => vec!["-".to_string()],
    };
    let mut hostname = esc(&host.hostname).into_owned();
    if host.duplicate_hostname {
        hostname.push_str(" (duplicate hostname)");
    }
    if host.revoked.is_some() {
        hostname.push_str(" (revoked)");
    }
    Ok(format!(
        "{:<16} {:<6} {:<15} {:<8} {:<38} {:<56} {:<24} {}",
        hostname,
        host.role.as_str(),
        esc(&host.group),
        h.status.as_str(),
        builds.join(", "),
        comps.join(", "),
        mods.join(", "),
        hist.join("; ")
    ))
}

/// The newest hotfix history entries of a host, with how many older ones there are.
fn history(db: &Db, id: &str) -> Result<Vec<String>> {
    let mut hist: Vec<String> = db
        .history_latest(id, TABLE_HISTORY)?
        .into_iter()
        .map(|r| match r.entry.outcome {
            Outcome::Applied => format!("{} applied", esc(&r.entry.patch_id)),
            _ => format!("{} {}", esc(&r.entry.patch_id), esc(&r.entry.message)),
        })
        .collect();
    let older = db.history_count(id)?.saturating_sub(hist.len() as u64);
    if older > 0 {
        hist.insert(0, format!("({older} older)"));
    }
    Ok(hist)
}
