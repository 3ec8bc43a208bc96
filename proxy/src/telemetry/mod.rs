//! What a node reports: a record of every request (including those it
//! answered itself), per-minute metrics, error occurrences and health-check
//! results. The hot path hands an [`Event`] to [`Telemetry::emit`] without
//! waiting; the `aggregator` seals events into batches; the `outbox` keeps
//! them (memory, then the state dir) until the control plane acks them; a
//! [`LogWriter`] (the request-log built-in, `plugins::request_log`) writes a
//! sealed batch's request log; `health` checks the services.

pub mod aggregator;
pub mod health;
pub mod outbox;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gatehouse_protocol::telemetry::{ErrorOccurrence, HealthResult, LogFields, LogRecord};
use serde::{Serialize, Serializer};
use tokio::sync::mpsc;

use crate::keys::{ConsumerId, ID_LEN, IdBuffer};
use crate::metrics::TelemetryGauges;
use outbox::Outbox;

/// Events the hot path can queue before new ones are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 65_536;

/// One finished request as the hot path hands it over: what the node
/// measured (for metrics, error events and, when the node ships request
/// logs, the request log), and the failure worth an error event if there
/// was one. What the request shares with the config or the session (the
/// route's ids, the consumer's, the URI) is held by reference count, not
/// copied: the worker allocates nothing for it, and the background thread
/// writes the log record.
#[derive(Debug, Clone)]
pub struct RequestOutcome {
    pub request_id: String,
    pub method: http::Method,
    /// The request's URI (its path is logged, without the query string).
    pub uri: http::Uri,
    pub route_id: Option<Arc<str>>,
    pub service_id: Option<Arc<str>>,
    pub consumer_id: Option<ConsumerId>,
    /// 0 when no response was written.
    pub status: u16,
    pub latency_ms: f64,
    pub client_ip: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// When the request arrived, epoch milliseconds.
    pub at_ms: i64,
    pub failure: Option<Failure>,
}

impl RequestOutcome {
    /// The request's log record as it is encoded (its id left empty: the
    /// control plane derives it); a UUID consumer id is written into
    /// `consumer`.
    pub fn log_fields<'a>(&'a self, consumer: &'a mut IdBuffer) -> LogFields<'a> {
        LogFields {
            id: "",
            request_id: &self.request_id,
            method: self.method.as_str(),
            path: self.uri.path(),
            route_id: self.route_id.as_deref(),
            service_id: self.service_id.as_deref(),
            consumer_id: self.consumer_id.as_ref().map(|id| id.as_str(consumer)),
            status_code: i64::from(self.status),
            latency_ms: self.latency_ms,
            client_ip: &self.client_ip,
            bytes_in: i64::try_from(self.bytes_in).unwrap_or(i64::MAX),
            bytes_out: i64::try_from(self.bytes_out).unwrap_or(i64::MAX),
            at_ms: self.at_ms,
        }
    }
}

#[cfg(test)]
impl RequestOutcome {
    /// A finished `GET path` with every field set (a test's request).
    pub(crate) fn example(path: &str) -> Self {
        Self {
            request_id: format!("req {path}"),
            method: http::Method::GET,
            uri: http::Uri::try_from(path).expect("a path"),
            route_id: Some(Arc::from("r1")),
            service_id: Some(Arc::from("s1")),
            consumer_id: Some(ConsumerId::new("c1")),
            status: 201,
            latency_ms: 1.5,
            client_ip: "10.0.0.7".into(),
            bytes_in: 12,
            bytes_out: 1024,
            at_ms: 1_800_000_000_000,
            failure: None,
        }
    }
}

/// A request's log as the node ships it: the outcome as measured (encoded
/// straight from it, no record of owned strings built in between), or the
/// record the request log changed it into.
#[derive(Debug, Clone)]
pub enum ShippedLog {
    Measured(Box<RequestOutcome>),
    Changed(Box<LogRecord>),
}

impl ShippedLog {
    /// The log as an owned record.
    pub fn record(&self) -> LogRecord {
        self.with_fields(|fields| LogRecord::from(fields))
    }

    /// Calls `f` with the log's fields, as they are encoded.
    fn with_fields<R>(&self, f: impl FnOnce(LogFields<'_>) -> R) -> R {
        match self {
            Self::Measured(outcome) => {
                let mut consumer: IdBuffer = [0; ID_LEN];
                f(outcome.log_fields(&mut consumer))
            }
            Self::Changed(record) => f(record.fields()),
        }
    }
}

impl Serialize for ShippedLog {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_fields(|fields| fields.serialize(serializer))
    }
}

/// An upstream failure worth an error event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: &'static str,
    /// What happened, for a person.
    pub message: String,
    /// The underlying error's own text, for operators.
    pub detail: Option<String>,
    /// The tenant plugin it is about, if any (built-ins have no id).
    pub plugin_id: Option<String>,
}

/// What writes the request log of a sealed batch: the node's
/// `request-log` built-in (`plugins::request_log`), handed to the
/// aggregator so telemetry needs nothing of the plugins.
pub trait LogWriter {
    /// The logs of the `finished` requests (in order), a failure of the
    /// writer's own reported in `errors`.
    fn write(
        &self,
        finished: Vec<Box<RequestOutcome>>,
        errors: &mut Vec<ErrorOccurrence>,
        at_ms: i64,
    ) -> impl std::future::Future<Output = Vec<ShippedLog>> + Send;
}

/// Something to report.
#[derive(Debug, Clone)]
pub enum Event {
    Request(Box<RequestOutcome>),
    Health(HealthResult),
    /// A failure of the node itself, not of one request (Redis lost, ...).
    Error(ErrorOccurrence),
}

/// The hot path's side of telemetry: a bounded queue.
#[derive(Debug, Clone)]
pub struct Telemetry {
    sender: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
}

impl Telemetry {
    /// A queue and its receiving end (for the aggregator).
    pub fn new() -> (Self, mpsc::Receiver<Event>) {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        (
            Self {
                sender,
                dropped: Arc::default(),
            },
            receiver,
        )
    }

    /// Queues an event; never waits. A full queue drops it and counts it.
    pub fn emit(&self, event: Event) {
        if self.sender.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped because the queue was full, since start; reading
    /// resets nothing.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The shared counter, for the aggregator to report drops.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }
}

/// Reads the telemetry gauges of `/metrics`.
pub fn gauges(telemetry: &Telemetry, outbox: &Mutex<Outbox>) -> TelemetryGauges {
    let outbox = outbox.lock().unwrap_or_else(|p| p.into_inner());
    TelemetryGauges {
        dropped: telemetry.dropped() + outbox.dropped_records(),
        waiting_batches: outbox.len(),
        spilled_bytes: outbox.spilled_bytes(),
    }
}
