//! `updraft admin hosts`: the fleet table (also the demo's), a page at a time, every string from
//! the database escaped and what hosts reported labelled so.

use anyhow::Result;
use manager::text::escape as esc;
use manager::{fleet, Db};
use model::protocol::Outcome;

use super::HostsArgs;

/// The host list, a page at a time (at most [`fleet::MAX_PAGE`] hosts in memory): a table, or
/// with `--json` one JSON array.
pub(super) fn hosts(db: &Db, json: bool, a: &HostsArgs) -> Result<()> {
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
    if json {
        print!("[");
    } else {
        hosts_header();
    }
    let mut first = true;
    // Each page moves the cursor forward; the number of pages is bounded by the fleet's size.
    loop {
        let page = fleet::host_list(db, &f, a.offline_after)?;
        for h in &page.hosts {
            if json {
                let sep = if first { "" } else { "," };
                print!("{sep}\n{}", serde_json::to_string_pretty(h)?);
            } else {
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

/// History entries shown per host in the fleet table (the newest).
const TABLE_HISTORY: u32 = 5;

/// The fleet table: host, role, group, status, builds, component versions, module status and the
/// newest hotfix history entries (used by `updraft admin hosts` and the demo). What hosts
/// reported is labelled so, and every string from the database is escaped.
pub fn hosts_table(db: &Db, hosts: &[fleet::HostView]) -> Result<()> {
    hosts_header();
    for h in hosts {
        println!("{}", host_row(db, h)?);
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

fn host_row(db: &Db, h: &fleet::HostView) -> Result<String> {
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
    let mut hist: Vec<String> = db
        .history_latest(&host.id, TABLE_HISTORY)?
        .into_iter()
        .map(|r| match r.entry.outcome {
            Outcome::Applied => format!("{} applied", esc(&r.entry.patch_id)),
            _ => format!("{} {}", esc(&r.entry.patch_id), esc(&r.entry.message)),
        })
        .collect();
    let older = db
        .history_count(&host.id)?
        .saturating_sub(hist.len() as u64);
    if older > 0 {
        hist.insert(0, format!("({older} older)"));
    }
    let hostname = if host.duplicate_hostname {
        format!("{} (duplicate hostname)", esc(&host.hostname))
    } else {
        esc(&host.hostname).into_owned()
    };
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
