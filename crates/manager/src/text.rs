//! Strings from hosts and administrators: what may be stored, and how it is shown.
//!
//! Names (hostnames, products, components, module names, URLs, patch ids…) refuse every control
//! and bidirectional-formatting character; free text (history messages, module reasons, a
//! cycle's result) is only bounded in length and kept as it came. Whatever is printed from the
//! database goes through [`escape`], so free text (or text stored before these checks) cannot
//! drive a terminal.

use std::borrow::Cow;

use crate::error::{Error, Result};

/// Characters that change how a terminal or a bidirectional renderer shows the text around them.
fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::BadRequest {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A name: 1 to `max` bytes, no control or formatting characters.
pub fn check_name(field: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() || value.len() > max {
        return Err(bad(field, format!("1 to {max} bytes")));
    }
    if let Some(c) = value.chars().find(|c| is_hostile(*c)) {
        return Err(bad(
            field,
            format!("control character {:?} is not allowed", c),
        ));
    }
    Ok(())
}

/// Free text (a history message, an error): at most `max` bytes, kept as it came (a host whose
/// error message quotes a strange file name must still be able to report); [`escape`] makes it
/// safe to print.
pub fn check_free_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(bad(field, format!("at most {max} bytes")));
    }
    Ok(())
}

/// An `http://` or `https://` URL with a host (and no credentials: a policy hands it to every
/// host of the group).
pub fn check_url(field: &str, value: &str) -> Result<()> {
    check_name(field, value, 2048)?;
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| {
            bad(
                field,
                format!("{value:?} is not an http:// or https:// URL"),
            )
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(bad(
            field,
            "no user or password in the URL: every host of the group would see them",
        ));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':')),
            None => ("", None),
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad(field, format!("{value:?} names no host")));
    }
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(bad(
            field,
            format!("{value:?}: the port is not a number up to 65535"),
        ));
    }
    Ok(())
}

/// `s` as it may be printed on a terminal: control and formatting characters (line breaks
/// included) as `\u{…}` escapes, everything else as it is.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hostile) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if is_hostile(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_refused_in_names_and_escaped_when_shown() {
        let evil = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J";
        assert!(check_name("hostname", evil, 253).is_err());
        assert!(check_name("hostname", "web-1.example", 253).is_ok());
        assert!(check_name("hostname", "a\u{202E}b", 253).is_err());
        assert!(check_free_text("message", "line 1\nline 2\ttab", 100).is_ok());
        assert!(check_free_text("message", evil, 100).is_ok());
        assert!(check_free_text("message", &"x".repeat(101), 100).is_err());
        assert_eq!(escape(evil), "evil\\u{1b}]0;pwned\\u{7}\\u{1b}[2J");
        assert_eq!(escape("plain ü"), "plain ü");
        assert!(!escape("a\nb").contains('\n'));
    }

    #[test]
    fn relay_urls_are_http_or_https_with_a_host() {
        for good in [
            "https://relay-1:8443",
            "http://10.0.0.1/",
            "https://[::1]:443/x",
        ] {
            assert!(check_url("relays", good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://x",
            "https://",
            "https://:80",
            "relay-1",
            "https://u:p@h",
            "https://h:99999",
            "https://h x",
        ] {
            assert!(check_url("relays", bad).is_err(), "{bad}");
        }
    }
}
