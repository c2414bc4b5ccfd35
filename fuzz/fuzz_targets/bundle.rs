//! Offline bundles: the input is a bundle file, read (`read_manifest`) and imported into a
//! fresh relay cache that trusts the fixture's root. Never panics; nothing is written outside
//! the cache directory; a bundle is never imported unless it verifies against that root.
#![no_main]

use std::collections::BTreeSet;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use relay::bundle::{import, read_manifest};
use relay::SyncSettings;
use updraft_fuzz::{fixture, scratch, tree};

fuzz_target!(|data: &[u8]| {
    let tmp = scratch();
    let bundle = tmp.path().join("bundle.tar");
    std::fs::write(&bundle, data).expect("write bundle");
    let cache = tmp.path().join("cache");
    if read_manifest(&bundle).is_err() {
        return;
    }
    let settings = SyncSettings {
        trusted_root: fixture().root.clone(),
        keep_views: 2,
        offline_grace: time::Duration::ZERO,
        max_roles: 64,
        progress: false,
    };
    let before = tree(tmp.path());
    let _ = import(&cache, &bundle, &settings);
    let outside: BTreeSet<PathBuf> = tree(tmp.path())
        .into_iter()
        .filter(|p| !before.contains(p) && !p.starts_with("cache"))
        .collect();
    assert!(outside.is_empty(), "written outside the cache: {outside:?}");
});
