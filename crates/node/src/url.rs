//! Checks of the URLs a host is configured with, before anything runs.

use crate::error::{Error, Result};

/// Schemes an update source (relay, upstream, origin) may use: `file://` serves tests and
/// air-gapped mirrors on a local disk.
pub const SOURCE_SCHEMES: &[&str] = &["http", "https", "file"];
/// Schemes a manager URL may use.
pub const MANAGER_SCHEMES: &[&str] = &["http", "https"];

/// Check that `url` (the value of setting `key`) uses one of `schemes`.
pub fn check(key: &str, url: &str, schemes: &[&str]) -> Result<()> {
    let ok = schemes.iter().any(|s| {
        url.strip_prefix(s)
            .and_then(|rest| rest.strip_prefix("://"))
            .is_some_and(|rest| !rest.is_empty())
    });
    if ok {
        return Ok(());
    }
    let names: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
    let list = match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(Error::setting(key, format!("{url:?} is not an {list} URL")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_checked_per_use_and_the_url_named() {
        check("relays", "https://relay:8080", SOURCE_SCHEMES).unwrap();
        check("origin", "file:///srv/repo", SOURCE_SCHEMES).unwrap();
        let e = check("upstream", "ftp://x", SOURCE_SCHEMES).unwrap_err();
        assert_eq!(
            e.to_string(),
            "upstream: \"ftp://x\" is not an http://, https:// or file:// URL"
        );
        let e = check("manager", "file:///x", MANAGER_SCHEMES).unwrap_err();
        assert!(e.to_string().contains("http:// or https://"), "{e}");
        assert!(check("relays", "http://", SOURCE_SCHEMES).is_err());
    }
}
