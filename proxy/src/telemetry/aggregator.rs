//! Turns events into batches: request records go into the minute metrics of
//! their route (counts and a latency histogram) and, when the node ships
//! request logs, through the request log into the batch's logs; upstream
//! failures become error occurrences, health results pass through. A batch
//! is sealed every flush interval (or sooner when many logs wait) and put in
//! the outbox.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_protocol::histogram;
use gatehouse_protocol::telemetry::{ErrorOccurrence, MinuteMetrics, TelemetryBatch};
use hdrhistogram::Histogram;
use tokio::sync::{Notify, mpsc, watch};

use super::LogWriter;
use super::outbox::Outbox;
use super::{Event, RequestOutcome, ShippedLog};

/// How often a batch is sealed.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// How often the event queue is drained.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(20);
/// Seal early once this many logs wait.
pub const MAX_LOGS_PER_BATCH: usize = 2_000;
const MINUTE_MS: i64 = 60_000;
/// Minutes older than this (relative to the newest seen) take no more updates.
const MINUTES_KEPT: i64 = 2;

struct Minute {
    /// Changed since the last seal.
    dirty: bool,
    requests: i64,
    client_errors: i64,
    errors: i64,
    latency: Histogram<u64>,
}

impl Minute {
    fn new() -> Self {
        Self {
            dirty: false,
            requests: 0,
            client_errors: 0,
            errors: 0,
            latency: histogram::new_histogram(),
        }
    }
}

/// Accumulates events until the next seal.
pub struct Aggregator {
    node_id: String,
    /// Whether requests are kept for the request log.
    keep_logs: bool,
    /// The requests to log, as measured (moved in as the hot path boxed
    /// them: nothing is copied for the log until it is encoded).
    #[expect(
        clippy::vec_box,
        reason = "boxed by the hot path: unboxing copies each request"
    )]
    finished: Vec<Box<RequestOutcome>>,
    errors: Vec<ErrorOccurrence>,
    health: Vec<gatehouse_protocol::telemetry::HealthResult>,
    /// By minute, then route: a request's route is looked up by reference,
    /// with no key to allocate.
    minutes: BTreeMap<i64, BTreeMap<String, Minute>>,
    newest_minute: i64,
    reported_drops: u64,
}

impl Aggregator {
    /// An aggregator for `node_id`'s batches; with `keep_logs`, every
    /// request's record is kept for the request log.
    pub fn new(node_id: String, keep_logs: bool) -> Self {
        Self {
            node_id,
            keep_logs,
            finished: Vec::new(),
            errors: Vec::new(),
            health: Vec::new(),
            minutes: BTreeMap::new(),
            newest_minute: 0,
            reported_drops: 0,
        }
    }

    /// Takes one event in.
    pub fn add(&mut self, event: Event) {
        match event {
            Event::Request(outcome) => self.add_request(outcome),
            Event::Health(result) => self.health.push(result),
            Event::Error(occurrence) => self.errors.push(occurrence),
        }
    }

    fn add_request(&mut self, mut outcome: Box<RequestOutcome>) {
        let minute = outcome.at_ms - outcome.at_ms.rem_euclid(MINUTE_MS);
        let route = outcome.route_id.as_deref().unwrap_or("none");
        let routes = self.minutes.entry(minute).or_default();
        // Looked up before inserting: `entry` would need an owned key for
        // every request, not just a route's first of the minute.
        if !routes.contains_key(route) {
            routes.insert(route.to_owned(), Minute::new());
        }
        let Some(entry) = routes.get_mut(route) else {
            return; // inserted just above
        };
        entry.dirty = true;
        entry.requests += 1;
        match outcome.status {
            400..=499 => entry.client_errors += 1,
            500..=599 => entry.errors += 1,
            _ => {}
        }
        entry
            .latency
            .saturating_record(((outcome.latency_ms * 1000.0) as u64).max(1));
        self.newest_minute = self.newest_minute.max(minute);
        if let Some(failure) = outcome.failure.take() {
            self.errors.push(ErrorOccurrence {
                kind: failure.kind.to_owned(),
                detail: failure.detail,
                message: failure.message,
                route_id: outcome.route_id.as_deref().map(str::to_owned),
                service_id: outcome.service_id.as_deref().map(str::to_owned),
                plugin_id: failure.plugin_id,
                status_code: Some(i64::from(outcome.status)),
                at_ms: outcome.at_ms,
            });
        }
        if self.keep_logs {
            self.finished.push(outcome);
        }
    }

    /// Whether enough logs wait to seal before the interval ends.
    pub fn is_full(&self) -> bool {
        self.finished.len() >= MAX_LOGS_PER_BATCH
    }

    /// Notes events lost before they reached the aggregator (full queue,
    /// full outbox), as one error occurrence per seal.
    pub fn report_drops(&mut self, total_dropped: u64, at_ms: i64) {
        let new = total_dropped.saturating_sub(self.reported_drops);
        if new > 0 {
            self.reported_drops = total_dropped;
            self.errors.push(ErrorOccurrence {
                kind: "telemetry_dropped".to_owned(),
                detail: None,
                message: format!(
                    "{new} telemetry records dropped by node {} (buffers full)",
                    self.node_id
                ),
                route_id: None,
                service_id: None,
                plugin_id: None,
                status_code: None,
                at_ms,
            });
        }
    }

    /// Everything since the last seal (None when there is nothing): a batch
    /// of errors, health and the cumulative counts of every minute that
    /// changed, its logs still to write from the requests to log.
    pub fn seal(&mut self) -> Option<Sealed> {
        let mut metrics = Vec::new();
        for (&minute_ms, routes) in &mut self.minutes {
            for (route, minute) in routes.iter_mut().filter(|(_, m)| m.dirty) {
                minute.dirty = false;
                metrics.push(MinuteMetrics {
                    route_id: route.clone(),
                    minute_ms,
                    request_count: minute.requests,
                    client_error_count: minute.client_errors,
                    error_count: minute.errors,
                    latency_histogram: histogram::encode(&minute.latency),
                });
            }
        }
        let horizon = self.newest_minute - MINUTES_KEPT * MINUTE_MS;
        self.minutes.retain(|minute, _| *minute > horizon);
        let sealed = Sealed {
            batch: TelemetryBatch {
                batch_id: uuid::Uuid::new_v4().to_string(),
                node_id: self.node_id.clone(),
                logs: Vec::new(),
                metrics,
                errors: std::mem::take(&mut self.errors),
                health: std::mem::take(&mut self.health),
            },
            finished: std::mem::take(&mut self.finished),
        };
        (!sealed.batch.is_empty() || !sealed.finished.is_empty()).then_some(sealed)
    }
}

/// A sealed batch, its logs still to write: the request log writes them
/// from `finished` (as the aggregator took the requests in, in order).
pub struct Sealed {
    pub batch: TelemetryBatch<ShippedLog>,
    pub finished: Vec<Box<RequestOutcome>>,
}

/// Runs the aggregator until `shutdown`: drains events every
/// [`DRAIN_INTERVAL`], seals a batch every [`FLUSH_INTERVAL`], writes its
/// request log with `request_log`, puts it into `outbox` and wakes the
/// shipper. Seals once more before returning, so a clean stop loses
/// nothing.
pub async fn run(
    mut aggregator: Aggregator,
    request_log: Option<impl LogWriter>,
    mut events: mpsc::Receiver<Event>,
    outbox: Arc<Mutex<Outbox>>,
    sealed: Arc<Notify>,
    dropped: Arc<AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
) {
    // The queue is drained on a short timer rather than awaited: awaiting
    // it would wake this thread for every request, and those wake-ups (a
    // context switch each) cost the worker threads more than the telemetry
    // itself.
    let mut drain = tokio::time::interval(DRAIN_INTERVAL);
    let mut last_seal = tokio::time::Instant::now();
    let seal = async |aggregator: &mut Aggregator| {
        let total_dropped = dropped.load(Ordering::Relaxed) + lock(&outbox).dropped_records();
        let now = now_ms();
        aggregator.report_drops(total_dropped, now);
        if let Some(Sealed {
            mut batch,
            finished,
        }) = aggregator.seal()
        {
            if let Some(request_log) = &request_log {
                batch.logs = request_log.write(finished, &mut batch.errors, now).await;
            }
            lock(&outbox).push(batch);
            sealed.notify_one();
        }
    };
    loop {
        tokio::select! {
            _ = drain.tick() => {}
            _ = shutdown.changed() => break,
        }
        let closed = loop {
            match events.try_recv() {
                Ok(event) => {
                    aggregator.add(event);
                    if aggregator.is_full() {
                        seal(&mut aggregator).await;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break false,
                Err(mpsc::error::TryRecvError::Disconnected) => break true,
            }
        };
        if closed {
            break;
        }
        if last_seal.elapsed() >= FLUSH_INTERVAL {
            seal(&mut aggregator).await;
            last_seal = tokio::time::Instant::now();
        }
    }
    while let Ok(event) = events.try_recv() {
        aggregator.add(event);
    }
    seal(&mut aggregator).await;
}

fn lock(outbox: &Mutex<Outbox>) -> std::sync::MutexGuard<'_, Outbox> {
    outbox.lock().unwrap_or_else(|p| p.into_inner())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::super::Failure;
    use super::*;

    fn outcome(route: Option<&str>, status: u16, latency_us: u64, at_ms: i64) -> Event {
        Event::Request(Box::new(RequestOutcome {
            route_id: route.map(Arc::from),
            status,
            latency_ms: latency_us as f64 / 1000.0,
            at_ms,
            failure: (status == 502).then(|| Failure {
                plugin_id: None,
                detail: None,
                kind: "upstream_unavailable",
                message: "refused".into(),
            }),
            ..RequestOutcome::example("/x?q=1")
        }))
    }

    #[test]
    fn seals_logs_errors_and_cumulative_minutes() {
        let mut agg = Aggregator::new("n1".into(), true);
        assert!(agg.seal().is_none());
        let t = 1_800_000_000_000;
        agg.add(outcome(Some("r1"), 200, 1000, t));
        agg.add(outcome(Some("r1"), 404, 2000, t + 1));
        agg.add(outcome(Some("r1"), 502, 3000, t + 2));
        agg.add(outcome(None, 404, 10, t + 3));
        let Sealed { batch, finished } = agg.seal().expect("a batch");
        assert_eq!(finished.len(), 4);
        assert_eq!(batch.errors.len(), 1);
        assert_eq!(batch.errors[0].kind, "upstream_unavailable");
        let r1 = batch
            .metrics
            .iter()
            .find(|m| m.route_id == "r1")
            .expect("r1");
        assert_eq!(
            (r1.request_count, r1.client_error_count, r1.error_count),
            (3, 1, 1)
        );
        assert!(batch.metrics.iter().any(|m| m.route_id == "none"));

        // The next seal carries only what changed, cumulatively.
        agg.add(outcome(Some("r1"), 200, 1000, t + 5));
        let next = agg.seal().expect("a batch").batch;
        assert_eq!(next.metrics.len(), 1);
        assert_eq!(next.metrics[0].request_count, 4);
        assert_ne!(next.batch_id, batch.batch_id);
    }

    #[test]
    fn without_request_logs_requests_count_in_metrics_and_errors_only() {
        let mut agg = Aggregator::new("n1".into(), false);
        agg.add(outcome(Some("r1"), 502, 1000, 1_800_000_000_000));
        let Sealed { batch, finished } = agg.seal().expect("a batch");
        assert!(finished.is_empty());
        assert_eq!(batch.metrics.len(), 1);
        assert_eq!(batch.errors.len(), 1);
    }

    #[test]
    fn drops_are_reported_once() {
        let mut agg = Aggregator::new("n1".into(), false);
        agg.report_drops(5, 1);
        agg.report_drops(5, 2);
        let batch = agg.seal().expect("batch").batch;
        assert_eq!(batch.errors.len(), 1);
        assert_eq!(batch.errors[0].kind, "telemetry_dropped");
        assert!(batch.errors[0].message.starts_with("5 "));
    }
}
