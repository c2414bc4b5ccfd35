//! The agent upgrading its own build. A module with `self_upgrade = true` holds the `updraft`
//! executable the agent runs from; a new signed version of its component arrives like any
//! content (verified, staged, renamed, the previous version kept in the versions store, under
//! rollouts, holds and the maintenance window). Before it stays, the new build must pass
//! `<new> agent --config <file> --check` (it starts and reads this host's configuration); a
//! build that does not is put back at once and never taken again.
//!
//! Then the agent's worker process exits with [`RESTART_CODE`] and its supervisor (the
//! `updraft agent` process, see the binary) starts the new build. `upgrade.json` records the
//! change until the new build has completed a cycle and reported to the manager (or, without
//! a manager, completed a cycle): [`Agent::confirm_upgrade`]. The supervisor, still running
//! the previous build's code, puts the previous build back ([`Agent::revert_upgrade`]) when the
//! new one exits before confirming or has not confirmed within [`CONFIRM_WITHIN`].

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::ModuleConfig;
use crate::error::{Error, Result};
use crate::journal::{self, Journal};
use crate::Agent;

/// The worker's exit status asking its supervisor to start the (new) build on disk.
pub const RESTART_CODE: i32 = 75;
/// How long a new build has to complete a cycle and report.
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(300);
/// How long the check of a new build may run.
const CHECK_WITHIN: Duration = Duration::from_secs(30);

/// A self-upgrade not confirmed yet (`state_dir/upgrade.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub component: String,
    pub from: String,
    pub to: String,
}

impl Agent {
    /// The module holding the agent's own build, if one is configured.
    pub fn self_module(&self) -> Option<&ModuleConfig> {
        self.config.modules.iter().find(|m| m.self_upgrade)
    }

    /// The executable of the agent's own build as installed, if known.
    pub fn own_build(&self) -> Option<PathBuf> {
        let m = self.self_module()?;
        let c = m.components.first()?;
        let installed = self.state.installed().ok()?;
        let file = installed.components.get(c)?.files.first()?.clone();
        Some(m.install_dir.join(file))
    }

    /// Run the just-installed build of `m` with `agent --config <file> --check`, bounded in
    /// time; its output on failure.
    pub(crate) fn probe_new_build(&self, m: &ModuleConfig) -> std::result::Result<(), String> {
        let Some(c) = m.components.first() else {
            return Err("no component".into());
        };
        let installed = self.state.installed().map_err(|e| e.to_string())?;
        let Some(file) = installed.components.get(c).and_then(|i| i.files.first()) else {
            return Err(format!("{c} has no file"));
        };
        let exe = m.install_dir.join(file);
        let mut cmd = Command::new(&exe);
        cmd.arg("agent").arg("--check");
        if let Some(cfg) = &self.config.source_file {
            cmd.arg("--config").arg(cfg);
        }
        check_within(cmd, CHECK_WITHIN).map_err(|e| format!("{}: {e}", exe.display()))
    }

    /// After a cycle that installed a new version of the agent's own build: record it as
    /// pending (the caller restarts into it). `None` when the cycle installed none.
    pub fn note_upgrade(&self, installed: &[(String, String)]) -> Result<Option<Pending>> {
        let Some(m) = self.self_module() else {
            return Ok(None);
        };
        let Some((c, to)) = installed.iter().find(|(c, _)| m.components.contains(c)) else {
            return Ok(None);
        };
        let now = self.state.installed()?;
        let from = now
            .components
            .get(c)
            .and_then(|i| i.previous.clone())
            .unwrap_or_default();
        let p = Pending {
            component: c.clone(),
            from,
            to: to.clone(),
        };
        self.state.save_pending_upgrade(Some(&p))?;
        tracing::info!(from = %p.from, to = %p.to, "new agent build installed; restarting into it");
        Ok(Some(p))
    }

    /// A cycle of the new build completed and reported: the upgrade stays.
    pub fn confirm_upgrade(&self) -> Result<()> {
        if let Some(p) = self.state.pending_upgrade()? {
            self.state.save_pending_upgrade(None)?;
            tracing::info!(to = %p.to, "agent build confirmed");
        }
        Ok(())
    }

    /// Put the previous build back (the new one did not come back and report, `why`): the
    /// previous version's files from the versions store, journaled like any install; the new
    /// version is recorded as failed, so it is never taken again and its rollout sees it.
    pub fn revert_upgrade(&self, why: &str) -> Result<Option<Pending>> {
        let Some(p) = self.state.pending_upgrade()? else {
            return Ok(None);
        };
        let m = self.self_module().ok_or_else(|| {
            Error::Other("an upgrade is pending but no self_upgrade module".into())
        })?;
        let installed = self.state.installed()?;
        let now = installed
            .components
            .get(&p.component)
            .cloned()
            .unwrap_or_default();
        let journal = Journal::Install {
            component: p.component.clone(),
            module: m.name.clone(),
            install_dir: m.install_dir.clone(),
            version: p.from.clone(),
            files: now.previous_files.clone(),
            remove: now
                .files
                .iter()
                .filter(|f| !now.previous_files.contains(f))
                .cloned()
                .collect(),
            previous: None,
            previous_files: Vec::new(),
            executable: true,
        };
        self.state.set_journal(&journal)?;
        journal::apply_install(&self.state, &journal)?;
        let mut ledger = self.state.ledger()?;
        let message = format!("the new build did not come back and report: {why}");
        ledger.set_reload_failed(&p.component, &p.to, message.clone());
        self.state.save_ledger(&ledger)?;
        self.state.save_pending_upgrade(None)?;
        tracing::error!(from = %p.to, to = %p.from, "{message}; previous build restored");
        Ok(Some(p))
    }
}

/// Run `cmd` (output captured) and wait at most `within` for it to succeed.
fn check_within(mut cmd: Command, within: Duration) -> std::result::Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.by_ref().take(2000).read_to_string(&mut err);
                }
                return Err(format!("check exited with {status}: {}", err.trim()));
            }
            Ok(None) if start.elapsed() < within => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "check did not finish within {} s",
                    within.as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot wait for the check: {e}")),
        }
    }
}

/// For a worker: end (SIGTERM) when the supervisor that started it ends, whatever ends it, so
/// that no worker outlives its supervisor. Linux only; elsewhere a no-op.
pub fn end_with_supervisor() {
    #[cfg(target_os = "linux")]
    {
        let parent = rustix::process::getppid();
        if let Err(e) =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
        {
            tracing::warn!(error = %e, "cannot tie the worker to its supervisor");
        }
        // The supervisor may have ended before the tie was made.
        if rustix::process::getppid() != parent {
            std::process::exit(0);
        }
    }
}
