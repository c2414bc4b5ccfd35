//! Patch unpacking: the input is a patch archive (first byte odd: tar.zst, even: tar). Never
//! panics; on success only `dest` gained files, which are the ones reported and within the
//! limits; on failure `dest` is gone; nothing is written next to it.
#![no_main]

use std::collections::BTreeSet;
use std::path::PathBuf;

use agent::config::PatchLimits;
use agent::install::unpack_patch;
use libfuzzer_sys::fuzz_target;
use updraft_fuzz::{scratch, tree};

const LIMITS: PatchLimits = PatchLimits {
    max_unpacked_bytes: 64 << 10,
    max_members: 32,
};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, archive)) = data.split_first() else {
        return;
    };
    let tmp = scratch();
    let archive_path = tmp.path().join("patch.archive");
    std::fs::write(&archive_path, archive).expect("write archive");
    let dest = tmp.path().join("stage").join("dest");
    let before = tree(tmp.path());
    let result = unpack_patch(&archive_path, kind % 2 == 1, &dest, &LIMITS);
    let after = tree(tmp.path());
    let outside: BTreeSet<&PathBuf> = after
        .iter()
        .filter(|p| !before.contains(*p) && *p != "stage" && !p.starts_with("stage/dest"))
        .collect();
    assert!(
        outside.is_empty(),
        "written outside the staging: {outside:?}"
    );
    match result {
        Ok(files) => {
            let written: BTreeSet<PathBuf> = tree(&dest)
                .into_iter()
                .filter(|p| dest.join(p).is_file())
                .collect();
            let reported: BTreeSet<PathBuf> = files.iter().map(PathBuf::from).collect();
            assert_eq!(written, reported, "files on disk and reported differ");
            assert!(files.len() as u64 <= LIMITS.max_members);
            let total: u64 = written
                .iter()
                .map(|p| {
                    std::fs::metadata(dest.join(p))
                        .map(|m| m.len())
                        .unwrap_or(0)
                })
                .sum();
            assert!(total <= LIMITS.max_unpacked_bytes, "unpacked {total} bytes");
        }
        Err(_) => assert!(!dest.exists(), "a refused archive left {}", dest.display()),
    }
});
