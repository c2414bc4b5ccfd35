//! Test hook for crash recovery: `UPDRAFT_FAULT=<point>` aborts the process at that point, the
//! way `kill -9` would, so that recovery can be tested deterministically with real processes;
//! [`panic_if`] panics instead, for code that promises to contain a panic.

/// The environment variable naming the point at which to abort.
pub const FAULT_ENV: &str = "UPDRAFT_FAULT";

/// Abort the process here if `UPDRAFT_FAULT` names `point`.
pub fn fault(point: &str) {
    if std::env::var(FAULT_ENV).is_ok_and(|v| v == point) {
        tracing::error!(point, "UPDRAFT_FAULT: aborting");
        std::process::abort();
    }
}

/// Panic here if `UPDRAFT_FAULT` names `point`: tests that a panic (a bug) is contained where
/// the code promises to contain it.
pub fn panic_if(point: &str) {
    if std::env::var(FAULT_ENV).is_ok_and(|v| v == point) {
        tracing::error!(point, "UPDRAFT_FAULT: panicking");
        panic!("UPDRAFT_FAULT={point}");
    }
}
