//! Range checks of the numbers a host is configured with (flags, TOML, the manager's policy):
//! every duration and count is checked against its allowed range before any arithmetic uses
//! it, and the error names the setting and the range, so no value can overflow a clock.

use crate::error::{Error, Result};

/// Longest offline grace (days past expiry that timestamp and snapshot stay acceptable).
pub const MAX_OFFLINE_GRACE_DAYS: u64 = 3650;
/// Longest poll interval, in seconds (30 days).
pub const MAX_POLL_INTERVAL_SECS: u64 = 30 * 86_400;
/// Longest network timeout, in seconds (one hour).
pub const MAX_TIMEOUT_SECS: u64 = 3600;

/// Check that `value` (setting `key`, in `unit`) lies in `min..=max`.
pub fn check(key: &str, value: u64, min: u64, max: u64, unit: &str) -> Result<u64> {
    if (min..=max).contains(&value) {
        return Ok(value);
    }
    Err(Error::setting(
        key,
        format!("{value} is out of range: give {min} to {max} {unit}"),
    ))
}

/// The offline grace of setting `key` (days) as a duration, within `0..=MAX_OFFLINE_GRACE_DAYS`.
pub fn offline_grace(key: &str, days: u64) -> Result<time::Duration> {
    let days = check(key, days, 0, MAX_OFFLINE_GRACE_DAYS, "days")?;
    // Within the range, the conversion and the multiplication cannot overflow.
    let days = i64::try_from(days).map_err(|e| Error::setting(key, e.to_string()))?;
    Ok(time::Duration::days(days))
}

/// A poll interval of setting `key` (seconds), within `1..=MAX_POLL_INTERVAL_SECS`.
pub fn poll_interval(key: &str, secs: u64) -> Result<u64> {
    check(key, secs, 1, MAX_POLL_INTERVAL_SECS, "seconds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_out_of_range_name_the_setting_and_the_range() {
        assert_eq!(offline_grace("offline_grace", 7).unwrap().whole_days(), 7);
        let e = offline_grace("--offline-grace", 200_000_000_000_000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--offline-grace: 200000000000000 is out of range: give 0 to 3650 days"
        );
        assert!(offline_grace("g", u64::MAX).is_err());
        assert!(poll_interval("poll_interval", 0).is_err());
        assert_eq!(poll_interval("poll_interval", 300).unwrap(), 300);
        assert!(poll_interval("poll_interval", MAX_POLL_INTERVAL_SECS + 1).is_err());
    }
}
