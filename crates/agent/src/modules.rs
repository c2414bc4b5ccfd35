//! Carrying out a plan's module installs: download the chosen version's files (verified) into
//! the versions store, swap them into the module's directory under the journal, reload the
//! module once, and put the previous versions back if the reload fails. Also the modules'
//! status as reported.

use std::collections::BTreeMap;

use model::protocol::{ModuleReport, ModuleState};

use crate::beneath::Beneath;
use crate::config::ModuleConfig;
use crate::error::{Error, Result};
use crate::install::{fault, run_command};
use crate::journal::{self, Journal};
use crate::plan::{Install, ModulePlan};
use crate::sources::Downloads;
use crate::state::{Installed, InstalledComponent};
use crate::Agent;

/// One component changed in a module this cycle: what was installed before, and the version now.
struct Change {
    component: String,
    before: Option<InstalledComponent>,
    version: String,
}

impl Agent {
    /// Install what the plan says into each module and reload it once. Returns the
    /// (component, version) pairs that stay installed; install failures go to `errors`.
    pub(crate) fn apply_modules(
        &self,
        plans: &[ModulePlan<'_>],
        dl: &mut Downloads<'_>,
        errors: &mut Vec<String>,
    ) -> Result<Vec<(String, String)>> {
        let mut done = Vec::new();
        for mp in plans {
            let changes = self.install_all(mp, dl, errors)?;
            if !changes.is_empty() {
                done.extend(self.reload(mp.module, &changes)?);
            }
        }
        Ok(done)
    }

    /// Every install of one module's plan; what changed. Trying a component again clears the
    /// module's reload failure for it.
    fn install_all(
        &self,
        mp: &ModulePlan<'_>,
        dl: &mut Downloads<'_>,
        errors: &mut Vec<String>,
    ) -> Result<Vec<Change>> {
        let m = mp.module;
        let mut changes = Vec::new();
        for i in &mp.installs {
            let before = self
                .state
                .installed()?
                .components
                .get(&i.component)
                .cloned();
            match self.install(dl, m, i) {
                Ok(()) => changes.push(Change {
                    component: i.component.clone(),
                    before,
                    version: i.version.clone(),
                }),
                Err(e) => {
                    tracing::error!(component = %i.component, version = %i.version, error = %e, "install failed");
                    errors.push(format!("{} {}: {e}", i.component, i.version));
                }
            }
            let mut ledger = self.state.ledger()?;
            if ledger.module_fault(&m.name, &i.component).is_some() {
                ledger.clear_module_fault(&m.name, &i.component);
                self.state.save_ledger(&ledger)?;
            }
        }
        Ok(changes)
    }

    /// Run the module's reload command after its changes. If it fails, the previous versions
    /// are put back, the new ones are not installed again, and the module is offline with why.
    /// Returns what stays installed.
    fn reload(&self, m: &ModuleConfig, changes: &[Change]) -> Result<Vec<(String, String)>> {
        let done = changes
            .iter()
            .map(|c| (c.component.clone(), c.version.clone()))
            .collect();
        let probe = |m: &ModuleConfig| match &m.reload {
            Some(cmd) => run_command(cmd).map(drop),
            None if m.self_upgrade => self.probe_new_build(m),
            None => Ok(()),
        };
        let Err(out) = probe(m) else {
            return Ok(done);
        };
        tracing::error!(module = %m.name, "reload failed; restoring the previous version");
        self.restore(m, changes)?;
        let again = probe(m)
            .err()
            .map(|e| format!(" (reload after restoring also failed: {e})"))
            .unwrap_or_default();
        let mut ledger = self.state.ledger()?;
        for c in changes {
            ledger.set_reload_failed(&c.component, &c.version, out.clone());
            let why = format!("reload failed: {out}{again}");
            ledger.set_module_fault(&m.name, &c.component, why);
        }
        self.state.save_ledger(&ledger)?;
        Ok(Vec::new())
    }

    /// Download the files of one install into the versions store (verified), then swap them
    /// in under the journal.
    fn install(&self, dl: &mut Downloads<'_>, m: &ModuleConfig, i: &Install<'_>) -> Result<()> {
        let (component, version) = (i.component.as_str(), i.version.as_str());
        let installed = self.state.installed()?;
        let names = self.download_files(dl, m, i, &installed)?;
        fault("install-after-stage");
        let prev = installed.components.get(component);
        let remove = prev
            .map(|p| {
                p.files
                    .iter()
                    .filter(|f| !names.contains(f))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let journal = Journal::Install {
            component: component.to_string(),
            module: m.name.clone(),
            install_dir: m.install_dir.clone(),
            version: version.to_string(),
            files: names,
            remove,
            previous: prev.map(|p| p.version.clone()),
            previous_files: prev.map(|p| p.files.clone()).unwrap_or_default(),
            executable: m.self_upgrade,
        };
        if m.self_upgrade {
            // Recorded before anything changes: whatever happens next (a crash, a failed
            // cycle), the supervisor knows a new build is on disk until it has reported.
            self.state
                .save_pending_upgrade(Some(&crate::upgrade::Pending {
                    component: component.to_string(),
                    from: prev.map(|p| p.version.clone()).unwrap_or_default(),
                    to: version.to_string(),
                }))?;
        }
        self.state.set_journal(&journal)?;
        journal::apply_install(&self.state, &journal)?;
        tracing::info!(component, version, module = %m.name, "installed");
        self.prune_versions(component, version, prev.map(|p| p.version.as_str()));
        Ok(())
    }

    /// Download each file of `i` into its version directory; their names.
    fn download_files(
        &self,
        dl: &mut Downloads<'_>,
        m: &ModuleConfig,
        i: &Install<'_>,
        installed: &Installed,
    ) -> Result<Vec<String>> {
        let vdir = self.state.version_dir(&i.component, &i.version);
        let mut names = Vec::new();
        for t in &i.files {
            let name = t.path().rsplit('/').next().unwrap_or(t.path()).to_string();
            if name.is_empty() || name == "." || name == ".." || name.starts_with(".updraft-stage-")
            {
                return Err(Error::Other(format!(
                    "target {} has no usable file name",
                    t.path()
                )));
            }
            // Components of one module share its directory: a file another component owns is
            // never overwritten (nor later removed) by this one.
            if let Some((owner, _)) = installed.components.iter().find(|(c, ic)| {
                **c != i.component && ic.module == m.name && ic.files.contains(&name)
            }) {
                return Err(Error::Other(format!(
                    "target {} refused: its file name {name} belongs to component {owner} of module {}; {} {} not installed",
                    t.path(),
                    m.name,
                    i.component,
                    i.version
                )));
            }
            dl.get(t, &vdir.join(&name))?;
            names.push(name);
        }
        Ok(names)
    }

    /// The file of the versions store holding target `path` (`content/<component>/<version>/
    /// <file>`), if this host holds it: a base deltas can start from. Its bytes are never
    /// trusted: what a delta rebuilds from it is checked against the signed target.
    pub(crate) fn held(&self, path: &str) -> Option<std::path::PathBuf> {
        let ["content", component, version, file] = path.split('/').collect::<Vec<_>>()[..] else {
            return None;
        };
        model::check_component(component).ok()?;
        version.parse::<model::Version>().ok()?;
        if file.is_empty() || file == "." || file == ".." || file.starts_with(".updraft-stage-") {
            return None;
        }
        let p = self.state.version_dir(component, version).join(file);
        std::fs::symlink_metadata(&p)
            .is_ok_and(|m| m.file_type().is_file())
            .then_some(p)
    }

    /// Keep only the current and previous versions of `component` in the store.
    fn prune_versions(&self, component: &str, version: &str, previous: Option<&str>) {
        let keep = [Some(version), previous];
        if let Ok(entries) = std::fs::read_dir(self.state.dir.join("versions").join(component)) {
            for e in entries.flatten() {
                let name = e.file_name();
                if !keep.iter().flatten().any(|k| name.to_string_lossy() == *k) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    /// Put back the versions installed before this cycle (after a failed reload).
    fn restore(&self, m: &ModuleConfig, changes: &[Change]) -> Result<()> {
        for c in changes {
            let current = self
                .state
                .installed()?
                .components
                .get(&c.component)
                .cloned();
            match &c.before {
                Some(b) => {
                    let journal = Journal::Install {
                        component: c.component.clone(),
                        module: m.name.clone(),
                        install_dir: m.install_dir.clone(),
                        version: b.version.clone(),
                        files: b.files.clone(),
                        remove: current
                            .map(|now| {
                                now.files
                                    .into_iter()
                                    .filter(|f| !b.files.contains(f))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        previous: b.previous.clone(),
                        previous_files: b.previous_files.clone(),
                        executable: m.self_upgrade,
                    };
                    self.state.set_journal(&journal)?;
                    journal::apply_install(&self.state, &journal)?;
                }
                None => {
                    if let Some(now) = current {
                        let dir = Beneath::open(&m.install_dir, true)?;
                        for f in &now.files {
                            dir.remove_file(f)?;
                        }
                    }
                    let mut installed = self.state.installed()?;
                    installed.components.remove(&c.component);
                    self.state.save_installed(&installed)?;
                }
            }
        }
        Ok(())
    }

    /// Status of every module from what is installed; `source_problem` marks them offline.
    pub(crate) fn module_status(&self, source_problem: Option<&str>) -> Result<Vec<ModuleReport>> {
        let installed = self.state.installed()?;
        let ledger = self.state.ledger()?;
        let mut out = Vec::new();
        for m in &self.config.modules {
            let mut components = BTreeMap::new();
            let mut reason = source_problem.map(str::to_string);
            for c in &m.components {
                let v = installed.components.get(c).map(|i| i.version.clone());
                if v.is_none() && reason.is_none() {
                    reason = Some(format!("component {c} never installed"));
                }
                if let Some(why) = ledger.module_fault(&m.name, c) {
                    reason = Some(why.clone());
                }
                components.insert(c.clone(), v);
            }
            out.push(ModuleReport {
                name: m.name.clone(),
                status: if reason.is_some() {
                    ModuleState::Offline
                } else {
                    ModuleState::Online
                },
                reason,
                components,
            });
        }
        Ok(out)
    }
}
