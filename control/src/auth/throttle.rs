//! Failure throttling for the auth endpoints: after `limit` failures for one
//! key (an email, a client IP) within a window, further attempts are refused
//! until the window that began with the first failure ends. Every attempt
//! is counted before it is tried and a success takes its count back. The counts live
//! in the database (`auth_failures`), so every control-plane replica behind
//! a load balancer counts and refuses alike; keys are stored as SHA-256
//! hashes, so the table names no email or address.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::secrets::sha256_hex;
use crate::store::{Store, Timestamp};

/// Failures recorded between sweeps of expired windows.
const SWEEP_EVERY: u32 = 64;

/// Counts failures per key in fixed windows.
#[derive(Debug, Clone)]
pub struct Throttle {
    /// Keeps this throttle's keys apart from the others' in the table.
    namespace: &'static str,
    limit: u32,
    window: Duration,
    recorded: Arc<AtomicU32>,
}

impl Throttle {
    /// Allows `limit` failures per key per `window`.
    pub fn new(namespace: &'static str, limit: u32, window: Duration) -> Self {
        Self {
            namespace,
            limit,
            window,
            recorded: Arc::default(),
        }
    }

    fn row_key(&self, key: &str) -> String {
        sha256_hex(format!("{}:{key}", self.namespace))
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX)
    }

    /// Counts an attempt for `key` before it is tried, and refuses it
    /// (`Err(seconds to wait)`) when it is one past the limit of the window.
    /// Counted first, in one statement, so attempts sent at once (to one
    /// replica or several) cannot all pass before any is counted; a success
    /// takes its count back ([`forgive`](Self::forgive) or
    /// [`reset`](Self::reset)).
    pub async fn attempt(&self, store: &Store, key: &str) -> Result<Result<(), u64>, sqlx::Error> {
        let now = Timestamp::now();
        let expired = now.add_millis(-self.window_ms());
        let (failures, started): (i64, i64) = sqlx::query_as(
            "INSERT INTO auth_failures (throttle_key, failures, window_started) VALUES ($1, 1, $2) \
             ON CONFLICT (throttle_key) DO UPDATE SET \
             failures = CASE WHEN auth_failures.window_started <= $3 THEN 1 \
                ELSE auth_failures.failures + 1 END, \
             window_started = CASE WHEN auth_failures.window_started <= $3 THEN $2 \
                ELSE auth_failures.window_started END \
             RETURNING failures, window_started",
        )
        .bind(self.row_key(key))
        .bind(now)
        .bind(expired)
        .fetch_one(store.pool())
        .await?;
        if self
            .recorded
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            sqlx::query("DELETE FROM auth_failures WHERE window_started <= $1")
                .bind(expired)
                .execute(store.pool())
                .await?;
        }
        if failures <= i64::from(self.limit) {
            return Ok(Ok(()));
        }
        let left_ms = self.window_ms() - (now.millis() - started);
        Ok(Err(u64::try_from((left_ms + 999) / 1000)
            .unwrap_or(1)
            .max(1)))
    }

    /// Takes back the count of an attempt that succeeded.
    pub async fn forgive(&self, store: &Store, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE auth_failures SET failures = failures - 1 \
             WHERE throttle_key = $1 AND failures > 0",
        )
        .bind(self.row_key(key))
        .execute(store.pool())
        .await?;
        Ok(())
    }

    /// Forgets the failures of `key` (after a success).
    pub async fn reset(&self, store: &Store, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM auth_failures WHERE throttle_key = $1")
            .bind(self.row_key(key))
            .execute(store.pool())
            .await?;
        Ok(())
    }
}
