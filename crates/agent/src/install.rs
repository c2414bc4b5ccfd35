//! Installing verified files into a module's directory and applying patches, crash-safely: every
//! change is described in `journal.json` before it starts; after a crash, an install is completed
//! (its files are already verified in the versions store) and a patch is rolled back from its
//! backup, so each component and product is entirely old or entirely new.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::beneath::Beneath;
use std::process::Command;

use crate::config::PatchLimits;
use crate::error::{Error, Result};
use crate::state::{HistoryEntry, InstalledComponent, Journal, StateDir};

/// Test hook: `UPDRAFT_FAULT=<point>` aborts the process at that point (like `kill -9`).
pub fn fault(point: &str) {
    node::fault::fault(point)
}

pub(crate) fn now() -> String {
    node::clock::now_string()
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
    let vdir = Beneath::open(&state.version_dir(component, version), false)?;
    let dir = Beneath::open(install_dir, true)?;
    for (i, f) in files.iter().enumerate() {
        // Module content: data read by the module, never run.
        dir.copy_from(&vdir, f, Some(0o644))?;
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
    let mut products = state.products()?;
    products.builds.insert(product.clone(), from_build.clone());
    if let Some(a) = products.applied.get_mut(product) {
        a.remove(patch_id);
    }
    state.save_products(&products)?;
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
                outcome: "rolled back".into(),
                message: format!(
                    "interrupted while applying; the backup was restored and the patch will be retried{}",
                    not_restored_text(&not_restored)
                ),
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

/// The permission bits a patched file gets: those the archive gives the member, masked with
/// [`PATCH_MODE_MASK`]. Executable bits are kept; setuid, setgid, sticky and group or world write
/// are never set, whatever the archive says.
pub fn patch_file_mode(archive_mode: u32) -> u32 {
    archive_mode & PATCH_MODE_MASK
}

/// See [`patch_file_mode`].
pub const PATCH_MODE_MASK: u32 = 0o755;

/// Room for tar headers, padding and long-name or PAX records allowed per member, beyond the
/// file data, when bounding the decompressed stream.
const HEADER_ALLOWANCE_PER_MEMBER: u64 = 8 << 10;

/// A reader that fails once more than `left` bytes would be read (and says so in `exceeded`).
struct Bounded<R> {
    inner: R,
    left: u64,
    exceeded: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // At the bound: one more byte means the stream is too long.
            let mut one = [0u8; 1];
            if self.inner.read(&mut one)? == 0 {
                return Ok(0);
            }
            self.exceeded.set(true);
            return Err(std::io::Error::other(
                "decompressed patch archive too large",
            ));
        }
        let want = usize::try_from(self.left).map_or(buf.len(), |l| l.min(buf.len()));
        let n = self.inner.read(&mut buf[..want])?;
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}

/// Unpack a patch archive (tar, or tar.zst when `zstd`) into `dest`, refusing anything but
/// regular files and directories at relative paths inside it, and stopping (before writing
/// past them) at the `limits`: the files' total size, checked against each member's size
/// before it is written and counted while it is, and the number of members; the decompressed
/// stream itself is cut at the size limit plus 8 KiB of headers per allowed member. Each file
/// gets [`patch_file_mode`] of its member's mode. Returns the files, relative. On any error
/// `dest` is removed.
pub fn unpack_patch(
    archive: &Path,
    zstd: bool,
    dest: &Path,
    limits: &PatchLimits,
) -> Result<Vec<String>> {
    if dest.exists() {
        fs::remove_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    }
    let result = unpack_into(archive, zstd, dest, limits);
    if result.is_err() {
        if let Err(e) = fs::remove_dir_all(dest) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dest.display(), error = %e, "could not remove a patch staging directory");
            }
        }
    }
    result
}

/// The relative file a tar member names, or `None` for a directory; anything but a plain
/// relative path to a regular file is refused (the reason is returned).
fn member_file(path: &Path, kind: tar::EntryType) -> std::result::Result<Option<PathBuf>, String> {
    let safe = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !safe {
        return Err(format!(
            "patch member {} is not a relative path inside the product",
            path.display()
        ));
    }
    match kind {
        tar::EntryType::Directory => return Ok(None),
        tar::EntryType::Regular => {}
        other => {
            return Err(format!(
                "patch member {} is a {other:?}, not a file",
                path.display()
            ))
        }
    }
    let rel: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        return Err(format!("patch member {} names no file", path.display()));
    }
    Ok(Some(rel))
}

/// Create a staging file 0600 (its final mode is set once written); `Err(None)`: it exists
/// already (a member named twice).
fn create_staged(out: &Path) -> std::result::Result<File, Option<Error>> {
    if let Some(p) = out.parent() {
        fs::create_dir_all(p).map_err(|e| Some(Error::io(p, e)))?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            None
        } else {
            Some(Error::io(out, e))
        }
    })
}

fn unpack_into(
    archive: &Path,
    zstd: bool,
    dest: &Path,
    limits: &PatchLimits,
) -> Result<Vec<String>> {
    let refuse = |reason: String| Error::PatchArchive {
        archive: archive.to_path_buf(),
        reason,
    };
    fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let file = File::open(archive).map_err(|e| Error::io(archive, e))?;
    let reader: Box<dyn Read> = if zstd {
        Box::new(
            ruzstd::decoding::StreamingDecoder::new(file)
                .map_err(|e| refuse(format!("not zstd: {e}")))?,
        )
    } else {
        Box::new(file)
    };
    let max_bytes = limits.max_unpacked_bytes;
    let max_members = limits.max_members;
    let exceeded = std::rc::Rc::new(std::cell::Cell::new(false));
    let stream_bound = max_bytes.saturating_add(
        max_members
            .saturating_add(2)
            .saturating_mul(HEADER_ALLOWANCE_PER_MEMBER),
    );
    let bounded = Bounded {
        inner: reader,
        left: stream_bound,
        exceeded: exceeded.clone(),
    };
    // An I/O error while reading the archive: the stream bound, or a broken archive.
    let read_error = |e: std::io::Error| {
        if exceeded.get() {
            refuse(format!(
                "the decompressed archive exceeds {stream_bound} bytes (patch_limits.max_unpacked_bytes = {max_bytes} plus {HEADER_ALLOWANCE_PER_MEMBER} bytes of headers per member allowed by patch_limits.max_members = {max_members} in the agent configuration); ask the publisher for a smaller patch or raise the limit"
            ))
        } else {
            refuse(format!("unreadable: {e}"))
        }
    };
    let mut tar = tar::Archive::new(bounded);
    let mut files = Vec::new();
    let mut members: u64 = 0;
    let mut total: u64 = 0;
    for entry in tar.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        members = members.saturating_add(1);
        if members > max_members {
            return Err(refuse(format!(
                "it has more than {max_members} members (patch_limits.max_members = {max_members} in the agent configuration); ask the publisher for a smaller patch or raise the limit"
            )));
        }
        let path = entry.path().map_err(read_error)?.into_owned();
        let Some(rel) = member_file(&path, entry.header().entry_type()).map_err(&refuse)? else {
            continue;
        };
        let size = entry.size();
        let left = max_bytes.saturating_sub(total);
        if size > left {
            return Err(refuse(format!(
                "member {} ({size} bytes) would bring the unpacked files to more than {max_bytes} bytes (patch_limits.max_unpacked_bytes = {max_bytes} in the agent configuration); ask the publisher for a smaller patch or raise the limit",
                rel.display()
            )));
        }
        let archive_mode = entry
            .header()
            .mode()
            .map_err(|e| refuse(format!("member {}: unreadable mode: {e}", rel.display())))?;
        let out = dest.join(&rel);
        let mut f = create_staged(&out).map_err(|e| match e {
            Some(e) => e,
            None => refuse(format!("member {} appears twice", rel.display())),
        })?;
        // Never more than the room left, whatever the member's reader yields.
        let copied = std::io::copy(&mut (&mut entry).take(left), &mut f).map_err(|e| {
            if exceeded.get() {
                read_error(e)
            } else {
                Error::io(&out, e)
            }
        })?;
        total = total.saturating_add(copied);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(
                &out,
                fs::Permissions::from_mode(patch_file_mode(archive_mode)),
            )
            .map_err(|e| Error::io(&out, e))?;
        }
        #[cfg(not(unix))]
        let _ = archive_mode;
        files.push(rel.to_string_lossy().into_owned());
    }
    if files.is_empty() {
        return Err(refuse("it holds no files".into()));
    }
    Ok(files)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (rel, m, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(*m);
            h.set_cksum();
            tar.append_data(&mut h, rel, *data).unwrap();
        }
        tar.into_inner().unwrap()
    }

    fn unpack(bytes: &[u8], limits: PatchLimits) -> (tempfile::TempDir, Result<Vec<String>>) {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("p.archive");
        fs::write(&archive, bytes).unwrap();
        let r = unpack_patch(&archive, false, &dir.path().join("stage"), &limits);
        (dir, r)
    }

    #[test]
    fn modes_keep_execute_bits_and_drop_special_and_group_world_write() {
        assert_eq!(patch_file_mode(0o755), 0o755);
        assert_eq!(patch_file_mode(0o644), 0o644);
        assert_eq!(patch_file_mode(0o4777), 0o755);
        assert_eq!(patch_file_mode(0o2775), 0o755);
        assert_eq!(patch_file_mode(0o1666), 0o644);
        assert_eq!(patch_file_mode(0o600), 0o600);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let (dir, r) = unpack(
                &tar_of(&[("bin/x", 0o4777, b"x"), ("etc/y", 0o640, b"y")]),
                PatchLimits::default(),
            );
            assert_eq!(r.unwrap(), ["bin/x", "etc/y"]);
            let mode = |p: &str| {
                fs::metadata(dir.path().join("stage").join(p))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o7777
            };
            assert_eq!((mode("bin/x"), mode("etc/y")), (0o755, 0o640));
        }
    }

    #[test]
    fn the_decompressed_stream_is_cut_at_the_bound_even_in_headers() {
        // A 100 KB member name (a GNU long-name record the tar reader keeps in memory) is
        // header data, not file data: the stream bound stops it.
        let long = format!("{}f", "a/".repeat(50_000));
        let limits = PatchLimits {
            max_unpacked_bytes: 1,
            max_members: 1,
        };
        let (dir, r) = unpack(&tar_of(&[(&long, 0o644, b"x")]), limits);
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("the decompressed archive exceeds 24577 bytes")
                && e.contains("patch_limits.max_unpacked_bytes = 1"),
            "{e}"
        );
        assert!(!dir.path().join("stage").exists(), "staging removed");
    }

    #[test]
    fn sizes_and_members_are_bounded_and_duplicates_refused() {
        let limits = PatchLimits {
            max_unpacked_bytes: 10,
            max_members: 3,
        };
        let (_d, r) = unpack(
            &tar_of(&[("a", 0o644, b"12345"), ("b", 0o644, b"12345")]),
            limits,
        );
        assert_eq!(r.unwrap(), ["a", "b"], "exactly at the bound");
        let (d, r) = unpack(
            &tar_of(&[("a", 0o644, b"12345"), ("b", 0o644, b"123456")]),
            limits,
        );
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("member b (6 bytes)") && e.contains("max_unpacked_bytes = 10"),
            "{e}"
        );
        assert!(!d.path().join("stage").exists());
        let (_d, r) = unpack(
            &tar_of(&[
                ("a", 0o644, b""),
                ("b", 0o644, b""),
                ("c", 0o644, b""),
                ("d", 0o644, b""),
            ]),
            limits,
        );
        assert!(r.unwrap_err().to_string().contains("more than 3 members"));
        let (_d, r) = unpack(&tar_of(&[("a", 0o644, b"1"), ("./a", 0o644, b"2")]), limits);
        assert!(r
            .unwrap_err()
            .to_string()
            .contains("member a appears twice"));
    }
}
