//! Writing the request log of a sealed batch (the telemetry aggregator's
//! [`LogWriter`]): the records the node measured
//! go through the `request-log` built-in a chunk at a time — one plugin call
//! per few hundred requests instead of one per request, off the hot path —
//! and what it ships is the batch's logs (their ids left to the control
//! plane, which derives them from the batch). It fails open: when a call fails,
//! that chunk's records are logged as the node measured them, the failure is
//! counted and becomes an error occurrence.

use std::sync::Arc;

use gatehouse_protocol::telemetry::ErrorOccurrence;

use super::builtins::Builtins;
use super::runtime::{CallContext, LoadedPlugin, PluginFailure};
use crate::metrics::Metrics;
use crate::telemetry::{LogWriter, RequestOutcome, ShippedLog};

/// Records per plugin call at most.
const MAX_RECORDS_PER_CALL: usize = 500;
/// Bytes of client-controlled text per plugin call at most (a chunk always
/// takes at least one record, however long): keeps a call well inside the
/// plugin's memory cap when clients send long paths.
const MAX_BYTES_PER_CALL: usize = 1 << 20;

/// The node's request log, when it ships request logs.
#[derive(Debug, Clone)]
pub struct RequestLog {
    plugin: Arc<LoadedPlugin>,
    context: CallContext,
    metrics: Arc<Metrics>,
}

impl RequestLog {
    /// The request log of `builtins`, `None` when the node does not ship
    /// request logs.
    pub fn of(builtins: &Builtins, metrics: &Arc<Metrics>) -> Option<Self> {
        Some(Self {
            plugin: Arc::clone(builtins.request_log.as_ref()?),
            context: builtins.log_context.clone(),
            metrics: Arc::clone(metrics),
        })
    }

    /// The logs of the `finished` requests (in order) as the request log
    /// ships them; a failed call's chunk is kept as measured and reported
    /// in `errors`.
    pub async fn ship(
        &self,
        finished: Vec<Box<RequestOutcome>>,
        errors: &mut Vec<ErrorOccurrence>,
        at_ms: i64,
    ) -> Vec<ShippedLog> {
        let mut logs = Vec::with_capacity(finished.len());
        let mut rest = finished.into_iter().peekable();
        while rest.peek().is_some() {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            while let Some(record) = rest.next_if(|r| {
                chunk.is_empty()
                    || (chunk.len() < MAX_RECORDS_PER_CALL
                        && bytes + text_len(r) <= MAX_BYTES_PER_CALL)
            }) {
                bytes += text_len(&record);
                chunk.push(record);
            }
            match self.plugin.log_requests(&self.context, &mut chunk).await {
                Ok(shipped) => logs.extend(shipped),
                Err(failure) => {
                    errors.push(self.failed(&failure, at_ms));
                    logs.extend(chunk.into_iter().map(ShippedLog::Measured));
                }
            }
        }
        logs
    }

    /// Counts a failed call and describes it as an error occurrence.
    fn failed(&self, failure: &PluginFailure, at_ms: i64) -> ErrorOccurrence {
        tracing::warn!(plugin = "request-log", error = %failure, policy = "fails open", "plugin failed");
        self.metrics.plugin_failure("request-log", failure.reason());
        ErrorOccurrence {
            kind: "plugin_failed".to_owned(),
            detail: None,
            message: format!("request-log (fails open): {failure}"),
            route_id: None,
            service_id: None,
            plugin_id: None,
            status_code: None,
            at_ms,
        }
    }
}

/// The bytes of a request's text (what a client controls is most of it).
fn text_len(request: &RequestOutcome) -> usize {
    request.request_id.len()
        + request.method.as_str().len()
        + request.uri.path().len()
        + request.client_ip.len()
}
impl LogWriter for RequestLog {
    async fn write(
        &self,
        finished: Vec<Box<RequestOutcome>>,
        errors: &mut Vec<ErrorOccurrence>,
        at_ms: i64,
    ) -> Vec<ShippedLog> {
        self.ship(finished, errors, at_ms).await
    }
}
