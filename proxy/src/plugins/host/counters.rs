//! `counters`: the plugin's own counters on the node (see `store` for
//! their limits and expiry), and rate-limit checks by the node's limiter
//! (fleet-wide through Redis when the node has `--redis-url`) in the
//! plugin's own buckets.

use std::time::{Duration, Instant};

use super::HostState;
use super::store::Refusal;
use crate::plugins::bindings::gatehouse::plugin::counters;

impl counters::Host for HostState {
    fn increment(
        &mut self,
        name: String,
        delta: i64,
        expires_in_seconds: Option<u32>,
    ) -> Result<i64, counters::CounterError> {
        let ttl = expires_in_seconds.map(|s| Duration::from_secs(s.into()));
        self.store()
            .counters
            .add(&name, delta, ttl, Instant::now())
            .map_err(|refusal| match refusal {
                Refusal::Full => counters::CounterError::Full,
                Refusal::TooLarge => counters::CounterError::NameTooLong,
            })
    }

    fn get(&mut self, name: String) -> Option<i64> {
        self.store().counters.get(&name, Instant::now()).copied()
    }

    async fn check_rate(&mut self, key: String, per_minute: u64) -> counters::LimitDecision {
        let waiting = Instant::now();
        let decision = self
            .ctx
            .shared
            .limiter
            .check(&self.ctx.tenant, &self.bucket(&key), per_minute)
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
    fn counters_last_across_calls_within_the_plugin() {
        let shared = SharedState::default();
        let mut first = super::super::test_state(&shared);
        assert_eq!(first.increment("hits".into(), 2, None), Ok(2));
        let mut second = super::super::test_state(&shared);
        assert_eq!(second.increment("hits".into(), 3, None), Ok(5));
        assert_eq!(second.get("hits".into()), Some(5));
        assert_eq!(
            second.increment("h".repeat(257), 1, None),
            Err(counters::CounterError::NameTooLong)
        );
    }

    #[tokio::test]
    async fn tenant_plugins_have_their_own_rate_buckets() {
        let shared = SharedState::default();
        let ctx = super::super::test_state(&shared).ctx;
        let mut one = HostState::new(ctx.clone(), "one".into(), false, 1 << 20);
        let mut other = HostState::new(ctx.clone(), "other".into(), false, 1 << 20);
        let mut builtin = HostState::new(ctx, "rate-limit".into(), true, 1 << 20);
        assert!(one.check_rate("ip:1".into(), 1).await.allowed);
        assert!(!one.check_rate("ip:1".into(), 1).await.allowed);
        assert!(
            other.check_rate("ip:1".into(), 1).await.allowed,
            "not one's bucket"
        );
        assert!(
            builtin.check_rate("ip:1".into(), 1).await.allowed,
            "not the built-in's"
        );
    }
}
