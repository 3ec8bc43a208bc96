//! Fleet-wide buckets in Redis: one Lua script per decision does the whole
//! GCRA step atomically (read the TAT, decide, store it with an expiry) on
//! Redis's clock, so every node of a tenant shares each bucket and together
//! they allow exactly the limit. The hot path never waits for a connection:
//! with none it answers "unavailable" at once (the limiter falls back), and
//! a call that fails or outlasts the timeout drops the connection; a
//! background task reconnects. Losing and regaining Redis is counted in the
//! node's metrics and reported as an error event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use gatehouse_protocol::telemetry::ErrorOccurrence;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};
use tokio::sync::{Notify, watch};

use super::Decision;
use crate::metrics::Metrics;
use crate::telemetry::aggregator::now_ms;
use crate::telemetry::{Event, Telemetry};

/// GCRA in microseconds on Redis's clock; the arithmetic of `gcra::decide`.
/// KEYS[1]: the bucket. ARGV[1]: requests per minute. Returns
/// `{allowed, remaining, reset_us, retry_after_us}`.
const GCRA_SCRIPT: &str = r"
local per_minute = tonumber(ARGV[1])
local interval = math.max(math.floor(60000000 / per_minute), 1)
local burst = interval * per_minute
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat - (burst - interval)
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, per_minute - math.ceil((new_tat - now) / interval), new_tat - now, 0}
";

const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// The shared buckets.
pub struct Fleet {
    client: Client,
    script: Script,
    timeout: Duration,
    connection: ArcSwapOption<MultiplexedConnection>,
    lost: Notify,
    /// An outage was reported and Redis is not back yet.
    down: AtomicBool,
    telemetry: Telemetry,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("timeout", &self.timeout)
            .field("connected", &self.connection.load().is_some())
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// Checks `url` (it does not connect: [`Fleet::maintain`] does).
    pub fn new(
        url: &str,
        timeout: Duration,
        telemetry: Telemetry,
        metrics: Arc<Metrics>,
    ) -> redis::RedisResult<Self> {
        Ok(Self {
            client: Client::open(url)?,
            script: Script::new(GCRA_SCRIPT),
            timeout,
            connection: ArcSwapOption::empty(),
            lost: Notify::new(),
            down: AtomicBool::new(false),
            telemetry,
            metrics,
        })
    }

    /// The shared decision, or `None` when Redis cannot give one in time.
    pub async fn check(&self, tenant: &str, key: &str, per_minute: u64) -> Option<Decision> {
        let decision = self.shared_decision(tenant, key, per_minute).await;
        if decision.is_none() {
            self.metrics.rate_limit_fallback();
        }
        decision
    }

    async fn shared_decision(&self, tenant: &str, key: &str, per_minute: u64) -> Option<Decision> {
        let connection = self.connection.load_full()?;
        let mut connection = MultiplexedConnection::clone(&connection);
        let bucket = format!("gatehouse:rl:{tenant}:{per_minute}:{key}");
        let mut invocation = self.script.key(bucket);
        invocation.arg(per_minute);
        let call = invocation.invoke_async::<(u64, u64, u64, u64)>(&mut connection);
        let reason = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((allowed, remaining, reset_us, retry_us))) => {
                return Some(Decision {
                    allowed: allowed == 1,
                    limit: per_minute,
                    remaining,
                    reset_seconds: reset_us.div_ceil(1_000_000),
                    retry_after_seconds: if allowed == 1 {
                        0
                    } else {
                        retry_us.div_ceil(1_000_000).max(1)
                    },
                });
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        self.lose(&reason);
        None
    }

    /// Drops the connection after a failure and wakes the reconnecting task.
    fn lose(&self, reason: &str) {
        if self.connection.swap(None).is_some() {
            self.report_down(reason);
            self.lost.notify_one();
        }
    }

    /// Reports an outage once: a log line, the metric, an error event.
    fn report_down(&self, reason: &str) {
        if self.down.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::warn!(
            reason,
            "Redis unavailable: rate limits fall back to this node's share"
        );
        self.metrics.rate_limit_fleet_up(false);
        self.telemetry.emit(Event::Error(ErrorOccurrence {
            kind: "rate_limit_fallback".to_owned(),
            detail: None,
            message: format!(
                "Redis unavailable ({reason}); rate limits are enforced per node \
                 with a share of each limit until it is back"
            ),
            route_id: None,
            service_id: None,
            plugin_id: None,
            status_code: None,
            at_ms: now_ms(),
        }));
    }

    /// Keeps a connection while the node runs: connects, waits until the hot
    /// path loses it, reconnects with backoff. Runs on the background thread.
    pub async fn maintain(&self, mut stop: watch::Receiver<bool>) {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(self.timeout));
        let mut backoff = RECONNECT_MIN;
        loop {
            if *stop.borrow() {
                return;
            }
            if self.connection.load().is_none() {
                match self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                {
                    Ok(connection) => {
                        tracing::info!("rate limits are fleet-wide, through Redis");
                        self.connection.store(Some(Arc::new(connection)));
                        self.down.store(false, Ordering::Relaxed);
                        self.metrics.rate_limit_fleet_up(true);
                        backoff = RECONNECT_MIN;
                    }
                    Err(err) => {
                        self.report_down(&err.to_string());
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.changed() => return,
                        }
                        backoff = (backoff * 2).min(RECONNECT_MAX);
                        continue;
                    }
                }
            }
            tokio::select! {
                _ = self.lost.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::{FleetSize, MAX_PER_MINUTE, RateLimiter};

    fn redis_url() -> String {
        std::env::var("GATEHOUSE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
    }

    /// Limits a plugin may ask for that Redis's arithmetic cannot take (0,
    /// beyond a double's integers) are decided in Redis within bounds; none
    /// of them passes for Redis going away.
    #[tokio::test]
    async fn any_limit_a_plugin_asks_for_is_decided_in_redis() {
        let (telemetry, _events) = Telemetry::new();
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let fleet = Arc::new(
            Fleet::new(&redis_url(), Duration::from_secs(2), telemetry, metrics).expect("a URL"),
        );
        let (_stop, stopped) = watch::channel(false);
        let maintained = Arc::clone(&fleet);
        tokio::spawn(async move { maintained.maintain(stopped).await });
        for _ in 0..100 {
            if fleet.connection.load().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            fleet.connection.load().is_some(),
            "Redis at {}",
            redis_url()
        );
        let limiter = RateLimiter::shared(Arc::clone(&fleet), Arc::new(FleetSize::default()));
        let bucket = format!("limits-{}", uuid::Uuid::new_v4());
        let first = limiter.check("t", &bucket, 0).await;
        assert!(first.allowed && first.limit == 1, "{first:?}");
        let second = limiter.check("t", &bucket, 0).await;
        assert!(!second.allowed, "one a minute: {second:?}");
        let huge = limiter.check("t", &bucket, u64::MAX).await;
        assert!(huge.allowed && huge.limit == MAX_PER_MINUTE, "{huge:?}");
        assert!(!fleet.down.load(Ordering::Relaxed), "Redis was never lost");
        assert!(fleet.connection.load().is_some());
    }
}
