//! The supervisor of a host that upgrades its own build: an agent with a `self_upgrade` module,
//! or a relay with `[self_upgrade]`. `updraft agent|relay --config FILE` runs the worker
//! (`… --worker`) from the build installed for it, and stays, running the code it started with,
//! to start a new build when the worker asks for it (exit status [`RESTART_CODE`] while
//! `upgrade.json` names another build) and to put the previous build back when the new one
//! exits before it has reported, or has not reported within [`CONFIRM_WITHIN`]. It never gives
//! up: an error is logged and the worker started again after a pause. SIGTERM or Ctrl-C stops
//! the worker and the supervisor. The build's installation is an agent's (a relay embeds one
//! for its own build; see `relay_cmd`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::upgrade::{CONFIRM_WITHIN, RESTART_CODE};
use agent::Agent;
use anyhow::{Context, Result};

/// The environment variable telling a worker which version of its own build it runs.
pub const BUILD_ENV: &str = "UPDRAFT_AGENT_BUILD";
/// How often the supervisor looks at its worker.
const TICK: Duration = Duration::from_millis(200);
/// Pause before starting a worker again after a failure (doubling up to a minute).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How a worker ended.
enum End {
    Exited(ExitStatus),
    /// The new build it runs did not report within [`CONFIRM_WITHIN`].
    NoReport,
    Stopped,
}

/// Supervise workers `updraft COMMAND --config CONFIG --worker` (`agent` or `relay`), whose
/// own build `a` installs.
pub fn supervise(a: &Agent, config: &Path, command: &'static str) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone(), command)?;
    let own = running_build();
    let mut backoff = FIRST_BACKOFF;
    while !stop.load(Ordering::Relaxed) {
        match run_worker(a, (command, config), &own, &stop) {
            Ok(Some(())) => backoff = FIRST_BACKOFF,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "{command} worker: starting it again in {backoff:?}");
                pause(backoff, &stop);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    Ok(())
}

/// Start one worker and handle its end: `Some` to start the next one at once, `None` when
/// stopped, an error to pause first.
fn run_worker(
    a: &Agent,
    worker: (&'static str, &Path),
    own: &Path,
    stop: &AtomicBool,
) -> Result<Option<()>> {
    // An install that cannot be finished or undone (a full disk, an install directory that is
    // not one) must not keep the host down: the worker starts anyway, from the installed
    // build if it is intact, else from this one, and reports the error.
    if let Err(e) = a.recover_interrupted() {
        tracing::error!(error = %e, "cannot finish or undo the interrupted install; starting the worker anyway");
    }
    let version = a.own_version();
    let mut child = spawn(a, worker, own, &version)?;
    let end = match wait(a, &mut child, &version, stop) {
        Ok(end) => end,
        Err(e) => {
            // Never leave a worker running unwatched.
            stop_child(&mut child);
            return Err(e);
        }
    };
    let pending = a.pending_upgrade()?;
    let new_build_failed = pending
        .as_ref()
        .is_some_and(|p| p.to == version && !version.is_empty());
    match end {
        End::Stopped => Ok(None),
        End::Exited(s)
            if s.code() == Some(RESTART_CODE) && pending.is_some() && !new_build_failed =>
        {
            tracing::info!("starting the new build");
            Ok(Some(()))
        }
        End::Exited(s) if new_build_failed => {
            a.revert_upgrade(&format!("it exited with {s} before reporting"), own)?;
            Ok(Some(()))
        }
        End::NoReport => {
            let why = format!("no report within {} s", CONFIRM_WITHIN.as_secs());
            a.revert_upgrade(&why, own)?;
            Ok(Some(()))
        }
        End::Exited(s) => anyhow::bail!("the worker stopped: {s}"),
    }
}

fn wait(a: &Agent, child: &mut Child, version: &str, stop: &AtomicBool) -> Result<End> {
    let started = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            stop_child(child);
            return Ok(End::Stopped);
        }
        if let Some(status) = child.try_wait().context("waiting for the worker")? {
            return Ok(End::Exited(status));
        }
        let on_trial = a.pending_upgrade()?.is_some_and(|p| p.to == version);
        if on_trial && started.elapsed() > CONFIRM_WITHIN {
            stop_child(child);
            return Ok(End::NoReport);
        }
        std::thread::sleep(TICK);
    }
}

/// The build this supervisor runs: its executable image (`/proc/self/exe` on Linux, which
/// stays readable when the file it was started from is replaced).
fn running_build() -> PathBuf {
    let proc = PathBuf::from("/proc/self/exe");
    if proc.exists() {
        return proc;
    }
    std::env::current_exe().unwrap_or(proc)
}

/// The worker, from the build installed in the self-upgrade module, else from this build.
fn spawn(a: &Agent, worker: (&str, &Path), own: &Path, version: &str) -> Result<Child> {
    let (command, config) = worker;
    let exe = a
        .own_build()
        .filter(|p| p.is_file())
        .unwrap_or_else(|| own.to_path_buf());
    Command::new(&exe)
        .arg(command)
        .arg("--config")
        .arg(config)
        .arg("--worker")
        .env(BUILD_ENV, version)
        .spawn()
        .with_context(|| format!("cannot start the {command} worker {}", exe.display()))
}

/// Sleep `d`, in short steps, ending early when `stop` is set.
fn pause(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(TICK);
    }
}

fn stop_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Set `stop` on SIGTERM or Ctrl-C (a small runtime on its own thread).
fn watch_signals(stop: Arc<AtomicBool>, command: &'static str) -> Result<()> {
    let rt = crate::runtime()?;
    std::thread::spawn(move || {
        rt.block_on(crate::shutdown_signal(command));
        stop.store(true, Ordering::Relaxed);
    });
    Ok(())
}
