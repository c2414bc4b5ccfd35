//! Carrying out a plan's patch steps: record refusals and non-applicable patches, and apply the
//! rest: preflight checks, download (verified) and unpack into a staging directory, back up what
//! the patch replaces, swap it in under the journal, restart the product; any failure restores
//! the backup. Every outcome goes to the hotfix history, once per distinct message.

use model::protocol::{HistoryEntry, Outcome};
use model::PatchId;

use crate::beneath::{Beneath, Entry};
use crate::config::ProductConfig;
use crate::error::{Error, Result};
use crate::install::{self, fault, now, run_command};
use crate::journal::{self, not_restored_text, Journal};
use crate::plan::{self, ContentTarget, PatchStep, ProductPlan};
use crate::sources::Downloads;
use crate::state::PatchPaths;
use crate::Agent;

/// What became of one step.
#[derive(Debug, PartialEq, Eq)]
enum StepResult {
    Applied(String),
    /// Waiting for preflight checks: evaluated again next cycle.
    Retry,
    /// Nothing more to do this cycle (outcome recorded).
    Done,
}

/// One patch being applied to one product: what every phase records with.
struct PatchRun<'a> {
    p: &'a ProductConfig,
    id: String,
    /// The patch target's version (its path's): reported with every outcome.
    version: String,
    /// The product's build before the patch, and the build the patch results in.
    build: String,
    to: String,
    paths: PatchPaths,
}

/// What the patch steps of a cycle did.
#[derive(Debug, Default)]
pub(crate) struct PatchesDone {
    /// (product, patch id) applied.
    pub applied: Vec<(String, String)>,
    /// A patch waits for its preflight checks.
    pub retry: bool,
}

impl Agent {
    /// Every product's steps, in order. Errors that leave the product as it was go to `errors`.
    pub(crate) fn apply_patches(
        &self,
        plans: &[ProductPlan<'_>],
        dl: &mut Downloads<'_>,
        errors: &mut Vec<String>,
    ) -> Result<PatchesDone> {
        let mut done = PatchesDone::default();
        for pp in plans {
            self.apply_product(pp, dl, errors, &mut done)?;
        }
        Ok(done)
    }

    /// One product's steps. A patch planned to apply that does not (preflight, failure) leaves
    /// the build where it was, so the steps after it are planned again from the real state.
    fn apply_product(
        &self,
        pp: &ProductPlan<'_>,
        dl: &mut Downloads<'_>,
        errors: &mut Vec<String>,
        done: &mut PatchesDone,
    ) -> Result<()> {
        let p = pp.product;
        let mut steps = pp.steps.clone();
        let mut i = 0;
        while let Some(step) = steps.get(i).cloned() {
            i += 1;
            let result = match self.apply_step(p, &step, dl) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(format!("patch for {}: {e}", p.name));
                    StepResult::Done
                }
            };
            match &result {
                StepResult::Applied(id) => done.applied.push((p.name.clone(), id.clone())),
                StepResult::Retry => done.retry = true,
                StepResult::Done => {}
            }
            if let (PatchStep::Apply { target, .. }, false) =
                (&step, matches!(result, StepResult::Applied(_)))
            {
                steps = self.replan_after(pp, target)?;
                i = 0;
            }
        }
        Ok(())
    }

    /// The steps for `pp`'s patches after `target`, from the product's build and applied
    /// patches as they are now.
    fn replan_after<'a>(
        &self,
        pp: &ProductPlan<'a>,
        target: &ContentTarget,
    ) -> Result<Vec<PatchStep<'a>>> {
        let after = pp
            .patches
            .iter()
            .position(|t| std::ptr::eq(*t, target))
            .map_or(pp.patches.len(), |i| i.saturating_add(1));
        let ledger = self.state.ledger()?;
        let build = self.current_build(pp.product, &ledger);
        let applied = ledger
            .applied
            .get(&pp.product.name)
            .cloned()
            .unwrap_or_default();
        Ok(plan::patch_steps(build, &applied, &pp.patches[after..]))
    }

    fn apply_step(
        &self,
        p: &ProductConfig,
        step: &PatchStep<'_>,
        dl: &mut Downloads<'_>,
    ) -> Result<StepResult> {
        match step {
            PatchStep::Refuse {
                target,
                id,
                build,
                to,
                why,
            } => {
                tracing::error!(target, product = %p.name, error = %why, "patch target refused");
                let msg = format!(
                    "refused {target}: {why}; it is not applied (the publisher must publish it again with valid fields)"
                );
                self.record(id, &p.name, (build, to, None), Outcome::Refused, msg)?;
                Ok(StepResult::Done)
            }
            PatchStep::UnknownBuild { id, to, why } => {
                let msg = format!("cannot determine the build: {why}");
                self.record(id.as_str(), &p.name, ("?", to, None), Outcome::Failed, msg)?;
                Ok(StepResult::Done)
            }
            PatchStep::NotApplicable {
                id,
                build,
                to,
                requires,
            } => {
                let msg = format!("not applicable: build {build}, requires {requires}");
                self.record(
                    id.as_str(),
                    &p.name,
                    (build, to, None),
                    Outcome::NotApplicable,
                    msg,
                )?;
                Ok(StepResult::Done)
            }
            PatchStep::Apply {
                id,
                build,
                to,
                target,
            } => self.apply_patch(p, id, build, to, target, dl),
        }
    }

    /// Preflight, stage, swap in, restart.
    fn apply_patch(
        &self,
        p: &ProductConfig,
        id: &PatchId,
        build: &str,
        to: &str,
        pt: &ContentTarget,
        dl: &mut Downloads<'_>,
    ) -> Result<StepResult> {
        let run = PatchRun {
            p,
            id: id.to_string(),
            version: pt.info.version.clone(),
            build: build.to_string(),
            to: to.to_string(),
            paths: self.state.patch_paths(id),
        };
        for check in &p.preflight {
            if let Err(out) = run_command(check) {
                let msg = format!("preflight failed: {out}");
                self.record_run(&run, Outcome::PreflightFailed, msg)?;
                return Ok(StepResult::Retry);
            }
        }
        let Some(files) = self.stage_patch(&run, pt, dl)? else {
            return Ok(StepResult::Done);
        };
        let result = self.swap_in_patch(&run, &files);
        remove_stage(&run.paths.stage);
        result
    }

    /// Download the archive (verified) and unpack it into the staging directory, within the
    /// configured limits. `None`: the archive was refused (recorded).
    fn stage_patch(
        &self,
        run: &PatchRun<'_>,
        pt: &ContentTarget,
        dl: &mut Downloads<'_>,
    ) -> Result<Option<Vec<String>>> {
        let name = pt.target.path().rsplit('/').next().unwrap_or("patch");
        let zstd = name.ends_with(".zst") || name.ends_with(".tzst");
        let (archive, stage) = (&run.paths.archive, &run.paths.stage);
        dl.get(&pt.target, archive)?;
        match install::unpack_patch(archive, zstd, stage, &self.config.patch_limits) {
            Ok(files) => Ok(Some(files)),
            Err(e) => {
                let msg = match &e {
                    Error::PatchArchive { .. } => e.to_string(),
                    _ => format!("bad patch archive: {e}"),
                };
                tracing::error!(patch = %run.id, product = %run.p.name, error = %e, "patch archive refused");
                self.record_run(run, Outcome::Failed, msg)?;
                Ok(None)
            }
        }
    }

    /// Back up what the staged files replace, journal the change, swap the files in, record the
    /// new build and restart the product; any failure restores the backup and is recorded.
    ///
    /// Every member is reached beneath the product's directory without following a symlink (see
    /// `beneath`): one planted there (`lib -> /etc`, `bin/scanner -> /etc/passwd`), or anything
    /// but a directory or regular file on a member's path, refuses the patch before anything
    /// changes.
    fn swap_in_patch(&self, run: &PatchRun<'_>, files: &[String]) -> Result<StepResult> {
        let product = Beneath::open(&run.p.install_dir, true)?;
        let staged = Beneath::open(&run.paths.stage, false)?;
        let journal = match self.back_up(run, &product, files)? {
            Ok(journal) => journal,
            Err(refused) => {
                tracing::error!(patch = %run.id, product = %run.p.name, error = %refused, "patch refused");
                let msg = format!("refused, nothing changed: {refused}");
                self.record_run(run, Outcome::Failed, msg)?;
                return Ok(StepResult::Done);
            }
        };
        self.state.set_journal(&journal)?;
        fault("patch-after-backup");
        for (i, rel) in files.iter().enumerate() {
            if let Err(e) = product.copy_from(&staged, rel, None) {
                // A member refused (a symlink planted since the check) or an I/O error: undo
                // what was swapped in from the backup.
                let not_restored = journal::rollback_patch(&self.state, &journal)?;
                tracing::error!(patch = %run.id, product = %run.p.name, error = %e, "patch failed while swapping; backup restored");
                let msg = format!(
                    "could not apply, backup restored: {e}{}",
                    not_restored_text(&not_restored)
                );
                self.record_run(run, Outcome::Failed, msg)?;
                return Ok(StepResult::Done);
            }
            if i == 0 {
                fault("patch-mid-swap");
            }
        }
        product.sync();
        self.finish_patch(run, &journal)
    }

    /// Copy what `files` replace in the product into the backup, modes included; the journal
    /// that undoes the patch. The inner error: a member is refused (nothing changed).
    fn back_up(
        &self,
        run: &PatchRun<'_>,
        product: &Beneath,
        files: &[String],
    ) -> Result<std::result::Result<Journal, Error>> {
        let (mut replaced, mut added) = (Vec::new(), Vec::new());
        for rel in files {
            match product.entry(rel) {
                Ok(Entry::File) => replaced.push(rel.clone()),
                Ok(Entry::Missing) => added.push(rel.clone()),
                Err(e @ Error::UnsafePath { .. }) => return Ok(Err(e)),
                Err(e) => return Err(e),
            }
        }
        let backup = &run.paths.backup;
        if backup.exists() {
            std::fs::remove_dir_all(backup).map_err(|e| Error::io(backup, e))?;
        }
        let backed_up = Beneath::open(backup, true)?;
        for rel in &replaced {
            match backed_up.copy_from(product, rel, None) {
                Ok(()) => {}
                // Changed since it was checked: still nothing changed in the product.
                Err(e @ Error::UnsafePath { .. }) => return Ok(Err(e)),
                Err(e) => return Err(e),
            }
        }
        Ok(Ok(Journal::Patch {
            patch_id: run.id.clone(),
            product: run.p.name.clone(),
            install_dir: run.p.install_dir.clone(),
            backup_dir: backup.to_path_buf(),
            replaced,
            added,
            from_build: run.build.clone(),
            to_build: run.to.clone(),
        }))
    }

    /// Record the new build, restart the product (restoring the backup if that fails) and
    /// record the outcome; the journal is cleared once the patch is applied.
    fn finish_patch(&self, run: &PatchRun<'_>, journal: &Journal) -> Result<StepResult> {
        let mut ledger = self.state.ledger()?;
        ledger.builds.insert(run.p.name.clone(), run.to.clone());
        let applied = ledger.applied.entry(run.p.name.clone()).or_default();
        applied.insert(run.id.clone());
        self.state.save_ledger(&ledger)?;
        fault("patch-before-restart");
        if let Some(cmd) = &run.p.restart {
            if let Err(out) = run_command(cmd) {
                let not_restored = journal::rollback_patch(&self.state, journal)?;
                let again = run_command(cmd).err();
                let msg = format!(
                    "restart failed, backup restored: {out}{}{}",
                    again
                        .map(|e| format!(" (restart after restoring also failed: {e})"))
                        .unwrap_or_default(),
                    not_restored_text(&not_restored)
                );
                self.record_run(run, Outcome::Failed, msg)?;
                return Ok(StepResult::Done);
            }
        }
        let msg = format!("{} {} -> {}", run.p.name, run.build, run.to);
        self.record_run(run, Outcome::Applied, msg)?;
        self.state.clear_journal()?;
        tracing::info!(patch = %run.id, product = %run.p.name, from = %run.build, to = %run.to, "patch applied");
        Ok(StepResult::Applied(run.id.clone()))
    }

    fn record_run(&self, run: &PatchRun<'_>, outcome: Outcome, message: String) -> Result<()> {
        let at = (
            run.build.as_str(),
            run.to.as_str(),
            Some(run.version.as_str()),
        );
        self.record(&run.id, &run.p.name, at, outcome, message)
    }

    /// Append an outcome to the hotfix history unless it is what was last recorded for `id`.
    /// `at`: the builds from and to, and the patch target's version if known.
    fn record(
        &self,
        id: &str,
        product: &str,
        (from, to, version): (&str, &str, Option<&str>),
        outcome: Outcome,
        message: String,
    ) -> Result<()> {
        let mut ledger = self.state.ledger()?;
        if ledger.already_recorded(id, &message) {
            return Ok(());
        }
        self.state.append_history(&HistoryEntry {
            time: now(),
            patch_id: id.to_string(),
            product: product.to_string(),
            from_build: from.to_string(),
            to_build: to.to_string(),
            outcome: outcome.clone(),
            message: message.clone(),
            version: version.map(str::to_string),
        })?;
        ledger.set_recorded(id, outcome, message);
        self.state.save_ledger(&ledger)
    }
}

/// Remove a patch's staging directory once it is no longer needed (a leftover is only noted).
fn remove_stage(stage: &std::path::Path) {
    if let Err(e) = std::fs::remove_dir_all(stage) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %stage.display(), error = %e, "could not remove a patch staging directory");
        }
    }
}
