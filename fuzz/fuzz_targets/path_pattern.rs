//! Delegation path patterns: an arbitrary pattern and path (split at the first NUL byte).
//! Never panics; libFuzzer's -timeout catches super-linear matching. A pattern without special
//! characters matches exactly itself, and every path matches itself with each component
//! replaced by `*`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tuf::delegation::path_matches;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, path) = text.split_once('\0').unwrap_or((&text, ""));
    let matched = path_matches(pattern, path);
    if !pattern.contains(['*', '?', '[']) {
        assert_eq!(
            matched,
            pattern == path,
            "literal pattern {pattern:?} vs {path:?}"
        );
    }
    let stars: Vec<&str> = path.split('/').map(|_| "*").collect();
    assert!(path_matches(&stars.join("/"), path), "stars vs {path:?}");
    if !path.contains(['*', '?', '[']) {
        assert!(path_matches(path, path), "{path:?} vs itself");
    }
});
