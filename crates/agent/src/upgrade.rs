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

use std::path::{Path, PathBuf};
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
        let files = installed
            .components
            .get(c)
            .map(|i| i.files.as_slice())
            .unwrap_or_default();
        let [file] = files else {
            return Err(format!(
                "a build of {c} is one executable file; this one has {}",
                files.len()
            ));
        };
        let exe = m.install_dir.join(file);
        let mut cmd = Command::new(&exe);
        cmd.arg(self.config.check_command.as_deref().unwrap_or("agent"))
            .arg("--check");
        if let Some(cfg) = &self.config.source_file {
            cmd.arg("--config").arg(cfg);
        }
        check_within(cmd, CHECK_WITHIN).map_err(|e| format!("{}: {e}", exe.display()))
    }

    /// The worker's decision after a cycle, `running` being the version of the build it runs
    /// (as its supervisor started it): restart when another build has been installed; confirm
    /// the running one once a cycle reached an update source and reported (or there is no
    /// manager to report to).
    pub fn after_cycle(&self, running: &str, report: &crate::CycleReport) -> Result<AfterCycle> {
        let Some(p) = self.pending_upgrade()? else {
            if let Some(stale) = self.state.pending_upgrade()? {
                // Its check or its install failed and the previous build is in place: there
                // is nothing to restart into (the version is recorded as failed).
                tracing::warn!(build = %stale.to, "the new build was not installed: no restart");
                self.state.save_pending_upgrade(None)?;
            }
            return Ok(AfterCycle::Carry);
        };
        if p.to != running {
            tracing::info!(from = %running, to = %p.to, "new agent build installed; restarting into it");
            return Ok(AfterCycle::Restart);
        }
        let reported = self.config.link.manager.is_none() || report.manager_error.is_none();
        if report.source.is_some() && reported {
            self.state.save_pending_upgrade(None)?;
            tracing::info!(build = %p.to, "agent build confirmed");
        }
        Ok(AfterCycle::Carry)
    }

    /// The self-upgrade on trial: `upgrade.json` while the build it names is the one installed
    /// (or its install is still journaled). A record whose build is not installed (its check
    /// failed and the previous build is back, or its install failed) is no upgrade: nothing to
    /// restart into or to watch; the worker removes it after its cycle.
    pub fn pending_upgrade(&self) -> Result<Option<Pending>> {
        let Some(p) = self.state.pending_upgrade()? else {
            return Ok(None);
        };
        if self.state.journal()?.is_some() {
            return Ok(Some(p));
        }
        let installed = self.state.installed()?;
        let on_disk = installed
            .components
            .get(&p.component)
            .is_some_and(|i| i.version == p.to);
        Ok(on_disk.then_some(p))
    }

    /// Finish or undo an install or patch a crash interrupted (what a cycle does first), for
    /// the supervisor before it starts a worker or puts a build back.
    pub fn recover_interrupted(&self) -> Result<Option<String>> {
        journal::recover(&self.state)
    }

    /// The version of the agent's own build installed now ("" when none is recorded).
    pub fn own_version(&self) -> String {
        let Some(c) = self.self_module().and_then(|m| m.components.first()) else {
            return String::new();
        };
        self.state
            .installed()
            .ok()
            .and_then(|i| i.components.get(c).map(|x| x.version.clone()))
            .unwrap_or_default()
    }

    /// Put the previous build back: the new one (`pending.to`) did not come back and report
    /// (`why`). Only while that build is the one installed (a second call does nothing). The
    /// previous version comes from the versions store; without one (the first self-upgrade
    /// replaced a build that was never installed through Updraft), the supervisor's own
    /// executable (`running_build`) is copied back. The new version is recorded as failed, so
    /// it is never taken again and its rollout sees it.
    pub fn revert_upgrade(&self, why: &str, running_build: &Path) -> Result<Option<Pending>> {
        self.recover_interrupted()?;
        let Some(p) = self.state.pending_upgrade()? else {
            return Ok(None);
        };
        let m = self.self_module().ok_or_else(|| {
            Error::Other("an upgrade is pending but no self_upgrade module".into())
        })?;
        let installed = self.state.installed()?;
        let now = installed.components.get(&p.component).cloned();
        match now {
            Some(now)
                if now.version == p.to
                    && now.previous.as_deref() == Some(p.from.as_str())
                    && !now.previous_files.is_empty() =>
            {
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
            }
            Some(now) if now.version == p.to => {
                self.restore_running_build(m, &p, &now.files, running_build)?
            }
            // Not the build that failed (already put back, or never installed): nothing to undo.
            _ => {}
        }
        let mut ledger = self.state.ledger()?;
        let message = format!("the new build did not come back and report: {why}");
        ledger.set_reload_failed(&p.component, &p.to, message.clone());
        self.state.save_ledger(&ledger)?;
        self.state.save_pending_upgrade(None)?;
        tracing::error!(failed = %p.to, back_to = %p.from, "{message}; previous build restored");
        Ok(Some(p))
    }

    /// Copy `running_build` over the module's file (staged, 0755, renamed) and forget the
    /// failed version's install record.
    fn restore_running_build(
        &self,
        m: &ModuleConfig,
        p: &Pending,
        files: &[String],
        running_build: &Path,
    ) -> Result<()> {
        let Some(file) = files.first() else {
            return Ok(());
        };
        let target = m.install_dir.join(file);
        let stage = m.install_dir.join(format!(".updraft-stage-revert-{file}"));
        let io = |e: std::io::Error| Error::io(&target, e);
        std::fs::copy(running_build, &stage).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&stage, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        }
        std::fs::File::open(&stage)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&stage, &target).map_err(io)?;
        tuf::fsutil::sync_dir(&m.install_dir);
        let mut installed = self.state.installed()?;
        installed.components.remove(&p.component);
        self.state.save_installed(&installed)
    }
}

/// What the worker does after a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCycle {
    /// Go on with the next cycle.
    Carry,
    /// Exit with [`RESTART_CODE`]: the supervisor starts the new build.
    Restart,
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
