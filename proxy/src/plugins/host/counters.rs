//! `counters`: node-local counters, and rate-limit checks by the node's
//! limiter (fleet-wide through Redis when the node has `--redis-url`).

use std::time::Instant;

use super::{HostState, lock};
use crate::plugins::bindings::gatehouse::plugin::counters;

impl counters::Host for HostState {
    fn increment(&mut self, name: String, delta: i64) -> i64 {
        let mut counters = lock(&self.ctx.shared.counters);
        let value = counters.entry(name).or_insert(0);
        *value = value.saturating_add(delta);
        *value
    }

    async fn check_rate(&mut self, key: String, per_minute: u64) -> counters::LimitDecision {
        let waiting = Instant::now();
        let decision = self
            .ctx
            .shared
            .limiter
            .check(&self.ctx.tenant, &key, per_minute)
            .await;
        self.host_wait += waiting.elapsed();
        counters::LimitDecision {
            allowed: decision.allowed,
            limit: decision.limit,
            remaining: decision.remaining,
            reset_seconds: decision.reset_seconds,
            retry_after_seconds: decision.retry_after_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::host::SharedState;
    use counters::Host as _;
    #[tokio::test]
    async fn rate_checks_share_the_node_limiter_and_refusals_take_nothing() {
        let shared = SharedState::default();
        let mut allowed = 0;
        for _ in 0..10 {
            if super::super::test_state(&shared)
                .check_rate("k".into(), 5)
                .await
                .allowed
            {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5, "a burst up to the per-minute limit, no more");
        let refused = super::super::test_state(&shared)
            .check_rate("k".into(), 5)
            .await;
        assert!(!refused.allowed);
        assert!(refused.retry_after_seconds >= 1);
        assert_eq!(refused.remaining, 0);
        assert!(
            super::super::test_state(&shared)
                .check_rate("other".into(), 5)
                .await
                .allowed
        );
    }

    #[test]
    fn counters_are_shared_across_calls() {
        let shared = SharedState::default();
        assert_eq!(
            super::super::test_state(&shared).increment("hits".into(), 2),
            2
        );
        assert_eq!(
            super::super::test_state(&shared).increment("hits".into(), 3),
            5
        );
    }
}
