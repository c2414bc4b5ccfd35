//! `updraft demo`: the whole system on 127.0.0.1 in a temporary directory: a publisher's
//! repository, the origin, a parent and a child relay, a manager on SQLite and five agents, then a
//! new pattern and a patch spreading through the relay tree, and the fleet table at the end.
//! Every process is a real `updraft` process started through the launch library; all of them are
//! stopped and the directory removed on exit or Ctrl-C (unless `--keep-running` / `--keep` say
//! otherwise).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use model::protocol::Role;
mod spread;

use updraft::launch::{
    self, agent_config_toml, AgentSetup, Launcher, Logs, ManagerLink, ModuleSetup, Processes,
    ProductSetup,
};

#[derive(Args)]
pub struct DemoArgs {
    /// Leave everything running until Ctrl-C
    #[arg(long)]
    keep_running: bool,
    /// Keep the temporary directory after exiting
    #[arg(long)]
    keep: bool,
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
    let procs = Processes::default();
    stop_on_ctrl_c(&procs, tmp.path().to_path_buf(), args.keep);
    let result = demo(args, tmp.path(), &procs, started);
    if !args.keep_running || result.is_err() {
        procs.kill_all();
    }
    if args.keep || args.keep_running {
        let kept = tmp.keep();
        println!("files kept in {}", kept.display());
    }
    result
}

/// Ctrl-C at any time: stop every process, remove the directory (unless `keep`), exit 130.
fn stop_on_ctrl_c(procs: &Processes, dir: PathBuf, keep: bool) {
    let procs = procs.clone();
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

fn demo(args: &DemoArgs, dir: &Path, procs: &Processes, started: Instant) -> Result<()> {
    let mut d = Demo::new(dir, procs)?;
    d.publish()?;
    d.start_origin()?;
    d.start_manager()?;
    d.start_relays()?;
    d.start_agents()?;
    d.wait_for_first_content()?;
    d.publish_pattern_and_patch()?;
    d.wait_for_the_spread()?;
    d.show_fleet(started)?;
    if args.keep_running {
        println!("\neverything keeps running; Ctrl-C stops it all.");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    Ok(())
}

/// The demo's directory, processes and addresses, filled in step by step.
struct Demo<'a> {
    dir: PathBuf,
    procs: &'a Processes,
    /// Commands that finish (`repo`), quiet.
    quiet: Launcher,
    /// Processes that keep running, logging to `DIR/logs`.
    logged: Launcher,
    repo: PathBuf,
    root: PathBuf,
    db_url: String,
    db: manager::Db,
    admin: String,
    origin: String,
    manager: String,
    parent_url: String,
    child_url: String,
    parent_port: u16,
    child_port: u16,
}

impl<'a> Demo<'a> {
    /// The directory layout, the manager's database with an administrator token, and the
    /// relays' ports (known before they start: the groups name them).
    fn new(dir: &Path, procs: &'a Processes) -> Result<Demo<'a>> {
        std::fs::create_dir_all(dir.join("logs"))?;
        std::fs::create_dir_all(dir.join("files"))?;
        let quiet = Launcher::current()?.rust_log("error");
        let repo = dir.join("repo");
        // The manager's database is set up through the manager library (what `updraft admin`
        // calls).
        let db_url = format!("sqlite://{}", s(&dir.join("manager.db")));
        let db = manager::Db::open(&db_url)?;
        let admin = db.create_admin_token("demo", manager::db::UserRole::Admin)?;
        let (parent_port, child_port) = (launch::free_port()?, launch::free_port()?);
        Ok(Demo {
            dir: dir.to_path_buf(),
            procs,
            logged: quiet.rust_log("info"),
            quiet,
            root: repo.join("metadata/1.root.json"),
            repo,
            db_url,
            db,
            admin,
            origin: String::new(),
            manager: String::new(),
            parent_url: format!("http://127.0.0.1:{parent_port}"),
            child_url: format!("http://127.0.0.1:{child_port}"),
            parent_port,
            child_port,
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Step 1: the publisher's repository with a pattern, an engine and rules.
    fn publish(&self) -> Result<()> {
        println!(
            "1. publisher: repository in {} with antimalware.pattern, antimalware.engine, ips.rules",
            self.repo.display()
        );
        self.quiet.run(&["repo", "init", s(&self.repo)])?;
        let first: [(&str, &str, &str, &str, &[u8]); 3] = [
            (
                "antimalware.pattern",
                "18.523.00",
                "pattern",
                "main.hdb",
                b"pattern 18.523.00\n",
            ),
            (
                "antimalware.engine",
                "12.0.1",
                "engine",
                "engine.bin",
                b"engine 12.0.1\n",
            ),
            (
                "ips.rules",
                "2026.11.1",
                "rules",
                "ips.rules",
                b"rules 2026.11.1\n",
            ),
        ];
        for (component, version, kind, name, body) in first {
            self.add(component, version, kind, name, body, &[])?;
        }
        self.quiet.run(&["repo", "publish", s(&self.repo)])?;
        Ok(())
    }

    /// `updraft repo add` of `body` saved as `files/NAME`, with `extra` arguments.
    fn add(
        &self,
        component: &str,
        version: &str,
        kind: &str,
        name: &str,
        body: &[u8],
        extra: &[&str],
    ) -> Result<()> {
        let file = self.path("files").join(name);
        std::fs::write(&file, body).with_context(|| format!("writing {}", file.display()))?;
        let mut args = vec!["repo", "add", s(&self.repo), s(&file)];
        args.extend(["--component", component, "--version", version]);
        args.extend(["--kind", kind]);
        args.extend_from_slice(extra);
        self.quiet.run(&args)?;
        Ok(())
    }

    /// A long-running process that serves; its log in `DIR/logs/NAME.log`; returns its URL.
    fn serve(&self, name: &str, args: &[&str]) -> Result<String> {
        let log = Logs::File(self.path(&format!("logs/{name}.log")));
        let server = self.logged.server(args, &[], log)?;
        let url = server.base.clone();
        self.procs.push(server.process);
        Ok(url)
    }

    /// Step 2: `updraft serve` of the repository.
    fn start_origin(&mut self) -> Result<()> {
        let repo = s(&self.repo).to_string();
        self.origin = self.serve("origin", &["serve", &repo, "--listen", "127.0.0.1:0"])?;
        println!("2. origin:  {}", self.origin);
        Ok(())
    }

    /// Step 3: the relay and agent groups, then `updraft manager` over the database.
    fn start_manager(&mut self) -> Result<()> {
        let (parent, child) = (self.parent_url.clone(), self.child_url.clone());
        self.group("core", Role::Relay, None, &[&parent], false)?;
        self.group("site", Role::Relay, Some("core"), &[&child], false)?;
        self.group("agents-hq", Role::Agent, None, &[&parent], false)?;
        self.group(
            "agents-branch",
            Role::Agent,
            None,
            &[&child, &parent],
            false,
        )?;
        self.group("agents-roaming", Role::Agent, None, &[&child], true)?;
        let db = self.db_url.clone();
        let args = [
            "manager",
            "--db",
            &db,
            "--listen",
            "127.0.0.1:0",
            "--offline-after",
            "30",
        ];
        self.manager = self.serve("manager", &args)?;
        println!(
            "3. manager: {} (SQLite {})",
            self.manager,
            self.path("manager.db").display()
        );
        Ok(())
    }

    fn group(
        &self,
        name: &str,
        role: Role,
        parent: Option<&str>,
        relays: &[&str],
        allow_direct: bool,
    ) -> Result<()> {
        let g = manager::db::Group {
            name: name.into(),
            role,
            parent: parent.map(str::to_string),
            relays: relays.iter().map(|r| r.to_string()).collect(),
            poll_interval: 1,
            allow_direct,
            ..Default::default()
        };
        self.db.put_group(&g, "demo")?;
        Ok(())
    }

    /// An enrolment token for `group` (five uses), written to `DIR/FILE`.
    fn token(&self, group: &str, file: &str) -> Result<PathBuf> {
        let t = self.db.create_enroll_token(group, None, Some(5))?;
        let p = self.path(file);
        std::fs::write(&p, t).with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    }

    /// Step 4: the parent relay (upstream: the origin) and the child (upstream: the parent).
    fn start_relays(&self) -> Result<()> {
        let parent_token = self.token("core", "relay-parent.token")?;
        let child_token = self.token("site", "relay-child.token")?;
        self.relay(
            "relay-parent",
            &self.origin,
            self.parent_port,
            &parent_token,
        )?;
        self.relay(
            "relay-child",
            &self.parent_url,
            self.child_port,
            &child_token,
        )?;
        println!(
            "4. relays:  parent {} (upstream: origin), child {} (upstream: parent)",
            self.parent_url, self.child_url
        );
        Ok(())
    }

    fn relay(&self, name: &str, upstream: &str, port: u16, token: &Path) -> Result<()> {
        let cache = self.path(&format!("{name}-cache"));
        let listen = format!("127.0.0.1:{port}");
        let args = [
            "relay",
            "--upstream",
            upstream,
            "--trusted-root",
            s(&self.root),
            "--cache",
            s(&cache),
            "--listen",
            &listen,
            "--poll-interval",
            "1",
            "--manager",
            &self.manager,
            "--enroll-token-file",
            s(token),
            "--hostname",
            name,
        ];
        self.serve(name, &args)?;
        Ok(())
    }

    /// Step 5: five agents, each in its own directory with a scanner product of its build.
    fn start_agents(&self) -> Result<()> {
        for a in &AGENTS {
            let cfg = self.agent_config(a)?;
            let log = Logs::File(self.path(&format!("logs/{}.log", a.name)));
            let agent = self
                .logged
                .daemon(&["agent", "--config", s(&cfg)], &[], log)?;
            self.procs.push(agent);
        }
        println!("5. agents:  agent-hq-1/2 behind the parent relay; agent-branch-1 and agent-legacy (build 9.5.1200) behind the child; agent-roaming behind the child with allow_direct");
        Ok(())
    }

    /// The agent's home (`DIR/NAME`) with its product, and its configuration file.
    fn agent_config(&self, a: &AgentSpec) -> Result<PathBuf> {
        let home = self.path(a.name);
        std::fs::create_dir_all(home.join("opt/bin"))?;
        std::fs::write(
            home.join("opt/bin/scanner"),
            format!("scanner {}\n", a.build),
        )?;
        let relay = match a.group {
            "agents-hq" => &self.parent_url,
            _ => &self.child_url,
        };
        let module = |name: &str, components: &[&str], dir: &str| ModuleSetup {
            name: name.into(),
            components: components.iter().map(|c| c.to_string()).collect(),
            install_dir: home.join(dir),
            reload: None,
            self_upgrade: false,
        };
        let setup = AgentSetup {
            state_dir: home.join("state"),
            trusted_root: self.root.clone(),
            relays: vec![relay.clone()],
            origin: Some(self.origin.clone()),
            allow_direct: false,
            poll_interval: Some(1),
            manager: Some(ManagerLink {
                url: self.manager.clone(),
                enroll_token_file: self.token(a.group, &format!("{}.token", a.name))?,
                hostname: a.name.into(),
            }),
            modules: vec![
                module(
                    "antimalware",
                    &["antimalware.pattern", "antimalware.engine"],
                    "signatures",
                ),
                module("ips", &["ips.rules"], "ips"),
            ],
            products: vec![ProductSetup {
                name: "scanner".into(),
                build: a.build.into(),
                install_dir: home.join("opt"),
                restart: Some("true".into()),
                preflight: Vec::new(),
            }],
        };
        let path = home.join("agent.toml");
        std::fs::write(&path, agent_config_toml(&setup)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// `p` as a command-line argument (the demo's paths are UTF-8: a temporary directory).
fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}
