//! Safe local names and atomic file writes.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::{Error, Result};

/// Everything but `A-Z a-z 0-9 - . _ ~` is escaped (like Python's `urllib.parse.quote(s, "")`).
const NAME: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// As [`NAME`] but keeps `/`, for URL paths.
const URL_PATH: &AsciiSet = &NAME.remove(b'/');

/// Encode any string (role name or target path) as one safe file name: no `/`, no `..`, no
/// control characters, never empty.
pub fn safe_file_name(s: &str) -> String {
    let enc = utf8_percent_encode(s, NAME).to_string();
    if enc.is_empty() {
        // Encoding never produces a lone `%` followed by non-hex, so this cannot collide.
        return "%empty".to_string();
    }
    if enc.bytes().all(|b| b == b'.') {
        // "." and ".." must not name the directory itself or its parent.
        return "%2E".repeat(enc.len());
    }
    enc
}

/// Escape a string for use in a URL path, keeping `/` separators.
pub fn url_path(s: &str) -> String {
    utf8_percent_encode(s, URL_PATH).to_string()
}

/// Escape a string for use as a single URL path segment.
pub fn url_segment(s: &str) -> String {
    utf8_percent_encode(s, NAME).to_string()
}

/// `text` with the credentials of every URL in it (`scheme://user:password@host`) replaced by
/// `***` (hosts show, store and log URLs through `node::url::redact`; the updater logs fetch
/// URLs through it).
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i.saturating_add(3));
        out.push_str(head);
        let end = tail
            .find(|c: char| "/?#\"'<>()[],;".contains(c) || c.is_whitespace())
            .unwrap_or(tail.len());
        let (authority, after) = tail.split_at(end);
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory is written and
/// fsynced, then renamed over `path`, then the directory is fsynced. A crash leaves either the
/// old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, true)
}

/// As [`write_atomic`]; with `durable` false the fsyncs are skipped: the replacement is still
/// atomic for readers, but a power loss may leave the old content, or on some file systems an
/// empty file (which a TUF client then rejects and downloads again).
///
/// The file is as private as the directory it is written to ([`file_mode_in`]): 0600 in a
/// directory without group or other bits (a host's state), 0644 elsewhere (a published
/// repository, readable by a web server).
pub fn write_atomic_with(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = parent_dir(path);
    create_dir_all(&dir)?;
    write_atomic_as(path, bytes, durable, permissions(file_mode_in(&dir)))
}

/// The mode of a new file in `dir`: 0600 when `dir` has no group or other permission bits
/// (a private directory), else 0644. One rule for every file written through this module.
pub fn file_mode_in(dir: &Path) -> u32 {
    if is_private(dir) {
        0o600
    } else {
        0o644
    }
}

#[cfg(unix)]
fn is_private(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o077 == 0)
}

#[cfg(not(unix))]
fn is_private(_dir: &Path) -> bool {
    false
}

/// Create `dir` and its missing parents; new levels under a private directory are private
/// (0700), so a host's state stays private however deep it is written.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let private = dir
        .ancestors()
        .skip(1)
        .find(|a| a.is_dir())
        .is_some_and(is_private);
    if private {
        return create_private_dir_all(dir);
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Create `dir` (and missing parents) with mode 0700; an existing `dir` readable by others is
/// narrowed to 0700 (a host's state or cache directory: nothing in it is for other users).
pub fn create_private_dir_all(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(dir, e))?;
        if !is_private(dir) {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(dir, e))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
    }
}

/// As [`write_atomic`] for a secret (a private key, a host credential): the file is created
/// with mode 0600 before anything is written to it.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> Result<()> {
    create_dir_all(&parent_dir(path))?;
    write_atomic_as(path, bytes, true, permissions(0o600))
}

fn write_atomic_as(path: &Path, bytes: &[u8], durable: bool, mode: fs::Permissions) -> Result<()> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .permissions(mode)
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    if durable {
        tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    if durable {
        sync_dir(&dir);
    }
    Ok(())
}

/// A temporary file in `dir`, as private as `dir` ([`file_mode_in`]), to be renamed into it.
pub fn tempfile_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .permissions(permissions(file_mode_in(dir)))
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))
}

#[cfg(unix)]
fn permissions(mode: u32) -> fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    fs::Permissions::from_mode(mode)
}

#[cfg(not(unix))]
fn permissions(_mode: u32) -> fs::Permissions {
    let mut p = fs::metadata(".")
        .map(|m| m.permissions())
        .unwrap_or_else(|_| unreachable!());
    p.set_readonly(false);
    p
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Best-effort fsync of a directory so that a rename in it is durable.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Remove a file if it exists.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe() {
        for s in [
            "../x",
            "a/../b",
            "/etc/passwd",
            "..",
            ".",
            "",
            "a b?#",
            "ünï/cødé",
            "\n\0",
        ] {
            let n = safe_file_name(s);
            assert!(!n.contains('/'), "{s:?} -> {n}");
            assert!(n != "." && n != ".." && !n.is_empty(), "{s:?} -> {n}");
            assert!(n.bytes().all(|b| b.is_ascii_graphic()), "{s:?} -> {n}");
        }
        assert_eq!(safe_file_name("targets"), "targets");
        assert_eq!(safe_file_name("a/b c"), "a%2Fb%20c");
        assert_ne!(safe_file_name("."), safe_file_name(".."));
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600_and_public_ones_0644() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let (secret, public) = (dir.path().join("secret"), dir.path().join("public"));
        write_atomic_private(&secret, b"s").unwrap();
        write_atomic(&public, b"p").unwrap();
        assert_eq!((mode(&secret), mode(&public)), (0o600, 0o644));
        write_atomic_private(&secret, b"t").unwrap();
        assert_eq!(fs::read(&secret).unwrap(), b"t");
    }

    #[cfg(unix)]
    #[test]
    fn files_and_directories_are_as_private_as_the_directory_they_are_created_in() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let public = dir.path().join("public");
        fs::create_dir(&public).unwrap();
        fs::set_permissions(&public, fs::Permissions::from_mode(0o755)).unwrap();
        write_atomic(&public.join("a/b/file"), b"p").unwrap();
        assert_eq!(mode(&public.join("a/b/file")), 0o644);
        let private = dir.path().join("state");
        create_private_dir_all(&private).unwrap();
        write_atomic(&private.join("x/y/file"), b"s").unwrap();
        assert_eq!(mode(&private), 0o700);
        assert_eq!(mode(&private.join("x")), 0o700);
        assert_eq!(mode(&private.join("x/y")), 0o700);
        assert_eq!(mode(&private.join("x/y/file")), 0o600);
        let tmp = tempfile_in(&private.join("x")).unwrap();
        assert_eq!(mode(tmp.path()), 0o600);
        // An existing state directory readable by others is narrowed.
        create_private_dir_all(&public).unwrap();
        assert_eq!(mode(&public), 0o700);
    }

    #[test]
    fn url_path_keeps_slashes() {
        assert_eq!(url_path("a/b c/#?"), "a/b%20c/%23%3F");
    }
}
