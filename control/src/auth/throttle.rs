//! Failure throttling for the auth endpoints: after `limit` failures for one
//! key (an email, a client IP) within a window, further attempts are refused
//! until the window that began with the first failure ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;

/// Counts failures per key in fixed windows, in memory, bounded in size.
#[derive(Clone)]
pub struct Throttle {
    limit: u32,
    window: Duration,
    failures: Cache<String, Arc<Window>>,
}

struct Window {
    started: Instant,
    count: AtomicU32,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Throttle {
    /// Allows `limit` failures per key per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            failures: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(window)
                .build(),
        }
    }

    /// `Err(seconds)` to wait when `key` has used up its failures.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        match self.failures.get(key) {
            Some(window) if window.count.load(Ordering::Relaxed) >= self.limit => {
                let left = self.window.saturating_sub(window.started.elapsed());
                Err(left.as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts one failure for `key`.
    pub fn record_failure(&self, key: &str) {
        let window = self.failures.get_with_by_ref(key, || {
            Arc::new(Window {
                started: Instant::now(),
                count: AtomicU32::new(0),
            })
        });
        window.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets the failures of `key` (after a success).
    pub fn reset(&self, key: &str) {
        self.failures.invalidate(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_limit_and_resets_on_success() {
        let throttle = Throttle::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(throttle.check("a@x").is_ok());
            throttle.record_failure("a@x");
        }
        let wait = throttle.check("a@x").expect_err("throttled");
        assert!((1..=60).contains(&wait));
        assert!(throttle.check("b@x").is_ok(), "keys are independent");
        throttle.reset("a@x");
        assert!(throttle.check("a@x").is_ok());
    }
}
