//! Reconnect delays: exponential backoff with full jitter, so a fleet that
//! lost its control plane does not reconnect in lockstep.

use std::time::Duration;

use gatehouse_protocol::sync::HEARTBEAT_INTERVAL_MS;
use rand::Rng;

/// The first reconnect delay's upper bound.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// The largest reconnect delay: a heartbeat, so a node that lost its
/// control plane is back within one once it returns.
const BACKOFF_MAX: Duration = Duration::from_millis(HEARTBEAT_INTERVAL_MS);

/// The delay before reconnect attempt `attempt`: uniformly random up to an
/// exponentially growing bound.
pub fn backoff(attempt: u32) -> Duration {
    let millis = u64::try_from(bound(attempt).as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(rand::rng().random_range(millis / 10..=millis))
}

fn bound(attempt: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(2_u32.saturating_pow(attempt.min(16)))
        .min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        for attempt in 0..40 {
            let delay = backoff(attempt);
            assert!(delay <= bound(attempt), "{attempt}: {delay:?}");
        }
        assert!(backoff(40) <= BACKOFF_MAX);
        let spread: std::collections::HashSet<_> = (0..50).map(|_| backoff(5)).collect();
        assert!(spread.len() > 1, "jittered");
    }
}
