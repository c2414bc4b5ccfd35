//! The agent as a daemon: a cycle, then a pause of the poll interval (the manager's policy,
//! else the configuration) plus jitter, for ever.

use crate::Agent;

impl Agent {
    /// Seconds until the next poll: the manager's policy, else the configuration.
    pub fn poll_interval(&self) -> u64 {
        self.policy()
            .map(|p| p.poll_interval)
            .filter(|p| *p > 0)
            .unwrap_or(self.config.poll_interval)
    }

    /// Run cycles until the process ends; a failed cycle is logged and the next one runs.
    pub fn run(&self) -> ! {
        loop {
            match self.cycle() {
                Ok(r) if !r.installed.is_empty() || !r.patches.is_empty() => {
                    tracing::info!(installed = ?r.installed, patches = ?r.patches, source = ?r.source, "cycle done")
                }
                Ok(_) => tracing::debug!("cycle done, nothing changed"),
                Err(e) => tracing::error!(error = %e, "cycle failed"),
            }
            std::thread::sleep(next_poll(self.poll_interval()));
        }
    }
}

/// Seconds to wait before the next poll: the interval plus up to 10 % random jitter.
pub fn next_poll(interval: u64) -> std::time::Duration {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    let r = ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map(|()| u32::from_le_bytes(b))
        .unwrap_or(0);
    let jitter_ms = u128::from(interval) * 100 * u128::from(r) / u128::from(u32::MAX);
    std::time::Duration::from_secs(interval).saturating_add(std::time::Duration::from_millis(
        u64::try_from(jitter_ms).unwrap_or(u64::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_is_the_interval_plus_at_most_ten_percent() {
        for interval in [1, 300, 86_400] {
            let d = next_poll(interval);
            assert!(d >= std::time::Duration::from_secs(interval));
            assert!(
                d <= std::time::Duration::from_millis(interval * 1100),
                "{d:?}"
            );
        }
        // An absurd interval from a policy does not overflow.
        assert!(next_poll(u64::MAX) >= std::time::Duration::from_secs(u64::MAX));
    }
}
