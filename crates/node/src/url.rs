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

/// `text` with the credentials of every URL in it (`scheme://user:password@host`) replaced by
/// `***`: for anything that shows, stores or logs a source URL or a message naming one (status,
/// views, heartbeats, logs). The URL used to fetch keeps them.
pub fn redact(text: &str) -> String {
    tuf::fsutil::redact_credentials(text)
}

/// Displays a value (a URL, an error naming one) with URL credentials redacted ([`redact`]),
/// for log fields: `tracing::warn!(upstream = %Redacted(&url), error = %Redacted(&e), ...)`.
#[derive(Debug, Clone, Copy)]
pub struct Redacted<T>(pub T);

impl<T: std::fmt::Display> std::fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.0.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_redacted_wherever_they_appear() {
        assert_eq!(redact("http://u:secret@h:80/x"), "http://***@h:80/x");
        assert_eq!(
            redact("upstream https://tok@h/m failed; see http://h/a@b and file:///srv"),
            "upstream https://***@h/m failed; see http://h/a@b and file:///srv"
        );
        assert_eq!(redact("\"http://a:b@c\""), "\"http://***@c\"");
        assert_eq!(redact("http://a:p@ss@h"), "http://***@h");
        assert_eq!(redact("no url :// here@x"), "no url :// here@x");
        assert_eq!(Redacted("http://u:p@h").to_string(), "http://***@h");
    }

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
