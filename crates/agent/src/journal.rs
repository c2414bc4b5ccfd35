//! The crash journal (`journal.json`): every change to a module's or product's directory is
//! described there before it starts. After a crash, an install is completed (its files are
//! already verified in the versions store) and a patch is rolled back from its backup, so each
//! component and product is entirely old or entirely new.

use std::path::PathBuf;

use model::protocol::{HistoryEntry, Outcome};
use serde::{Deserialize, Serialize};

use crate::beneath::Beneath;
use crate::error::{Error, Result};
use crate::install::{fault, now};
use crate::state::{InstalledComponent, StateDir};

/// A change in progress, replayed or undone after a crash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Journal {
    /// Copy `files` of `version` from the versions store into `install_dir`, remove `remove`.
    Install {
        component: String,
        module: String,
        install_dir: PathBuf,
        version: String,
        files: Vec<String>,
        remove: Vec<String>,
        previous: Option<String>,
        previous_files: Vec<String>,
        /// The files are programs (the agent's own build): installed 0755, not 0644.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        executable: bool,
    },
    /// A patch being swapped in; on recovery the backup is restored.
    Patch {
        patch_id: String,
        product: String,
        install_dir: PathBuf,
        backup_dir: PathBuf,
        /// Files the patch replaces (backed up) and adds (removed on rollback), relative.
        replaced: Vec<String>,
        added: Vec<String>,
        from_build: String,
        to_build: String,
    },
}

/// Carry out an install journal: copy every file of the version into the module directory,
/// remove the previous version's files the new one lacks, record it, clear the journal.
pub fn apply_install(state: &StateDir, j: &Journal) -> Result<()> {
    let Journal::Install {
        component,
        module,
        install_dir,
        version,
        files,
        remove,
        previous,
        previous_files,
        executable,
    } = j
    else {
        return Err(Error::Other("not an install journal".into()));
    };
    let vdir = Beneath::open(&state.version_dir(component, version), false)?;
    let dir = Beneath::open(install_dir, true)?;
    // Module content is data read by the module, never run; the agent's own build is a program.
    let mode = if *executable { 0o755 } else { 0o644 };
    for (i, f) in files.iter().enumerate() {
        dir.copy_from(&vdir, f, Some(mode))?;
        if i == 0 {
            fault("install-mid-swap");
        }
    }
    for r in remove {
        dir.remove_file(r)?;
    }
    dir.sync();
    let mut installed = state.installed()?;
    installed.components.insert(
        component.clone(),
        InstalledComponent {
            module: module.clone(),
            version: version.clone(),
            files: files.clone(),
            previous: previous.clone(),
            previous_files: previous_files.clone(),
        },
    );
    state.save_installed(&installed)?;
    fault("install-before-clear");
    state.clear_journal()
}

/// Undo a patch journal from its backup: put back every replaced file (mode included) and remove
/// every added one, never through a symlink (see [`crate::beneath`]). A member that cannot be
/// reached that way (a symlink planted under the product since) is left as it is and described
/// in the answer, so that a hostile product directory cannot make recovery fail forever.
pub fn rollback_patch(state: &StateDir, j: &Journal) -> Result<Vec<String>> {
    let Journal::Patch {
        patch_id,
        product,
        install_dir,
        backup_dir,
        replaced,
        added,
        from_build,
        ..
    } = j
    else {
        return Err(Error::Other("not a patch journal".into()));
    };
    let dir = Beneath::open(install_dir, true)?;
    let backup = Beneath::open(backup_dir, true)?;
    // A member that cannot be restored (a symlink planted meanwhile, a permission or I/O error)
    // is left as it is and reported, with the backup kept in `backup_dir`: a hostile or broken
    // product directory must not make recovery fail on every cycle and block all updates.
    let mut not_restored = Vec::new();
    let mut skip = |rel: &str, r: Result<()>| {
        if let Err(e) = r {
            tracing::error!(member = rel, error = %e, "patch rollback: member left as it is");
            not_restored.push(format!("{rel}: {e} (backup in {})", backup_dir.display()));
        }
    };
    for rel in replaced {
        skip(rel, dir.copy_from(&backup, rel, None));
    }
    for rel in added {
        skip(rel, dir.remove_file(rel));
    }
    dir.sync();
    let mut ledger = state.ledger()?;
    ledger.builds.insert(product.clone(), from_build.clone());
    if let Some(a) = ledger.applied.get_mut(product) {
        a.remove(patch_id);
    }
    state.save_ledger(&ledger)?;
    state.clear_journal()?;
    Ok(not_restored)
}

/// "; not restored: …" for a rollback that left members as they were (empty when none).
pub fn not_restored_text(not_restored: &[String]) -> String {
    if not_restored.is_empty() {
        String::new()
    } else {
        format!("; not restored: {}", not_restored.join("; "))
    }
}

/// Finish or undo whatever a crash interrupted. Returns a description of what was done.
pub fn recover(state: &StateDir) -> Result<Option<String>> {
    let Some(j) = state.journal()? else {
        return Ok(None);
    };
    match &j {
        Journal::Install {
            component, version, ..
        } => {
            apply_install(state, &j)?;
            Ok(Some(format!(
                "completed the interrupted install of {component} {version}"
            )))
        }
        Journal::Patch {
            patch_id,
            product,
            from_build,
            to_build,
            ..
        } => {
            let not_restored = rollback_patch(state, &j)?;
            state.append_history(&HistoryEntry {
                time: now(),
                patch_id: patch_id.clone(),
                product: product.clone(),
                from_build: from_build.clone(),
                to_build: to_build.clone(),
                outcome: Outcome::RolledBack,
                message: format!(
                    "interrupted while applying; the backup was restored and the patch will be retried{}",
                    not_restored_text(&not_restored)
                ),
                version: None,
            })?;
            // The patch is tried afresh: whatever it meets next is recorded, even an outcome
            // recorded before the crash.
            let mut ledger = state.ledger()?;
            ledger.forget_patch(patch_id);
            state.save_ledger(&ledger)?;
            Ok(Some(format!(
                "rolled back the interrupted patch {patch_id}"
            )))
        }
    }
}
