//! Installing verified files into a module's directory and applying patches, crash-safely: every
//! change is described in `journal.json` before it starts; after a crash, an install is completed
//! (its files are already verified in the versions store) and a patch is rolled back from its
//! backup, so each component and product is entirely old or entirely new.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::state::{HistoryEntry, InstalledComponent, Journal, StateDir};

/// Test hook: `UPDRAFT_FAULT=<point>` aborts the process at that point (like `kill -9`).
pub fn fault(point: &str) {
    if std::env::var("UPDRAFT_FAULT").is_ok_and(|v| v == point) {
        tracing::error!(point, "UPDRAFT_FAULT: aborting");
        std::process::abort();
    }
}

pub(crate) fn now() -> String {
    tuf::metadata::format_expires(time::OffsetDateTime::now_utc())
}

/// Copy `src` to `dir/name`: staged next to the destination, fsynced, renamed over it.
pub fn place(src: &Path, dir: &Path, name: &str) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".updraft-stage-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    let mut from = File::open(src).map_err(|e| Error::io(src, e))?;
    std::io::copy(&mut from, tmp.as_file_mut()).map_err(|e| Error::io(dir.join(name), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(dir.join(name), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644));
    }
    tmp.persist(dir.join(name))
        .map_err(|e| Error::io(dir.join(name), e.error))?;
    Ok(())
}

/// Run a shell command; Ok(output) on exit 0, Err(output) otherwise.
pub fn run_command(cmd: &str) -> std::result::Result<String, String> {
    match Command::new("sh").arg("-c").arg(cmd).output() {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let text = text.trim().chars().take(2000).collect::<String>();
            if out.status.success() {
                Ok(text)
            } else {
                Err(format!("`{cmd}` exited with {}: {text}", out.status))
            }
        }
        Err(e) => Err(format!("`{cmd}` could not run: {e}")),
    }
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
    } = j
    else {
        return Err(Error::Other("not an install journal".into()));
    };
    let vdir = state.version_dir(component, version);
    for (i, f) in files.iter().enumerate() {
        place(&vdir.join(f), install_dir, f)?;
        if i == 0 {
            fault("install-mid-swap");
        }
    }
    for r in remove {
        tuf::fsutil::remove_if_exists(&install_dir.join(r))?;
    }
    tuf::fsutil::sync_dir(install_dir);
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

/// Undo a patch journal from its backup.
pub fn rollback_patch(state: &StateDir, j: &Journal) -> Result<()> {
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
    for rel in replaced {
        let (dir, name) = split_rel(install_dir, rel);
        place(&backup_dir.join(rel), &dir, &name)?;
    }
    for rel in added {
        tuf::fsutil::remove_if_exists(&install_dir.join(rel))?;
    }
    let mut products = state.products()?;
    products.builds.insert(product.clone(), from_build.clone());
    if let Some(a) = products.applied.get_mut(product) {
        a.remove(patch_id);
    }
    state.save_products(&products)?;
    state.clear_journal()
}

fn split_rel(base: &Path, rel: &str) -> (PathBuf, String) {
    let full = base.join(rel);
    let dir = full
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| base.to_path_buf());
    let name = full
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
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
            rollback_patch(state, &j)?;
            state.append_history(&HistoryEntry {
                time: now(),
                patch_id: patch_id.clone(),
                product: product.clone(),
                from_build: from_build.clone(),
                to_build: to_build.clone(),
                outcome: "rolled back".into(),
                message: "interrupted while applying; the backup was restored and the patch will be retried".into(),
            })?;
            let mut products = state.products()?;
            products.last_outcome.remove(patch_id);
            state.save_products(&products)?;
            Ok(Some(format!(
                "rolled back the interrupted patch {patch_id}"
            )))
        }
    }
}

/// Unpack a patch archive (tar, or tar.zst when `zstd`) into `dest`, refusing anything but
/// regular files and directories at relative paths inside it. Returns the files, relative.
pub fn unpack_patch(archive: &Path, zstd: bool, dest: &Path) -> Result<Vec<String>> {
    if dest.exists() {
        fs::remove_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    }
    fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let file = File::open(archive).map_err(|e| Error::io(archive, e))?;
    let reader: Box<dyn Read> = if zstd {
        Box::new(
            ruzstd::decoding::StreamingDecoder::new(file)
                .map_err(|e| Error::Other(format!("{}: not zstd: {e}", archive.display())))?,
        )
    } else {
        Box::new(file)
    };
    let mut tar = tar::Archive::new(reader);
    let mut files = Vec::new();
    for entry in tar.entries().map_err(|e| Error::io(archive, e))? {
        let mut entry = entry.map_err(|e| Error::io(archive, e))?;
        let path = entry
            .path()
            .map_err(|e| Error::io(archive, e))?
            .into_owned();
        let safe = path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !safe {
            return Err(Error::Other(format!(
                "patch member {} is not a relative path inside the product",
                path.display()
            )));
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular => {}
            other => {
                return Err(Error::Other(format!(
                    "patch member {} is a {other:?}, not a file",
                    path.display()
                )));
            }
        }
        let rel: PathBuf = path
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        let out = dest.join(&rel);
        if let Some(p) = out.parent() {
            fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
        }
        let mut f = File::create(&out).map_err(|e| Error::io(&out, e))?;
        std::io::copy(&mut entry, &mut f).map_err(|e| Error::io(&out, e))?;
        files.push(rel.to_string_lossy().into_owned());
    }
    if files.is_empty() {
        return Err(Error::Other(format!(
            "patch archive {} holds no files",
            archive.display()
        )));
    }
    Ok(files)
}
