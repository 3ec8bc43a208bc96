//! Telemetry a gateway node ships to the control plane: request logs,
//! per-minute metrics, error occurrences and health-check results, in
//! numbered batches that the control plane stores exactly once and acks.

use serde::{Deserialize, Serialize, Serializer};

/// One batch; the node keeps it until the control plane acks its id. Its
/// logs are [`LogRecord`]s as the control plane reads them; a node writes
/// them from what it measured, with any type that encodes as a record
/// ([`LogFields`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryBatch<L = LogRecord> {
    /// Unique per batch (a UUID): a batch delivered twice is stored once.
    pub batch_id: String,
    /// The node that produced it.
    pub node_id: String,
    #[serde(default)]
    pub logs: Vec<L>,
    #[serde(default)]
    pub metrics: Vec<MinuteMetrics>,
    #[serde(default)]
    pub errors: Vec<ErrorOccurrence>,
    #[serde(default)]
    pub health: Vec<HealthResult>,
}

impl<L> TelemetryBatch<L> {
    /// Whether there is nothing to ship.
    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
            && self.metrics.is_empty()
            && self.errors.is_empty()
            && self.health.is_empty()
    }
}

/// One request the node handled or answered itself.
///
/// On the wire it is an array of its fields in this order (the keys were a
/// third of a batch's bytes, and most of the node's cost of encoding it);
/// it is read from that array or, as earlier nodes sent and spilled it,
/// from an object with camelCase keys.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    /// Empty from the node: the control plane derives it from the tenant,
    /// the batch id and the record's position, so a batch delivered again
    /// gets the same ids. Earlier nodes sent a UUID of their own.
    #[serde(default)]
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

impl LogRecord {
    /// The record's fields, as they are encoded.
    pub fn fields(&self) -> LogFields<'_> {
        LogFields {
            id: &self.id,
            request_id: &self.request_id,
            method: &self.method,
            path: &self.path,
            route_id: self.route_id.as_deref(),
            service_id: self.service_id.as_deref(),
            consumer_id: self.consumer_id.as_deref(),
            status_code: self.status_code,
            latency_ms: self.latency_ms,
            client_ip: &self.client_ip,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            at_ms: self.at_ms,
        }
    }
}

impl Serialize for LogRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.fields().serialize(serializer)
    }
}

/// A log record's fields, borrowed: encoded as a [`LogRecord`] is, so a
/// node writes its records straight from what it measured, with no record
/// of owned strings built in between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogFields<'a> {
    pub id: &'a str,
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub route_id: Option<&'a str>,
    pub service_id: Option<&'a str>,
    pub consumer_id: Option<&'a str>,
    pub status_code: i64,
    pub latency_ms: f64,
    pub client_ip: &'a str,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub at_ms: i64,
}

impl Serialize for LogFields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (
            self.id,
            self.request_id,
            self.method,
            self.path,
            self.route_id,
            self.service_id,
            self.consumer_id,
            self.status_code,
            self.latency_ms,
            self.client_ip,
            self.bytes_in,
            self.bytes_out,
            self.at_ms,
        )
            .serialize(serializer)
    }
}

impl From<LogFields<'_>> for LogRecord {
    fn from(fields: LogFields<'_>) -> Self {
        Self {
            id: fields.id.to_owned(),
            request_id: fields.request_id.to_owned(),
            method: fields.method.to_owned(),
            path: fields.path.to_owned(),
            route_id: fields.route_id.map(str::to_owned),
            service_id: fields.service_id.map(str::to_owned),
            consumer_id: fields.consumer_id.map(str::to_owned),
            status_code: fields.status_code,
            latency_ms: fields.latency_ms,
            client_ip: fields.client_ip.to_owned(),
            bytes_in: fields.bytes_in,
            bytes_out: fields.bytes_out,
            at_ms: fields.at_ms,
        }
    }
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
    /// What happened, for a person.
    pub message: String,
    /// The underlying error as the node saw it (pingora's text for an
    /// upstream failure), for operators; none when the message says all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LogRecord {
        LogRecord {
            id: String::new(),
            request_id: "r\"1".into(),
            method: "GET".into(),
            path: "/é".into(),
            route_id: Some("route".into()),
            service_id: None,
            consumer_id: Some("c".into()),
            status_code: 404,
            latency_ms: 1.25,
            client_ip: "10.0.0.1".into(),
            bytes_in: 3,
            bytes_out: 1024,
            at_ms: 1_800_000_000_000,
        }
    }

    #[test]
    fn log_records_travel_as_arrays_and_are_read_as_objects_too() {
        let text = serde_json::to_string(&record()).expect("encodes");
        assert_eq!(
            text,
            r#"["","r\"1","GET","/é","route",null,"c",404,1.25,"10.0.0.1",3,1024,1800000000000]"#
        );
        assert_eq!(
            serde_json::from_str::<LogRecord>(&text).expect("decodes"),
            record()
        );
        // As nodes before the array form sent and spilled it.
        let keyed = r#"{"id":"0b7c7f1e-4b9a-4c1d-9a35-2f6d0e8c1a77","requestId":"r\"1","method":"GET",
            "path":"/é","routeId":"route","serviceId":null,"consumerId":"c","statusCode":404,
            "latencyMs":1.25,"clientIp":"10.0.0.1","bytesIn":3,"bytesOut":1024,"atMs":1800000000000}"#;
        let old: LogRecord = serde_json::from_str(keyed).expect("decodes");
        assert_eq!(
            old,
            LogRecord {
                id: "0b7c7f1e-4b9a-4c1d-9a35-2f6d0e8c1a77".into(),
                ..record()
            }
        );
        assert!(
            serde_json::from_str::<LogRecord>(r#"["", "r"]"#).is_err(),
            "fields missing"
        );
    }
}
