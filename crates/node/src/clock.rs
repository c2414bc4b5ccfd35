//! The host's clock, in the two forms hosts use: a time to check expiry against, and the
//! RFC 3339 text written into status files, hotfix history and heartbeats.

use time::OffsetDateTime;

/// The current time (UTC).
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The current time as RFC 3339 text with whole seconds, e.g. `2026-11-02T08:15:00Z` (the
/// spelling TUF uses for `expires`).
pub fn now_string() -> String {
    tuf::metadata::format_expires(now())
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_string_is_rfc3339_utc_seconds() {
        let s = super::now_string();
        let t = time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
            .unwrap();
        assert!(s.ends_with('Z') && !s.contains('.'), "{s}");
        assert!((super::now() - t).whole_seconds().abs() < 5);
    }
}
