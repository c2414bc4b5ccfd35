//! Host operations the agent's installs use: the fault-injection hook, the clock, running a
//! configured command, and unpacking a patch archive into a staging directory within limits.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use std::process::Command;

use crate::config::PatchLimits;
use crate::error::{Error, Result};

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
        tuf::fsutil::create_dir_all(p).map_err(|e| Some(e.into()))?;
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
    tuf::fsutil::create_dir_all(dest)?;
    let mut u = Unpack {
        archive,
        dest,
        limits,
        exceeded: std::rc::Rc::new(std::cell::Cell::new(false)),
        stream_bound: limits.max_unpacked_bytes.saturating_add(
            limits
                .max_members
                .saturating_add(2)
                .saturating_mul(HEADER_ALLOWANCE_PER_MEMBER),
        ),
        total: 0,
        members: 0,
        files: Vec::new(),
    };
    let mut tar = tar::Archive::new(u.open(zstd)?);
    for entry in tar.entries().map_err(|e| u.read_error(e))? {
        let mut entry = entry.map_err(|e| u.read_error(e))?;
        u.member(&mut entry)?;
    }
    if u.files.is_empty() {
        return Err(u.refuse("it holds no files".into()));
    }
    Ok(u.files)
}

/// One archive being unpacked: where, within which limits, and what was written so far.
struct Unpack<'a> {
    archive: &'a Path,
    dest: &'a Path,
    limits: &'a PatchLimits,
    /// Set when the decompressed stream passed `stream_bound`.
    exceeded: std::rc::Rc<std::cell::Cell<bool>>,
    stream_bound: u64,
    /// Bytes of files written, and members seen.
    total: u64,
    members: u64,
    files: Vec<String>,
}

impl Unpack<'_> {
    fn refuse(&self, reason: String) -> Error {
        Error::PatchArchive {
            archive: self.archive.to_path_buf(),
            reason,
        }
    }

    /// An I/O error while reading the archive: the stream bound, or a broken archive.
    fn read_error(&self, e: std::io::Error) -> Error {
        let (max_bytes, max_members) = (self.limits.max_unpacked_bytes, self.limits.max_members);
        if self.exceeded.get() {
            self.refuse(format!(
                "the decompressed archive exceeds {} bytes (patch_limits.max_unpacked_bytes = {max_bytes} plus {HEADER_ALLOWANCE_PER_MEMBER} bytes of headers per member allowed by patch_limits.max_members = {max_members} in the agent configuration); ask the publisher for a smaller patch or raise the limit",
                self.stream_bound
            ))
        } else {
            self.refuse(format!("unreadable: {e}"))
        }
    }

    /// The archive's (decompressed) stream, cut at the stream bound.
    fn open(&self, zstd: bool) -> Result<Bounded<Box<dyn Read>>> {
        let file = File::open(self.archive).map_err(|e| Error::io(self.archive, e))?;
        let reader: Box<dyn Read> = if zstd {
            Box::new(
                ruzstd::decoding::StreamingDecoder::new(file)
                    .map_err(|e| self.refuse(format!("not zstd: {e}")))?,
            )
        } else {
            Box::new(file)
        };
        Ok(Bounded {
            inner: reader,
            left: self.stream_bound,
            exceeded: self.exceeded.clone(),
        })
    }

    /// Check one member against the limits and write it if it is a file.
    fn member<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let (max_bytes, max_members) = (self.limits.max_unpacked_bytes, self.limits.max_members);
        self.members = self.members.saturating_add(1);
        if self.members > max_members {
            return Err(self.refuse(format!(
                "it has more than {max_members} members (patch_limits.max_members = {max_members} in the agent configuration); ask the publisher for a smaller patch or raise the limit"
            )));
        }
        let path = entry.path().map_err(|e| self.read_error(e))?.into_owned();
        let kind = entry.header().entry_type();
        let Some(rel) = member_file(&path, kind).map_err(|r| self.refuse(r))? else {
            return Ok(());
        };
        let size = entry.size();
        let left = max_bytes.saturating_sub(self.total);
        if size > left {
            return Err(self.refuse(format!(
                "member {} ({size} bytes) would bring the unpacked files to more than {max_bytes} bytes (patch_limits.max_unpacked_bytes = {max_bytes} in the agent configuration); ask the publisher for a smaller patch or raise the limit",
                rel.display()
            )));
        }
        self.write(entry, &rel, left)
    }

    /// Write member `rel` (at most `left` bytes) with its masked mode.
    fn write<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
        left: u64,
    ) -> Result<()> {
        let archive_mode = entry
            .header()
            .mode()
            .map_err(|e| self.refuse(format!("member {}: unreadable mode: {e}", rel.display())))?;
        let out = self.dest.join(rel);
        let mut f = create_staged(&out).map_err(|e| match e {
            Some(e) => e,
            None => self.refuse(format!("member {} appears twice", rel.display())),
        })?;
        // Never more than the room left, whatever the member's reader yields.
        let copied = std::io::copy(&mut entry.take(left), &mut f).map_err(|e| {
            if self.exceeded.get() {
                self.read_error(e)
            } else {
                Error::io(&out, e)
            }
        })?;
        self.total = self.total.saturating_add(copied);
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
        self.files.push(rel.to_string_lossy().into_owned());
        Ok(())
    }
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
