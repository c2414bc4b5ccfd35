//! File operations beneath a directory that never follow a symlink: the one way the agent touches
//! a product's or module's `install_dir` (and a patch's staging and backup directories).
//!
//! A product's directory may be writable by the product's own (unprivileged) service user, who
//! could plant `lib -> /etc` or `bin/scanner -> /etc/passwd` there; the agent runs as root. So a
//! member path (`lib/passwd`) is never joined onto the directory and handed to path-based calls,
//! which follow symlinks in every component. Instead the directory is opened once, and each level
//! below it is opened relative to the previous one's handle with `O_NOFOLLOW | O_DIRECTORY`: a
//! symlink (or anything but a directory) at any level is refused, and a level swapped for a
//! symlink after it was checked is refused too, since it is opened, not looked up again. The
//! last element is then only used relative to its parent's handle:
//!
//! - [`Beneath::entry`] tells a regular file from nothing and refuses anything else (a symlink,
//!   a directory, a device, a FIFO): patches check every member with it before changing anything.
//! - [`Beneath::open_file`] opens with `O_NOFOLLOW` and checks the opened file is regular.
//! - [`Beneath::place`] writes a temporary file with `O_CREAT | O_EXCL` (never follows) in the
//!   parent, fsyncs it and renames it over the name: a rename replaces a symlink there as a link,
//!   it never writes through it.
//! - [`Beneath::remove_file`] unlinks relative to the parent: an unlink removes a symlink itself,
//!   never its target.
//!
//! The directory itself (`install_dir`, configured by the administrator) is opened as configured.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// What a member's path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Nothing (nor, possibly, some of its parent directories).
    Missing,
    /// A regular file.
    File,
}

/// A directory opened once; every operation resolves a member path beneath it without following
/// a symlink.
#[derive(Debug)]
pub struct Beneath {
    root: PathBuf,
    fd: OwnedFd,
}

/// The directory holding a member, opened, and the member's last element.
struct Parent<'a> {
    fd: OwnedFd,
    name: &'a str,
}

static STAGE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new directory is as private as its parent (the rule of `tuf::fsutil`): 0700 under a
/// directory without group or other bits, else 0755.
fn new_dir_mode(parent: BorrowedFd<'_>) -> Mode {
    let private = rustix::fs::fstat(parent).is_ok_and(|st| st.st_mode & 0o077 == 0);
    Mode::from_raw_mode(if private { 0o700 } else { 0o755 })
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

impl Beneath {
    /// Open `root`, creating it (and its parents) first when `create`.
    pub fn open(root: &Path, create: bool) -> Result<Self> {
        if create {
            tuf::fsutil::create_dir_all(root)?;
        }
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(root, e.into()))?;
        Ok(Beneath {
            root: root.to_path_buf(),
            fd,
        })
    }

    /// The directory, as given to [`Beneath::open`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn refuse(&self, member: &str, reason: String) -> Error {
        Error::UnsafePath {
            root: self.root.clone(),
            member: member.to_string(),
            reason,
        }
    }

    fn io(&self, rel: &str, e: Errno) -> Error {
        Error::io(self.root.join(rel), e.into())
    }

    /// Why `name` (at `rel` below the root) in `dir` cannot be used as a directory.
    fn not_a_dir(&self, dir: BorrowedFd<'_>, name: &str, rel: &str, member: &str) -> Error {
        let reason = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                format!("{rel} is a {}", link_text(dir, name))
            }
            Ok(_) => format!("{rel} is not a directory"),
            Err(e) => format!("{rel} cannot be opened as a directory: {e}"),
        };
        self.refuse(member, reason)
    }

    /// Open the directory holding `member` level by level, never following a symlink; create
    /// missing levels (mode 0755 less the umask, 0700 under a private directory such as the
    /// state's patch backups) when `create`, else answer `None` for them.
    fn parent<'a>(&self, member: &'a str, create: bool) -> Result<Option<Parent<'a>>> {
        let parts: Vec<&str> = member
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.contains(&"..") {
            return Err(self.refuse(member, "is not a relative path inside the directory".into()));
        }
        let Some((name, dirs)) = parts.split_last() else {
            return Err(self.refuse(member, "names no file".into()));
        };
        let mut cur: Option<OwnedFd> = None;
        for (i, part) in dirs.iter().enumerate() {
            let rel = dirs[..=i].join("/");
            let dir = cur.as_ref().map_or(self.fd.as_fd(), |f| f.as_fd());
            let opened = match rustix::fs::openat(dir, *part, dir_flags(), Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(dir, *part, new_dir_mode(dir)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.io(&rel, e)),
                    }
                    // Opened again without following: whatever is there now must be a directory.
                    rustix::fs::openat(dir, *part, dir_flags(), Mode::empty())
                }
                other => other,
            };
            let next = match opened {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP | Errno::NOTDIR | Errno::MLINK) => {
                    return Err(self.not_a_dir(dir, part, &rel, member))
                }
                Err(e) => return Err(self.io(&rel, e)),
            };
            cur = Some(next);
        }
        let fd = match cur {
            Some(fd) => fd,
            None => self.fd.try_clone().map_err(|e| Error::io(&self.root, e))?,
        };
        Ok(Some(Parent { fd, name }))
    }

    /// What `member` is: nothing, or a regular file. A symlink or anything but a directory at
    /// one of its parents, or anything but a regular file at the member itself, is refused.
    pub fn entry(&self, member: &str) -> Result<Entry> {
        let Some(parent) = self.parent(member, false)? else {
            return Ok(Entry::Missing);
        };
        match rustix::fs::statat(&parent.fd, parent.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => Ok(Entry::File),
                FileType::Symlink => Err(self.refuse(
                    member,
                    format!(
                        "{member} is a {}",
                        link_text(parent.fd.as_fd(), parent.name)
                    ),
                )),
                FileType::Directory => {
                    Err(self.refuse(member, format!("{member} is a directory, not a file")))
                }
                other => Err(self.refuse(
                    member,
                    format!("{member} is not a regular file ({other:?})"),
                )),
            },
            Err(Errno::NOENT) => Ok(Entry::Missing),
            Err(e) => Err(self.io(member, e)),
        }
    }

    /// Open `member` for reading: it must be a regular file, reached without following a symlink.
    pub fn open_file(&self, member: &str) -> Result<File> {
        let Some(parent) = self.parent(member, false)? else {
            return Err(self.io(member, Errno::NOENT));
        };
        // NONBLOCK: opening a FIFO planted there must not hang the agent (it is refused below).
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = match rustix::fs::openat(&parent.fd, parent.name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::MLINK) => {
                return Err(self.refuse(
                    member,
                    format!(
                        "{member} is a {}",
                        link_text(parent.fd.as_fd(), parent.name)
                    ),
                ))
            }
            Err(e) => return Err(self.io(member, e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| self.io(member, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(self.refuse(member, format!("{member} is not a regular file")));
        }
        Ok(File::from(fd))
    }

    /// Write the contents of `src` to `member`: staged in a new file next to it (created with
    /// `O_EXCL`, never through a link), given `mode` (or `src`'s permission bits when `None`),
    /// fsynced and renamed over the name (a symlink there is replaced, never written through; a
    /// directory there is refused). Missing parent directories are created, never through links.
    pub fn place(&self, member: &str, src: &mut File, mode: Option<u32>) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let Some(parent) = self.parent(member, true)? else {
            return Err(self.io(member, Errno::NOENT));
        };
        if let Ok(st) = rustix::fs::statat(&parent.fd, parent.name, AtFlags::SYMLINK_NOFOLLOW) {
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                return Err(self.refuse(member, format!("{member} is a directory, not a file")));
            }
        }
        let mode = match mode {
            Some(m) => m,
            None => {
                src.metadata()
                    .map_err(|e| Error::io(&self.root, e))?
                    .permissions()
                    .mode()
                    & 0o7777
            }
        };
        let (tmp_name, fd) = self.stage_file(&parent, member)?;
        let written = (|| -> std::io::Result<()> {
            let mut tmp = File::from(fd);
            std::io::copy(&mut src.by_ref(), &mut tmp)?;
            tmp.set_permissions(std::fs::Permissions::from_mode(mode))?;
            tmp.sync_all()?;
            rustix::fs::renameat(&parent.fd, &tmp_name, &parent.fd, parent.name)?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(&parent.fd, &tmp_name, AtFlags::empty());
            return Err(Error::io(self.root.join(member), e));
        }
        let _ = rustix::fs::fsync(&parent.fd);
        Ok(())
    }

    /// A new, empty staging file in `parent` (mode 0600 until written).
    fn stage_file(&self, parent: &Parent<'_>, member: &str) -> Result<(String, OwnedFd)> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut last = Errno::EXIST;
        for _ in 0..64 {
            let name = format!(
                ".updraft-stage-{}-{}",
                std::process::id(),
                STAGE_COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            match rustix::fs::openat(&parent.fd, &name, flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => return Ok((name, fd)),
                Err(Errno::EXIST) => last = Errno::EXIST,
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
        Err(self.io(member, last))
    }

    /// Copy `member` of `src` to the same member here (see [`Beneath::place`]).
    pub fn copy_from(&self, src: &Beneath, member: &str, mode: Option<u32>) -> Result<()> {
        let mut from = src.open_file(member)?;
        self.place(member, &mut from, mode)
    }

    /// Remove `member` if it is there. A symlink or non-directory at one of its parents is
    /// refused; the member itself is unlinked (a symlink as a link, never its target); a
    /// directory there is refused.
    pub fn remove_file(&self, member: &str) -> Result<()> {
        let Some(parent) = self.parent(member, false)? else {
            return Ok(());
        };
        match rustix::fs::unlinkat(&parent.fd, parent.name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(Errno::ISDIR | Errno::PERM) if self.is_dir(&parent) => {
                Err(self.refuse(member, format!("{member} is a directory, not a file")))
            }
            Err(e) => Err(self.io(member, e)),
        }
    }

    fn is_dir(&self, parent: &Parent<'_>) -> bool {
        rustix::fs::statat(&parent.fd, parent.name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
    }

    /// Flush the directory's entries to disk (best effort, like `tuf::fsutil::sync_dir`).
    pub fn sync(&self) {
        let _ = rustix::fs::fsync(&self.fd);
    }
}

/// "symlink (to <target>)", for messages.
fn link_text(dir: BorrowedFd<'_>, name: &str) -> String {
    match rustix::fs::readlinkat(dir, name, Vec::new()) {
        Ok(target) => format!(
            "symlink (to {}); the agent never follows a symlink under this directory",
            target.to_string_lossy()
        ),
        Err(_) => "symlink; the agent never follows a symlink under this directory".into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn bed() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("passwd"), b"root").unwrap();
        std::fs::write(root.join("bin/tool"), b"tool").unwrap();
        (t, root, outside)
    }

    fn src(t: &tempfile::TempDir, bytes: &[u8]) -> File {
        let p = t.path().join("src");
        std::fs::write(&p, bytes).unwrap();
        File::open(p).unwrap()
    }

    #[test]
    fn files_and_missing_members_are_told_apart_and_written_in_place() {
        let (t, root, _) = bed();
        let b = Beneath::open(&root, false).unwrap();
        assert_eq!(b.entry("bin/tool").unwrap(), Entry::File);
        assert_eq!(b.entry("bin/new").unwrap(), Entry::Missing);
        assert_eq!(b.entry("lib/deep/new").unwrap(), Entry::Missing);
        b.place("lib/deep/new", &mut src(&t, b"new"), Some(0o640))
            .unwrap();
        assert_eq!(std::fs::read(root.join("lib/deep/new")).unwrap(), b"new");
        let mut back = String::new();
        b.open_file("lib/deep/new")
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, "new");
        b.remove_file("lib/deep/new").unwrap();
        b.remove_file("lib/deep/new").unwrap();
        assert!(!root.join("lib/deep/new").exists());
        let left: Vec<_> = std::fs::read_dir(root.join("lib/deep")).unwrap().collect();
        assert!(left.is_empty(), "no staging file left");
    }

    #[test]
    fn a_symlinked_directory_is_never_followed() {
        let (t, root, outside) = bed();
        symlink(&outside, root.join("lib")).unwrap();
        let b = Beneath::open(&root, false).unwrap();
        for e in [
            b.entry("lib/passwd").unwrap_err(),
            b.open_file("lib/passwd").unwrap_err(),
            b.place("lib/passwd", &mut src(&t, b"evil"), None)
                .unwrap_err(),
            b.place("lib/x/new", &mut src(&t, b"evil"), None)
                .unwrap_err(),
            b.remove_file("lib/passwd").unwrap_err(),
        ] {
            let msg = e.to_string();
            assert!(matches!(e, Error::UnsafePath { .. }), "{msg}");
            assert!(msg.contains("lib is a symlink (to "), "{msg}");
        }
        assert_eq!(std::fs::read(outside.join("passwd")).unwrap(), b"root");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    }

    #[test]
    fn a_symlink_as_the_last_element_is_refused_replaced_or_unlinked_never_followed() {
        let (t, root, outside) = bed();
        std::fs::remove_file(root.join("bin/tool")).unwrap();
        symlink(outside.join("passwd"), root.join("bin/tool")).unwrap();
        let b = Beneath::open(&root, false).unwrap();
        let e = b.entry("bin/tool").unwrap_err().to_string();
        assert!(e.contains("bin/tool is a symlink (to "), "{e}");
        assert!(b.open_file("bin/tool").is_err());
        // A rename replaces the link itself.
        b.place("bin/tool", &mut src(&t, b"new"), None).unwrap();
        assert!(!std::fs::symlink_metadata(root.join("bin/tool"))
            .unwrap()
            .file_type()
            .is_symlink());
        // An unlink removes the link itself.
        std::fs::remove_file(root.join("bin/tool")).unwrap();
        symlink(outside.join("passwd"), root.join("bin/tool")).unwrap();
        b.remove_file("bin/tool").unwrap();
        assert_eq!(std::fs::read(outside.join("passwd")).unwrap(), b"root");
    }

    #[test]
    fn other_kinds_and_odd_paths_are_refused() {
        let (_t, root, _) = bed();
        let b = Beneath::open(&root, false).unwrap();
        assert!(b
            .entry("bin")
            .unwrap_err()
            .to_string()
            .contains("bin is a directory"));
        assert!(b
            .entry("bin/tool/x")
            .unwrap_err()
            .to_string()
            .contains("bin/tool is not a directory"));
        assert!(b.entry("../x").is_err());
        assert!(b.entry("").is_err());
        assert!(b
            .remove_file("bin")
            .unwrap_err()
            .to_string()
            .contains("is a directory"));
    }
}
