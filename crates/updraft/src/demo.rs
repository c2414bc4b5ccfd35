//! `updraft demo`: the whole system on 127.0.0.1 in a temporary directory: a publisher's
//! repository, the origin, a parent and a child relay, a manager on SQLite and five agents, then a
//! new pattern and a patch spreading through the relay tree, and the fleet table at the end.
//! Every process is a real `updraft` process; all of them are stopped and the directory removed
//! on exit or Ctrl-C (unless `--keep-running` / `--keep` say otherwise).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use model::protocol::{Outcome, Role};

#[derive(Args)]
pub struct DemoArgs {
    /// Leave everything running until Ctrl-C
    #[arg(long)]
    keep_running: bool,
    /// Keep the temporary directory after exiting
    #[arg(long)]
    keep: bool,
}

/// Child processes, killed when dropped (and on Ctrl-C).
#[derive(Default, Clone)]
struct Procs(Arc<Mutex<Vec<Child>>>);

impl Procs {
    fn kill_all(&self) {
        if let Ok(mut v) = self.0.lock() {
            for c in v.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
            v.clear();
        }
    }
}

fn exe() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find the updraft executable")
}

fn cmd(args: &[&str]) -> Result<String> {
    let out = Command::new(exe()?)
        .args(args)
        .env("RUST_LOG", "error")
        .output()?;
    if !out.status.success() {
        bail!(
            "updraft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Start a long-running `updraft` process that prints `… http://ADDR` first; returns ADDR's URL.
fn spawn(procs: &Procs, args: &[&str], log: &Path) -> Result<String> {
    let logf = std::fs::File::create(log)?;
    let mut child = Command::new(exe()?)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(logf)
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(|w| {
            w.trim_end_matches('/')
                .split("/metadata")
                .next()
                .unwrap_or(w)
                .to_string()
        })
        .with_context(|| {
            format!(
                "updraft {} did not start: {line:?} (see {})",
                args.join(" "),
                log.display()
            )
        })?;
    procs
        .0
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .push(child);
    Ok(url)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
fn add(
    repo: &Path,
    dir: &Path,
    component: &str,
    version: &str,
    kind: &str,
    name: &str,
    body: &[u8],
    extra: &[&str],
) -> Result<()> {
    let file = dir.join(name);
    std::fs::write(&file, body)?;
    let mut args = vec![
        "repo",
        "add",
        s(repo),
        s(&file),
        "--component",
        component,
        "--version",
        version,
        "--kind",
        kind,
    ];
    args.extend_from_slice(extra);
    cmd(&args)?;
    Ok(())
}

struct AgentSpec {
    name: &'static str,
    group: &'static str,
    build: &'static str,
}

const AGENTS: [AgentSpec; 5] = [
    AgentSpec {
        name: "agent-hq-1",
        group: "agents-hq",
        build: "9.5.1514",
    },
    AgentSpec {
        name: "agent-hq-2",
        group: "agents-hq",
        build: "9.5.1516",
    },
    AgentSpec {
        name: "agent-branch-1",
        group: "agents-branch",
        build: "9.5.1514",
    },
    AgentSpec {
        name: "agent-roaming",
        group: "agents-roaming",
        build: "9.5.1515",
    },
    AgentSpec {
        name: "agent-legacy",
        group: "agents-branch",
        build: "9.5.1200",
    },
];

pub fn run(args: &DemoArgs) -> Result<()> {
    let started = Instant::now();
    let tmp = tempfile::Builder::new().prefix("updraft-demo-").tempdir()?;
    let root_dir = tmp.path().to_path_buf();
    let procs = Procs::default();
    {
        // Ctrl-C at any time: stop every process, remove the directory, exit.
        let (procs, dir, keep) = (procs.clone(), root_dir.clone(), args.keep);
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let _ = tokio::signal::ctrl_c().await;
                });
                eprintln!("\nstopping every process…");
                procs.kill_all();
                if !keep {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                std::process::exit(130);
            }
        });
    }
    let result = demo(args, &root_dir, &procs, started);
    if !args.keep_running || result.is_err() {
        procs.kill_all();
    }
    if args.keep || args.keep_running {
        let kept = tmp.keep();
        println!("files kept in {}", kept.display());
    }
    result
}

fn demo(args: &DemoArgs, dir: &Path, procs: &Procs, started: Instant) -> Result<()> {
    let d = |p: &str| dir.join(p);
    std::fs::create_dir_all(d("logs"))?;
    std::fs::create_dir_all(d("files"))?;
    let repo = d("repo");
    let root = repo.join("metadata/1.root.json");
    println!(
        "1. publisher: repository in {} with antimalware.pattern, antimalware.engine, ips.rules",
        repo.display()
    );
    cmd(&["repo", "init", s(&repo)])?;
    add(
        &repo,
        &d("files"),
        "antimalware.pattern",
        "18.523.00",
        "pattern",
        "main.hdb",
        b"pattern 18.523.00\n",
        &[],
    )?;
    add(
        &repo,
        &d("files"),
        "antimalware.engine",
        "12.0.1",
        "engine",
        "engine.bin",
        b"engine 12.0.1\n",
        &[],
    )?;
    add(
        &repo,
        &d("files"),
        "ips.rules",
        "2026.11.1",
        "rules",
        "ips.rules",
        b"rules 2026.11.1\n",
        &[],
    )?;
    cmd(&["repo", "publish", s(&repo)])?;

    let origin = spawn(
        procs,
        &["serve", s(&repo), "--listen", "127.0.0.1:0"],
        &d("logs/origin.log"),
    )?;
    println!("2. origin:  {origin}");

    // The manager's database is set up through the manager library (what `updraft admin` calls).
    let db = format!("sqlite://{}", s(&d("manager.db")));
    let db_handle = manager::Db::open(&db)?;
    let admin = db_handle.create_admin_token("demo")?;
    let (parent_port, child_port) = (free_port()?, free_port()?);
    let (parent_url, child_url) = (
        format!("http://127.0.0.1:{parent_port}"),
        format!("http://127.0.0.1:{child_port}"),
    );
    let group =
        |name: &str, role: Role, parent: Option<&str>, relays: &[&String], allow_direct: bool| {
            let g = manager::db::Group {
                name: name.into(),
                role,
                parent: parent.map(str::to_string),
                relays: relays.iter().map(|r| r.to_string()).collect(),
                poll_interval: 1,
                allow_direct,
                pinned: Default::default(),
            };
            db_handle.put_group(&g, "demo")
        };
    group("core", Role::Relay, None, &[&parent_url], false)?;
    group("site", Role::Relay, Some("core"), &[&child_url], false)?;
    group("agents-hq", Role::Agent, None, &[&parent_url], false)?;
    group(
        "agents-branch",
        Role::Agent,
        None,
        &[&child_url, &parent_url],
        false,
    )?;
    group("agents-roaming", Role::Agent, None, &[&child_url], true)?;
    let manager = spawn(
        procs,
        &[
            "manager",
            "--db",
            &db,
            "--listen",
            "127.0.0.1:0",
            "--offline-after",
            "30",
        ],
        &d("logs/manager.log"),
    )?;
    println!(
        "3. manager: {manager} (SQLite {})",
        d("manager.db").display()
    );

    let token = |group: &str, file: &str| -> Result<PathBuf> {
        let t = db_handle.create_enroll_token(group, None, Some(5))?;
        let p = d(file);
        std::fs::write(&p, t)?;
        Ok(p)
    };
    let parent_token = token("core", "relay-parent.token")?;
    let child_token = token("site", "relay-child.token")?;
    let relay = |name: &str, upstream: &str, port: u16, tok: &Path| -> Result<String> {
        let cache = d(&format!("{name}-cache"));
        spawn(
            procs,
            &[
                "relay",
                "--upstream",
                upstream,
                "--trusted-root",
                s(&root),
                "--cache",
                s(&cache),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--poll-interval",
                "1",
                "--manager",
                &manager,
                "--enroll-token-file",
                s(tok),
                "--hostname",
                name,
            ],
            &d(&format!("logs/{name}.log")),
        )
    };
    relay("relay-parent", &origin, parent_port, &parent_token)?;
    relay("relay-child", &parent_url, child_port, &child_token)?;
    println!(
        "4. relays:  parent {parent_url} (upstream: origin), child {child_url} (upstream: parent)"
    );

    for a in &AGENTS {
        let home = d(a.name);
        std::fs::create_dir_all(home.join("opt/bin"))?;
        std::fs::write(
            home.join("opt/bin/scanner"),
            format!("scanner {}\n", a.build),
        )?;
        let tok = token(a.group, &format!("{}.token", a.name))?;
        let relays = if a.group == "agents-hq" {
            format!("{parent_url:?}")
        } else {
            format!("{child_url:?}")
        };
        let cfg = format!(
            "state_dir = {:?}\ntrusted_root = {:?}\nrelays = [{relays}]\norigin = {origin:?}\nallow_direct = false\npoll_interval = 1\n\
             manager = {manager:?}\nenroll_token_file = {:?}\nhostname = {:?}\n\n\
             [[module]]\nname = \"antimalware\"\ncomponents = [\"antimalware.pattern\", \"antimalware.engine\"]\ninstall_dir = {:?}\n\n\
             [[module]]\nname = \"ips\"\ncomponents = [\"ips.rules\"]\ninstall_dir = {:?}\n\n\
             [[product]]\nname = \"scanner\"\nbuild = {:?}\ninstall_dir = {:?}\nrestart = \"true\"\n",
            s(&home.join("state")),
            s(&root),
            s(&tok),
            a.name,
            s(&home.join("signatures")),
            s(&home.join("ips")),
            a.build,
            s(&home.join("opt")),
        );
        let cfg_path = home.join("agent.toml");
        std::fs::write(&cfg_path, cfg)?;
        let logf = std::fs::File::create(d(&format!("logs/{}.log", a.name)))?;
        let child = Command::new(exe()?)
            .args(["agent", "--config", s(&cfg_path)])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()?;
        procs
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("lock"))?
            .push(child);
    }
    println!("5. agents:  agent-hq-1/2 behind the parent relay; agent-branch-1 and agent-legacy (build 9.5.1200) behind the child; agent-roaming behind the child with allow_direct");

    wait(
        &db_handle,
        "every agent has the first content",
        45,
        |hosts| {
            hosts
                .iter()
                .filter(|h| {
                    h.host
                        .components
                        .get("antimalware.pattern")
                        .map(String::as_str)
                        == Some("18.523.00")
                })
                .count()
                == AGENTS.len()
        },
    )?;

    println!(
        "6. publisher: new pattern 18.525.00 and patch CP-1519 (scanner >= 9.5.1514 -> 9.5.1519)"
    );
    add(
        &repo,
        &d("files"),
        "antimalware.pattern",
        "18.525.00",
        "pattern",
        "main.hdb",
        b"pattern 18.525.00\n",
        &[],
    )?;
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let body = b"scanner 9.5.1519\n";
    h.set_size(body.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    tar.append_data(&mut h, "bin/scanner", &body[..])?;
    let patch = tar.into_inner()?;
    add(
        &repo,
        &d("files"),
        "scanner",
        "9.5.1519",
        "patch",
        "cp-1519.tar",
        &patch,
        &[
            "--product",
            "scanner",
            "--requires-build",
            ">=9.5.1514",
            "--build",
            "9.5.1519",
            "--patch-id",
            "CP-1519",
        ],
    )?;
    cmd(&["repo", "publish", s(&repo)])?;
    let last = std::cell::RefCell::new(String::new());
    wait(
        &db_handle,
        "the new pattern and the patch spread",
        60,
        |hosts| {
            let agents: Vec<_> = hosts
                .iter()
                .filter(|h| h.host.role == Role::Agent)
                .collect();
            let updated = agents
                .iter()
                .filter(|h| {
                    h.host
                        .components
                        .get("antimalware.pattern")
                        .map(String::as_str)
                        == Some("18.525.00")
                })
                .count();
            let patched = agents
                .iter()
                .filter(|h| h.host.builds.get("scanner").map(String::as_str) == Some("9.5.1519"))
                .count();
            let legacy_recorded = db_handle
                .history(None, Some("CP-1519"))
                .map(|v| v.iter().any(|(_, e)| e.outcome == Outcome::NotApplicable))
                .unwrap_or(false);
            let line = format!(
            "   {updated}/{} agents on pattern 18.525.00, {patched}/4 eligible agents patched, too-old host recorded as not applicable: {}",
            agents.len(),
            if legacy_recorded { "yes" } else { "not yet" }
        );
            if *last.borrow() != line {
                println!("{line}");
                *last.borrow_mut() = line;
            }
            updated == AGENTS.len() && patched == 4 && legacy_recorded
        },
    )?;

    println!("\n7. fleet (from the manager):");
    fleet_table(&db_handle)?;
    println!(
        "\ndone in {:.1} s. Files: {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    println!("look further (run with --keep-running to keep everything up):");
    println!("  curl -s -H 'Authorization: Bearer {admin}' {manager}/api/v1/hosts");
    println!("  curl -s {parent_url}/status    curl -s {child_url}/metrics");
    println!("  updraft admin --db {db} hosts");
    println!("  updraft admin --db {db} coverage CP-1519 --product scanner --requires-build '>=9.5.1514'");
    println!(
        "  updraft agent status --config {}",
        d("agent-legacy/agent.toml").display()
    );
    if args.keep_running {
        println!("\neverything keeps running; Ctrl-C stops it all.");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    Ok(())
}

fn wait(
    db: &manager::Db,
    what: &str,
    secs: u64,
    done: impl Fn(&[manager::fleet::HostView]) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let hosts = manager::fleet::hosts(db, &Default::default(), 30)?;
        if done(&hosts) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting until {what}; see the logs");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn fleet_table(db: &manager::Db) -> Result<()> {
    let hosts = manager::fleet::hosts(db, &Default::default(), 30)?;
    crate::manager_cmd::hosts_table(db, &hosts)
}
