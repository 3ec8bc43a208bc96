//! `request-logs`: the batch of finished requests the `request-log`
//! built-in sees, and what it ships.

use gatehouse_protocol::telemetry::LogRecord;

use super::HostState;
use crate::keys::ID_LEN;
use crate::plugins::bindings::gatehouse::plugin::request_logs::{
    self, RequestFields, RequestRecord, Shipped, TextColumn, TextField,
};
use crate::plugins::bindings::gatehouse::plugin::types;
use crate::plugins::runtime::PluginFailure;
use crate::telemetry::{RequestOutcome, ShippedLog};

impl From<&RequestOutcome> for types::LogEntry {
    /// A finished request as `on-log` gets it.
    fn from(outcome: &RequestOutcome) -> Self {
        Self {
            request_id: outcome.request_id.clone(),
            method: outcome.method.as_str().to_owned(),
            path: outcome.uri.path().to_owned(),
            route_id: outcome.route_id.as_deref().map(str::to_owned),
            consumer_id: outcome.consumer_id.as_ref().map(ToString::to_string),
            status: outcome.status,
            latency_ms: outcome.latency_ms,
        }
    }
}

/// A finished request as the request log sees it, with the text `fields`
/// asked for (the others empty or none).
fn request_record(outcome: &RequestOutcome, fields: RequestFields) -> RequestRecord {
    let mut consumer = [0; ID_LEN];
    let record = outcome.log_fields(&mut consumer);
    let text = |field, value: &str| {
        if fields.contains(field) {
            value.to_owned()
        } else {
            String::new()
        }
    };
    let optional =
        |field, value: Option<&str>| value.filter(|_| fields.contains(field)).map(str::to_owned);
    RequestRecord {
        request_id: text(RequestFields::REQUEST_ID, record.request_id),
        method: text(RequestFields::METHOD, record.method),
        path: text(RequestFields::PATH, record.path),
        route_id: optional(RequestFields::ROUTE_ID, record.route_id),
        service_id: optional(RequestFields::SERVICE_ID, record.service_id),
        consumer_id: optional(RequestFields::CONSUMER_ID, record.consumer_id),
        status: outcome.status,
        latency_ms: outcome.latency_ms,
        client_ip: text(RequestFields::CLIENT_IP, record.client_ip),
        bytes_in: outcome.bytes_in,
        bytes_out: outcome.bytes_out,
        at_ms: outcome.at_ms,
    }
}

/// What the request log shipped for the batch `finished`, in the order
/// shipped. Measured requests are moved out of `finished` (copied when
/// shipped twice), which is emptied; when an entry names a request past
/// the batch, nothing is taken and the answer is invalid.
#[expect(
    clippy::vec_box,
    reason = "boxed by the hot path: unboxing copies each request"
)]
pub(in crate::plugins) fn shipped_records(
    shipped: Vec<Shipped>,
    finished: &mut Vec<Box<RequestOutcome>>,
) -> Result<Vec<ShippedLog>, PluginFailure> {
    let batch = finished.len();
    if let Some(index) = shipped.iter().find_map(|entry| match entry {
        Shipped::Measured(index) if *index as usize >= batch => Some(*index),
        _ => None,
    }) {
        return Err(PluginFailure::InvalidOutput(format!(
            "shipped finished request {index} of a batch of {batch}"
        )));
    }
    let mut measured: Vec<Option<Box<RequestOutcome>>> = finished.drain(..).map(Some).collect();
    // Where each measured request went, to copy it when shipped again.
    let mut placed = vec![usize::MAX; batch];
    let mut logs = Vec::with_capacity(shipped.len());
    for entry in shipped {
        let log = match entry {
            Shipped::Measured(index) => {
                let index = index as usize;
                match measured[index].take() {
                    Some(outcome) => {
                        placed[index] = logs.len();
                        ShippedLog::Measured(outcome)
                    }
                    None => ShippedLog::clone(&logs[placed[index]]),
                }
            }
            Shipped::Changed(changed) => ShippedLog::Changed(Box::new(log_record(changed))),
        };
        logs.push(log);
    }
    Ok(logs)
}

/// A record the request log changed, as a log record (its id empty).
fn log_record(shipped: RequestRecord) -> LogRecord {
    LogRecord {
        id: String::new(),
        request_id: shipped.request_id,
        method: shipped.method,
        path: shipped.path,
        route_id: shipped.route_id,
        service_id: shipped.service_id,
        consumer_id: shipped.consumer_id,
        status_code: i64::from(shipped.status),
        latency_ms: shipped.latency_ms,
        client_ip: shipped.client_ip,
        bytes_in: i64::try_from(shipped.bytes_in).unwrap_or(i64::MAX),
        bytes_out: i64::try_from(shipped.bytes_out).unwrap_or(i64::MAX),
        at_ms: shipped.at_ms,
    }
}

impl request_logs::Host for HostState {
    fn finished(&mut self, fields: RequestFields) -> Vec<RequestRecord> {
        self.finished
            .iter()
            .map(|record| request_record(record, fields))
            .collect()
    }

    fn finished_text(&mut self, field: TextField) -> TextColumn {
        fn text_of(outcome: &RequestOutcome, field: TextField) -> &str {
            match field {
                TextField::RequestId => &outcome.request_id,
                TextField::Method => outcome.method.as_str(),
                TextField::Path => outcome.uri.path(),
                TextField::ClientIp => &outcome.client_ip,
            }
        }
        let text_of = |outcome| text_of(outcome, field);
        let bytes = self.finished.iter().map(|o| text_of(o).len()).sum();
        let mut text = String::with_capacity(bytes);
        let mut ends = Vec::with_capacity(self.finished.len());
        for outcome in &self.finished {
            text.push_str(text_of(outcome));
            // A batch's text is far below 4 GiB (the request log's calls
            // take about 1 MiB of it).
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        }
        TextColumn { text, ends }
    }

    fn ship(&mut self, entries: Vec<Shipped>) {
        self.shipped = entries;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::host::SharedState;
    #[test]
    fn shipped_entries_take_measured_records_by_index() {
        let batch: Vec<_> = ["/a", "/b", "/c"]
            .map(|path| Box::new(RequestOutcome::example(path)))
            .into();
        let records = |logs: &[ShippedLog]| logs.iter().map(ShippedLog::record).collect::<Vec<_>>();
        let mut finished = batch.clone();
        let changed = RequestRecord {
            request_id: "req /b".into(),
            method: "GET".into(),
            path: "/b-cut".into(),
            route_id: None,
            service_id: None,
            consumer_id: None,
            status: 200,
            latency_ms: 0.0,
            client_ip: String::new(),
            bytes_in: 0,
            bytes_out: 0,
            at_ms: 0,
        };
        let shipped = vec![
            Shipped::Measured(2),
            Shipped::Changed(changed),
            Shipped::Measured(2),
            Shipped::Measured(0),
        ];
        let logs = records(&shipped_records(shipped, &mut finished).expect("valid"));
        let paths: Vec<_> = logs.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/c", "/b-cut", "/c", "/a"],
            "in shipped order, twice is twice"
        );
        let measured = records(
            &batch
                .iter()
                .cloned()
                .map(ShippedLog::Measured)
                .collect::<Vec<_>>(),
        );
        assert_eq!(logs[0], measured[2]);
        assert_eq!(logs[2], measured[2], "a second shipping is a copy");
        assert_eq!(logs[3], measured[0]);
        assert!(
            finished.is_empty(),
            "request 1, not shipped as measured, is not logged"
        );

        let mut finished = batch.clone();
        let invalid = shipped_records(
            vec![Shipped::Measured(0), Shipped::Measured(3)],
            &mut finished,
        );
        assert!(
            matches!(&invalid, Err(PluginFailure::InvalidOutput(m)) if m.contains("request 3 of a batch of 3")),
            "{invalid:?}"
        );
        assert_eq!(finished.len(), 3, "nothing taken from the batch");
    }

    #[test]
    fn a_text_column_holds_one_field_of_every_request_in_order() {
        use request_logs::Host as _;
        let mut host = super::super::test_state(&SharedState::default());
        host.finished = ["/a", "/long/path", "/"]
            .map(|path| Box::new(RequestOutcome::example(path)))
            .into();
        host.finished[1].client_ip = "2001:db8::1".into();
        let paths = host.finished_text(TextField::Path);
        assert_eq!(paths.text, "/a/long/path/");
        assert_eq!(paths.ends, [2, 12, 13]);
        let ips = host.finished_text(TextField::ClientIp);
        assert_eq!(ips.text, "10.0.0.72001:db8::110.0.0.7");
        assert_eq!(ips.ends, [8, 19, 27]);
        let methods = host.finished_text(TextField::Method);
        assert_eq!(methods.text, "GETGETGET");
        assert_eq!(methods.ends, [3, 6, 9]);
        host.finished.clear();
        let empty = host.finished_text(TextField::RequestId);
        assert!(empty.text.is_empty() && empty.ends.is_empty());
    }
}
