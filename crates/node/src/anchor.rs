//! The trust anchor: the root file shipped with the installation, read and checked in one place.

use std::path::Path;

use crate::error::{Error, Result};

/// Read the root file at `path` and check that it is a root signed by a threshold of its own
/// keys (expiry is not checked here: a newer root may follow). Returns its bytes, the anchor a
/// fresh client starts from. Errors name the file.
pub fn load(path: &Path) -> Result<Vec<u8>> {
    let bad = |reason: String| Error::Anchor {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    tuf::TrustedSet::new(&bytes, crate::clock::now()).map_err(|e| bad(e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_file(dir: &Path) -> std::path::PathBuf {
        let repo = dir.join("repo");
        tuf::repo::Repository::init(&repo, &Default::default()).unwrap();
        repo.join("metadata/1.root.json")
    }

    #[test]
    fn a_signed_root_is_an_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_file(dir.path());
        assert_eq!(load(&root).unwrap(), std::fs::read(&root).unwrap());
    }

    #[test]
    fn a_bad_signature_is_refused_and_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_file(dir.path());
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&root).unwrap()).unwrap();
        v["signed"]["expires"] = "2099-01-01T00:00:00Z".into();
        std::fs::write(&root, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = load(&root).unwrap_err();
        assert!(matches!(e, Error::Anchor { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains(root.to_str().unwrap()), "{text}");
        assert!(text.to_lowercase().contains("signature"), "{text}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = load(Path::new("/no/such/root.json")).unwrap_err();
        assert!(e.to_string().contains("/no/such/root.json"), "{e}");
    }
}
