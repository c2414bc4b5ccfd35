//! Per-host heartbeat rate limit and the authentication-failure count and log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one host may send heartbeats: `per_minute` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatRate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Default for HeartbeatRate {
    fn default() -> Self {
        HeartbeatRate {
            per_minute: 60,
            burst: 10,
        }
    }
}

/// A token bucket per host id (only authenticated hosts get one, so the map is bounded by the
/// enrolled hosts).
#[derive(Debug)]
pub(super) struct HeartbeatLimiter {
    rate: HeartbeatRate,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl HeartbeatLimiter {
    pub(super) fn new(rate: HeartbeatRate) -> Self {
        HeartbeatLimiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one heartbeat of `host`'s allowance, or the time after which it may send again.
    pub(super) fn take(&self, host: &str) -> Result<(), Duration> {
        let per_second = f64::from(self.rate.per_minute.max(1)) / 60.0;
        let burst = f64::from(self.rate.burst.max(1));
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(()); // a poisoned lock must not stop every host from reporting
        };
        let bucket = match buckets.get_mut(host) {
            Some(b) => b,
            None => buckets.entry(host.to_string()).or_insert((burst, now)),
        };
        let refill = now.saturating_duration_since(bucket.1).as_secs_f64() * per_second;
        *bucket = ((bucket.0 + refill).min(burst), now);
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - bucket.0) / per_second).clamp(1.0, 3600.0),
            ))
        }
    }
}

/// Authentication failures: counted (for metrics) and logged at most once per
/// [`FailureLog::EVERY`], with how many were not logged in between.
#[derive(Debug, Default)]
pub(super) struct FailureLog {
    total: AtomicU64,
    last: Mutex<Option<(Instant, u64)>>,
}

impl FailureLog {
    const EVERY: Duration = Duration::from_secs(10);

    pub(super) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub(super) fn record(&self, peer: IpAddr, reason: &str) {
        let total = self.total.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let now = Instant::now();
        if let Some((at, logged_total)) = *last {
            if now.saturating_duration_since(at) < Self::EVERY {
                return;
            }
            let unlogged = total.saturating_sub(logged_total).saturating_sub(1);
            tracing::warn!(%peer, reason, total, unlogged, "authentication failed");
        } else {
            tracing::warn!(%peer, reason, total, "authentication failed");
        }
        *last = Some((now, total));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_gets_its_burst_then_waits_while_others_are_not_affected() {
        let l = HeartbeatLimiter::new(HeartbeatRate {
            per_minute: 60,
            burst: 3,
        });
        for _ in 0..3 {
            assert!(l.take("a").is_ok());
        }
        let wait = l.take("a").unwrap_err();
        assert!(
            wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        assert!(l.take("b").is_ok(), "the limit is per host");
    }

    #[test]
    fn failures_are_counted_even_when_not_logged() {
        let f = FailureLog::default();
        for _ in 0..5 {
            f.record(IpAddr::from([127, 0, 0, 1]), "test");
        }
        assert_eq!(f.total(), 5);
    }
}
