//! Directories a host writes to (its state, its cache), probed before anything runs so that a
//! read-only or missing directory fails at start with its name, not at the first write. They
//! are private (0700): files written in them through `tuf::fsutil` are 0600.

use std::path::Path;

use crate::error::{Error, Result};

/// Create `dir` (setting `key`) if needed and check that a file can be created in it.
pub fn writable(key: &str, dir: &Path) -> Result<()> {
    let bad = |reason: String| Error::Dir {
        key: key.to_string(),
        path: dir.to_path_buf(),
        reason,
    };
    // Host state is private: the directory is 0700, so everything written in it is too.
    tuf::fsutil::create_private_dir_all(dir).map_err(|e| bad(format!("cannot be created: {e}")))?;
    tempfile::NamedTempFile::new_in(dir).map_err(|e| bad(format!("is not writable: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_below_a_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        writable("cache", &tmp.path().join("new/dir")).unwrap();
        assert!(tmp.path().join("new/dir").is_dir());
        let file = tmp.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let e = writable("state_dir", &file.join("d"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("state_dir ") && e.contains(file.to_str().unwrap()),
            "{e}"
        );
    }
}
