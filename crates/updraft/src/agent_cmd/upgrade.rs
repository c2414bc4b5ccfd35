//! The supervisor of an agent that upgrades itself (a module with `self_upgrade = true`):
//! `updraft agent --config FILE` runs the worker (`… --worker`) from the build installed in
//! that module and stays, running the code it started with, to start the new build when the
//! worker asks for it (exit status [`RESTART_CODE`]) and to put the previous build back when a
//! new build exits before it has reported, or has not reported within [`CONFIRM_WITHIN`].
//! SIGTERM or Ctrl-C stops the worker and the supervisor.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::upgrade::{CONFIRM_WITHIN, RESTART_CODE};
use agent::Agent;
use anyhow::{Context, Result};

/// How often the supervisor looks at its worker.
const TICK: Duration = Duration::from_millis(200);
/// Pause before restarting a worker that failed on its own (doubling up to a minute).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub fn supervise(a: &Agent, config: &Path) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone())?;
    let mut backoff = FIRST_BACKOFF;
    while !stop.load(Ordering::Relaxed) {
        let mut child = spawn(a, config)?;
        let started = Instant::now();
        let status = loop {
            if stop.load(Ordering::Relaxed) {
                stop_child(&mut child);
                return Ok(());
            }
            if let Some(status) = child.try_wait().context("waiting for the agent worker")? {
                break Some(status);
            }
            if a.state.pending_upgrade()?.is_some() && started.elapsed() > CONFIRM_WITHIN {
                stop_child(&mut child);
                break None;
            }
            std::thread::sleep(TICK);
        };
        match status {
            Some(s) if s.code() == Some(RESTART_CODE) => {
                tracing::info!("starting the new agent build");
                backoff = FIRST_BACKOFF;
            }
            Some(s) if a.state.pending_upgrade()?.is_some() => {
                a.revert_upgrade(&format!("it exited with {s} before reporting"))?;
            }
            None => {
                let why = format!("no report within {} s", CONFIRM_WITHIN.as_secs());
                a.revert_upgrade(&why)?;
            }
            Some(s) => {
                tracing::error!(status = %s, "the agent worker stopped; starting it again in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    Ok(())
}

/// The worker, from the build installed in the self-upgrade module (this executable until one
/// is installed).
fn spawn(a: &Agent, config: &Path) -> Result<Child> {
    let exe = match a.own_build().filter(|p| p.is_file()) {
        Some(p) => p,
        None => std::env::current_exe().context("cannot find this executable")?,
    };
    Command::new(&exe)
        .arg("agent")
        .arg("--config")
        .arg(config)
        .arg("--worker")
        .spawn()
        .with_context(|| format!("cannot start the agent worker {}", exe.display()))
}

fn stop_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Set `stop` on SIGTERM or Ctrl-C (a small runtime on its own thread).
fn watch_signals(stop: Arc<AtomicBool>) -> Result<()> {
    let rt = crate::runtime()?;
    std::thread::spawn(move || {
        rt.block_on(crate::shutdown_signal("agent"));
        stop.store(true, Ordering::Relaxed);
    });
    Ok(())
}
