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

    async fn check_rate(
        &mut self,
        key: String,
        per_minute: u64,
    ) -> wasmtime::Result<counters::LimitDecision> {
        // Time waiting on Redis is not the plugin's, so the deadline alone
        // would not bound a call that checks in a loop.
        self.rate_checks += 1;
        if self.rate_checks > MAX_RATE_CHECKS {
            wasmtime::bail!("more than {MAX_RATE_CHECKS} check-rate calls in one call");
        }
        let waiting = Instant::now();
        let decision = self
            .ctx
            .shared
            .limiter
            .check(&self.ctx.tenant, &self.bucket(&key), per_minute)
            .await;
        self.host_wait += waiting.elapsed();
        Ok(counters::LimitDecision {
            allowed: decision.allowed,
            limit: decision.limit,
            remaining: decision.remaining,
            reset_seconds: decision.reset_seconds,
            retry_after_seconds: decision.retry_after_seconds,
        })
    }
}

/// The most `check-rate` calls one call of a plugin makes; the next traps.
pub const MAX_RATE_CHECKS: u32 = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::host::{MAX_BUCKET_KEY, SharedState, test_state};
    use counters::Host as _;

    /// One check by `host`, which is within the call's cap.
    async fn check(host: &mut HostState, key: &str, per_minute: u64) -> counters::LimitDecision {
        host.check_rate(key.into(), per_minute)
            .await
            .expect("within the checks a call may make")
    }

    #[tokio::test]
    async fn rate_checks_share_the_node_limiter_and_refusals_take_nothing() {
        let shared = SharedState::default();
        let mut allowed = 0;
        for _ in 0..10 {
            if check(&mut test_state(&shared), "k", 5).await.allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5, "a burst up to the per-minute limit, no more");
        let refused = check(&mut test_state(&shared), "k", 5).await;
        assert!(!refused.allowed);
        assert!(refused.retry_after_seconds >= 1);
        assert_eq!(refused.remaining, 0);
        assert!(check(&mut test_state(&shared), "other", 5).await.allowed);
    }

    #[tokio::test]
    async fn a_call_makes_a_bounded_number_of_rate_checks() {
        let shared = SharedState::default();
        let mut host = test_state(&shared);
        for _ in 0..MAX_RATE_CHECKS {
            check(&mut host, "k", 1_000).await;
        }
        let err = host
            .check_rate("k".into(), 1_000)
            .await
            .expect_err("one check too many traps the call");
        assert!(
            err.to_string().contains("more than 32 check-rate calls"),
            "{err}"
        );
        let mut next = test_state(&shared);
        assert!(
            check(&mut next, "k", 1_000).await.allowed,
            "the next call starts afresh"
        );
    }

    #[tokio::test]
    async fn long_bucket_keys_are_kept_by_their_digest() {
        let shared = SharedState::default();
        let mut host = test_state(&shared);
        let long = "x".repeat(1 << 20);
        let bucket = host.bucket(&long);
        assert!(
            bucket.len() <= MAX_BUCKET_KEY + 80,
            "{} bytes",
            bucket.len()
        );
        assert_eq!(bucket, host.bucket(&long), "the same key, the same bucket");
        let other = format!("{}y", "x".repeat((1 << 20) - 1));
        assert_ne!(bucket, host.bucket(&other));
        assert!(check(&mut host, &long, 1).await.allowed);
        assert!(!check(&mut host, &long, 1).await.allowed, "one bucket");
        assert!(check(&mut host, &other, 1).await.allowed, "another bucket");
        let short = "y".repeat(MAX_BUCKET_KEY);
        assert!(
            host.bucket(&short).ends_with(&short),
            "short keys are kept as they are"
        );
    }

    #[test]
    fn counters_last_across_calls_within_the_plugin() {
        let shared = SharedState::default();
        let mut first = test_state(&shared);
        assert_eq!(first.increment("hits".into(), 2, None), Ok(2));
        let mut second = test_state(&shared);
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
        let ctx = test_state(&shared).ctx;
        let mut one = HostState::new(ctx.clone(), "one".into(), false, 1 << 20);
        let mut other = HostState::new(ctx.clone(), "other".into(), false, 1 << 20);
        let mut builtin = HostState::new(ctx, "rate-limit".into(), true, 1 << 20);
        assert!(check(&mut one, "ip:1", 1).await.allowed);
        assert!(!check(&mut one, "ip:1", 1).await.allowed);
        assert!(
            check(&mut other, "ip:1", 1).await.allowed,
            "not one's bucket"
        );
        assert!(
            check(&mut builtin, "ip:1", 1).await.allowed,
            "not the built-in's"
        );
    }
}
