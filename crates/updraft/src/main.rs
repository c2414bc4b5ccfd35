//! `updraft`: argument parsing and dispatch for every Updraft command; each command family is a
//! module of its own (`*_cmd.rs`, `tuf_client.rs`, `demo.rs`) and the work is done by the library
//! crates. `runtime()` is the one async runtime the serving commands use.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

// First: `println!`/`print!` of every module below exit quietly on a broken pipe.
#[macro_use]
mod out;

mod agent_cmd;
mod demo;
mod flags;
mod manager_cmd;
mod progress;
mod relay_cmd;
mod repo_cmd;
mod serve_cmd;
mod supervisor;
mod tuf_client;

#[derive(Parser)]
#[command(
    name = "updraft",
    version,
    about = "Verified delivery of security content and patches (TUF 1.0): publisher, origin and client",
    long_about = "Updraft signs a TUF 1.0 repository of security content (patterns, engines, rules, \
                  programs, patches), serves it, and verifies every byte a client downloads against \
                  signed metadata whose keys can be rotated by publishing data.\n\n\
                  Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more detail, \
                  RUST_LOG=info,access=off to silence the servers' access logs; \
                  --log-format json (or UPDRAFT_LOG_FORMAT=json) for JSON lines."
)]
struct Cli {
    /// Log format on stderr: text, or json (one JSON object a line)
    #[arg(long, global = true, value_enum, env = "UPDRAFT_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create and sign a repository (publisher side; keys stay on this machine)
    #[command(subcommand)]
    Repo(repo_cmd::RepoCommand),
    /// Serve a repository directory over HTTP: DIR/metadata at /metadata/, DIR/targets at /targets/
    Serve(serve_cmd::ServeArgs),
    /// Mirror an upstream with full verification and serve it; export/import offline bundles
    Relay(relay_cmd::RelayArgs),
    /// Keep this host's modules supplied with verified content and apply patches
    Agent(agent_cmd::AgentArgs),
    /// Run the manager: enrolment, heartbeats, fleet questions, policy (HTTP API)
    Manager(manager_cmd::ManagerArgs),
    /// Administer a manager over its API (tokens, users, groups, hosts, advisories, rollouts, coverage, plans); --db for bootstrap
    ///
    /// Commands go to the manager's HTTP API: --url (or UPDRAFT_MANAGER) with an API token from
    /// --token-file, UPDRAFT_TOKEN or ~/.config/updraft/admin.toml (keys url, token_file, ca).
    /// The token's role decides what it may do: auditor reads everything, operator also changes
    /// groups, hosts, enrolment tokens, advisories and rollouts, admin also users and API tokens.
    ///
    /// --db URL opens the manager's database directly instead. It is meant for bootstrap:
    /// creating the first admin token (`updraft admin --db sqlite:///var/lib/updraft/manager.db
    /// token create --name me --role admin`) or user. It is never implied (no database is
    /// created unless --db names it), and its changes are audited as `cli`.
    Admin(manager_cmd::AdminArgs),
    /// The TUF conformance client-under-test command line (init, refresh, download)
    TufClient(tuf_client::TufClientArgs),
    /// Run a short demonstration on 127.0.0.1 in a temporary directory
    Demo(demo::DemoArgs),
}

/// Logs on stderr, filtered by `RUST_LOG` (default `info`; access logs are the target `access`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_current_span(false).init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .init(),
    }
}

/// Resolves on Ctrl-C or SIGTERM, after logging that `server` shuts down.
pub(crate) async fn shutdown_signal(server: &'static str) {
    let signal = wait_for_signal().await;
    tracing::info!(server, signal, "shutting down");
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn main() -> std::process::ExitCode {
    out::quietly(run)
}

fn run() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match &cli.command {
        Command::Repo(cmd) => repo_cmd::run(cmd),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Relay(args) => relay_cmd::run(args),
        Command::Agent(args) => agent_cmd::run(args),
        Command::Manager(args) => manager_cmd::run_manager(args),
        Command::Admin(args) => manager_cmd::run_admin(args),
        Command::TufClient(args) => tuf_client::run(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
