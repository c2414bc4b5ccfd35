//! Test hook for crash recovery: `UPDRAFT_FAULT=<point>` aborts the process at that point, the
//! way `kill -9` would, so that recovery can be tested deterministically with real processes.

/// The environment variable naming the point at which to abort.
pub const FAULT_ENV: &str = "UPDRAFT_FAULT";

/// Abort the process here if `UPDRAFT_FAULT` names `point`.
pub fn fault(point: &str) {
    if std::env::var(FAULT_ENV).is_ok_and(|v| v == point) {
        tracing::error!(point, "UPDRAFT_FAULT: aborting");
        std::process::abort();
    }
}
