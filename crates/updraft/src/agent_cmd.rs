//! `updraft agent …`: run the agent, or show its status and hotfix history.

use std::path::{Path, PathBuf};

use agent::{Agent, AgentConfig};
use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    cmd: Option<AgentCommand>,
    /// Agent configuration (TOML)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run one update cycle, print what it did as JSON, and exit
    #[arg(long)]
    once: bool,
    /// Check the configuration (and the trust anchor it names) with this build, print the
    /// build, and exit: what a new build of the agent must pass before it is kept
    #[arg(long)]
    check: bool,
    /// Run as the worker of a supervising `updraft agent` (self-upgrade; not for manual use)
    #[arg(long, hide = true)]
    worker: bool,
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Module status, installed versions, product builds and the last result
    Status {
        #[arg(long)]
        config: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The hotfix history (every patch outcome)
    History {
        #[arg(long)]
        config: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: &AgentArgs) -> Result<()> {
    match &args.cmd {
        Some(AgentCommand::Status { config, json }) => status(config, *json),
        Some(AgentCommand::History { config, json }) => history(config, *json),
        None => {
            let config = args
                .config
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("--config FILE is required"))?;
            let c = AgentConfig::load(config)?;
            if args.check {
                println!(
                    "updraft {} agent: {} is valid",
                    env!("CARGO_PKG_VERSION"),
                    config.display()
                );
                return Ok(());
            }
            if args.worker {
                agent::upgrade::end_with_supervisor();
            }
            let a = Agent::new(c)?;
            if a.self_module().is_some() && !args.once && !args.worker {
                return crate::supervisor::supervise(&a, config, "agent");
            }
            daemon(a, args.once)
        }
    }
}

fn status(config: &Path, json: bool) -> Result<()> {
    let c = AgentConfig::load(config)?;
    let s = agent::state::StateDir::new(&c.state_dir).status()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!(
        "update source: {}",
        s.source.as_deref().unwrap_or("none yet")
    );
    println!(
        "last result:   {}",
        if s.last_result.is_empty() {
            "never run"
        } else {
            &s.last_result
        }
    );
    if let Some(t) = &s.last_success {
        println!("last change:   {t}");
    }
    for e in &s.errors {
        println!("error:         {e}");
    }
    for l in &s.lagging {
        println!("lagging:       {l}");
    }
    println!(
        "\n{:<16} {:<8} {:<40} reason",
        "module", "status", "components"
    );
    for m in &s.modules {
        let comps: Vec<String> = m
            .components
            .iter()
            .map(|(c, v)| format!("{c} {}", v.as_deref().unwrap_or("-")))
            .collect();
        println!(
            "{:<16} {:<8} {:<40} {}",
            m.name,
            m.status,
            comps.join(", "),
            m.reason.as_deref().unwrap_or("")
        );
    }
    if !s.products.is_empty() {
        println!("\n{:<16} build", "product");
        for (p, b) in &s.products {
            println!("{p:<16} {b}");
        }
    }
    Ok(())
}

fn history(config: &Path, json: bool) -> Result<()> {
    let c = AgentConfig::load(config)?;
    let h = agent::state::StateDir::new(&c.state_dir).history()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&h)?);
        return Ok(());
    }
    println!(
        "{:<21} {:<10} {:<12} {:<12} {:<12} {:<17} message",
        "time", "patch", "product", "from", "to", "outcome"
    );
    for e in &h {
        println!(
            "{:<21} {:<10} {:<12} {:<12} {:<12} {:<17} {}",
            e.time, e.patch_id, e.product, e.from_build, e.to_build, e.outcome, e.message
        );
    }
    Ok(())
}

/// Run cycles every poll interval; with `once`, one cycle whose report is printed as JSON.
/// A supervised worker (self-upgrade) ends with [`agent::upgrade::RESTART_CODE`] when a new
/// build of the agent is installed, and confirms its own build once a cycle reported.
fn daemon(a: Agent, once: bool) -> Result<()> {
    let running = std::env::var(crate::supervisor::BUILD_ENV).ok();
    loop {
        let report = a.cycle();
        if let (Ok(r), Some(running)) = (&report, &running) {
            if a.after_cycle(running, r)? == agent::upgrade::AfterCycle::Restart {
                // The supervisor starts the new build (see agent::upgrade).
                std::process::exit(agent::upgrade::RESTART_CODE);
            }
        }
        if once {
            println!("{}", serde_json::to_string_pretty(&report?)?);
            return Ok(());
        }
        match &report {
            Ok(r) if !r.installed.is_empty() || !r.patches.is_empty() => {
                tracing::info!(installed = ?r.installed, patches = ?r.patches, source = ?r.source, "cycle done")
            }
            Ok(_) => tracing::debug!("cycle done, nothing changed"),
            Err(e) => tracing::error!(error = %e, "cycle failed"),
        }
        std::thread::sleep(agent::daemon::next_poll(a.poll_interval()));
    }
}
