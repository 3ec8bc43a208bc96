//! Telemetry a gateway node ships to the control plane: request logs,
//! per-minute metrics, error occurrences and health-check results, in
//! numbered batches that the control plane stores exactly once and acks.

use serde::{Deserialize, Serialize};

/// One batch; the node keeps it until the control plane acks its id.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryBatch {
    /// Unique per batch (a UUID): a batch delivered twice is stored once.
    pub batch_id: String,
    /// The node that produced it.
    pub node_id: String,
    #[serde(default)]
    pub logs: Vec<LogRecord>,
    #[serde(default)]
    pub metrics: Vec<MinuteMetrics>,
    #[serde(default)]
    pub errors: Vec<ErrorOccurrence>,
    #[serde(default)]
    pub health: Vec<HealthResult>,
}

impl TelemetryBatch {
    /// Whether there is nothing to ship.
    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
            && self.metrics.is_empty()
            && self.errors.is_empty()
            && self.health.is_empty()
    }
}

/// One request the node handled or answered itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    /// A UUID made by the node.
    pub id: String,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub route_id: Option<String>,
    pub service_id: Option<String>,
    pub consumer_id: Option<String>,
    pub status_code: i64,
    pub latency_ms: f64,
    pub client_ip: String,
    pub bytes_in: i64,
    pub bytes_out: i64,
    /// When the request arrived, epoch milliseconds.
    pub at_ms: i64,
}

/// What the node counted for one route in one minute so far. Later reports
/// of the same minute replace earlier ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MinuteMetrics {
    /// `none` for requests that matched no route.
    pub route_id: String,
    /// Start of the minute, epoch milliseconds.
    pub minute_ms: i64,
    pub request_count: i64,
    pub client_error_count: i64,
    pub error_count: i64,
    /// Latency histogram in microseconds: hdrhistogram V2, base64.
    pub latency_histogram: String,
}

/// One failure seen by the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorOccurrence {
    /// `upstream_unavailable`, `upstream_timeout`, `upstream_error`,
    /// `telemetry_dropped`, ...
    pub kind: String,
    pub message: String,
    pub route_id: Option<String>,
    pub service_id: Option<String>,
    #[serde(default)]
    pub plugin_id: Option<String>,
    pub status_code: Option<i64>,
    pub at_ms: i64,
}

/// One active health check of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthResult {
    pub service_id: String,
    pub up: bool,
    pub http_status: Option<i64>,
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
    pub at_ms: i64,
}
