//! What a plugin may call, and the limits of its store: its route config,
//! consumer lookup by key or id, rate-limit checks (the node's
//! [`RateLimiter`]: local, or fleet-wide through Redis), node-local counters
//! and key-value (tenant-scoped: one node serves one tenant), and a memory
//! limiter that remembers when it refused growth (so the failure reads "out
//! of memory", not just "trap"); for the `request-log` built-in, the
//! batch of finished requests and what it ships.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use gatehouse_protocol::telemetry::LogRecord;

use super::bindings::gatehouse::plugin::request_logs::{
    self, RequestFields, RequestRecord, Shipped, TextColumn, TextField,
};
use super::bindings::gatehouse::plugin::{config, consumers, counters, kv, log, types};
use super::runtime::{CallContext, PluginFailure};
use crate::keys::{Consumer, ID_LEN};
use crate::ratelimit::RateLimiter;
use crate::telemetry::{RequestOutcome, ShippedLog};

/// State shared by every call of a node's plugins: the rate limiter,
/// counters and key-value.
#[derive(Debug, Default, Clone)]
pub struct SharedState {
    limiter: Arc<RateLimiter>,
    counters: Arc<Mutex<HashMap<String, i64>>>,
    kv: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl SharedState {
    /// Shared state deciding rate limits with `limiter`.
    pub fn new(limiter: Arc<RateLimiter>) -> Self {
        Self {
            limiter,
            ..Self::default()
        }
    }
}

/// One call's store data.
pub struct HostState {
    pub(super) limits: MemoryCap,
    plugin: String,
    ctx: CallContext,
    started: Instant,
    /// Time spent waiting on host I/O (Redis), which is not the plugin's.
    host_wait: Duration,
    /// This thread's CPU time when the wall-clock deadline first ran out.
    cpu_mark: Option<Duration>,
    /// Lines written to the node's log in this call.
    log_lines: u32,
    /// The empty WASI context, built on a plugin's first WASI call.
    wasi: Option<Box<Wasi>>,
    /// The requests being logged (an `on-log` call of the request log).
    #[expect(
        clippy::vec_box,
        reason = "boxed by the hot path: unboxing copies each request"
    )]
    pub(super) finished: Vec<Box<RequestOutcome>>,
    /// What the request log shipped during the call.
    pub(super) shipped: Vec<Shipped>,
}

/// WASI as plugins get it: no environment, arguments, files, sockets or
/// name lookups; stdin closed, stdout and stderr discarded; clocks and
/// random from the host (language runtimes need them).
struct Wasi {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl Wasi {
    fn empty() -> Box<Self> {
        let ctx = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Box::new(Self {
            ctx,
            table: ResourceTable::new(),
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let wasi = self.wasi.get_or_insert_with(Wasi::empty);
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut wasi.table,
        }
    }
}

impl HostState {
    pub fn new(ctx: CallContext, plugin: String, max_memory: usize) -> Self {
        Self {
            limits: MemoryCap {
                max: max_memory,
                refused: false,
            },
            plugin,
            ctx,
            started: Instant::now(),
            host_wait: Duration::ZERO,
            cpu_mark: None,
            log_lines: 0,
            wasi: None,
            finished: Vec::new(),
            shipped: Vec::new(),
        }
    }

    /// Readies a kept instance's state for another call: everything as a
    /// fresh store's, the plugin and its memory cap kept.
    pub fn begin_call(&mut self, ctx: CallContext) {
        *self = Self::new(ctx, std::mem::take(&mut self.plugin), self.limits.max);
    }

    /// What to do when the epoch deadline of a call with `deadline` runs
    /// out. First, wall-clock time less the host's I/O waits must reach the
    /// deadline; then — so that a busy machine preempting the thread never
    /// cuts a well-behaved plugin — the thread must also have spent the
    /// deadline in CPU time since. A plugin spinning on an idle machine is
    /// cut after about twice the deadline. Returns the time left, or `None`
    /// to interrupt.
    pub fn time_left(&mut self, deadline: Duration) -> Option<Duration> {
        let spent = self.started.elapsed().saturating_sub(self.host_wait);
        if let Some(left) = deadline.checked_sub(spent).filter(|l| !l.is_zero()) {
            return Some(left);
        }
        let cpu = thread_cpu_time();
        let mark = *self.cpu_mark.get_or_insert(cpu);
        deadline
            .checked_sub(cpu.saturating_sub(mark))
            .filter(|l| !l.is_zero())
    }
}

/// CPU time this thread has used.
fn thread_cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// Caps linear memory; remembers a refusal.
pub struct MemoryCap {
    max: usize,
    pub(super) refused: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn write(&mut self, level: log::Level, message: String) {
        let (plugin, request_id) = (self.plugin.as_str(), &*self.ctx.request_id);
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(
                    plugin,
                    request_id,
                    "the plugin's further log lines in this call are dropped \
                     (at most {MAX_LOG_LINES} a call)"
                );
            }
            return;
        }
        // Written in its debug form: quoted, with line breaks, quotes and
        // other control or invisible characters escaped, so one call is one
        // line and its text cannot pass for another line or for the fields.
        let message = cut(&message, MAX_LOG_MESSAGE);
        match level {
            log::Level::Debug => tracing::debug!(plugin, request_id, message = ?message),
            log::Level::Info => tracing::info!(plugin, request_id, message = ?message),
            log::Level::Warn => tracing::warn!(plugin, request_id, message = ?message),
            log::Level::Error => tracing::error!(plugin, request_id, message = ?message),
        }
    }
}

/// The longest message a plugin's log line carries, in bytes of UTF-8.
pub const MAX_LOG_MESSAGE: usize = 1024;
/// The most log lines a plugin writes in one call; later ones are dropped.
pub const MAX_LOG_LINES: u32 = 32;

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl config::Host for HostState {
    fn get_json(&mut self) -> String {
        if self.ctx.config_json.is_empty() {
            "{}".to_owned()
        } else {
            self.ctx.config_json.to_string()
        }
    }
}

fn plugin_view(consumer: &Consumer) -> consumers::Consumer {
    consumers::Consumer {
        id: consumer.id.to_string(),
        rate_limit_tier: consumer.rate_limit_tier.to_string(),
    }
}

impl consumers::Host for HostState {
    fn by_key(&mut self, key: String) -> Option<consumers::Consumer> {
        let consumer = self.ctx.keys.as_ref()?.lookup(&key)?;
        Some(plugin_view(&consumer))
    }

    fn by_id(&mut self, id: String) -> Option<consumers::Consumer> {
        let consumer = self.ctx.keys.as_ref()?.by_id(&id)?;
        Some(plugin_view(&consumer))
    }
}

impl counters::Host for HostState {
    fn increment(&mut self, name: String, delta: i64) -> i64 {
        let mut counters = lock(&self.ctx.shared.counters);
        let value = counters.entry(name).or_insert(0);
        *value = value.saturating_add(delta);
        *value
    }

    async fn check_rate(&mut self, key: String, per_minute: u64) -> counters::LimitDecision {
        let waiting = Instant::now();
        let decision = self
            .ctx
            .shared
            .limiter
            .check(&self.ctx.tenant, &key, per_minute)
            .await;
        self.host_wait += waiting.elapsed();
        counters::LimitDecision {
            allowed: decision.allowed,
            limit: decision.limit,
            remaining: decision.remaining,
            reset_seconds: decision.reset_seconds,
            retry_after_seconds: decision.retry_after_seconds,
        }
    }
}

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
pub(super) fn shipped_records(
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

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        lock(&self.ctx.shared.kv).get(&key).cloned()
    }

    fn set(&mut self, key: String, value: Vec<u8>) {
        lock(&self.ctx.shared.kv).insert(key, value);
    }

    fn delete(&mut self, key: String) {
        lock(&self.ctx.shared.kv).remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use counters::Host as _;

    fn state(shared: &SharedState) -> HostState {
        let ctx = CallContext {
            shared: shared.clone(),
            ..CallContext::default()
        };
        HostState::new(ctx, "t".into(), 1 << 20)
    }

    #[test]
    fn log_messages_are_cut_to_a_kib_of_bytes_at_a_character_boundary() {
        // 'é' is two bytes: 512 of them fill the limit.
        let long = "é".repeat(2000);
        assert_eq!(cut(&long, MAX_LOG_MESSAGE).len(), MAX_LOG_MESSAGE);
        assert_eq!(
            cut(&format!("a{long}"), MAX_LOG_MESSAGE).len(),
            MAX_LOG_MESSAGE - 1
        );
        assert_eq!(cut("plain", MAX_LOG_MESSAGE), "plain");
        // The debug form the line is written in keeps it one line.
        let forged = "ok\n2026-01-01 ERROR forged\" plugin=\"other\u{2028}\u{1b}[31m";
        let written = format!("{:?}", cut(forged, MAX_LOG_MESSAGE));
        assert!(
            !written.chars().any(|c| c.is_control() || c == '\u{2028}'),
            "{written}"
        );
        assert!(written.contains(r#"\" plugin=\"other"#), "{written}");
    }

    #[tokio::test]
    async fn rate_checks_share_the_node_limiter_and_refusals_take_nothing() {
        let shared = SharedState::default();
        let mut allowed = 0;
        for _ in 0..10 {
            if state(&shared).check_rate("k".into(), 5).await.allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5, "a burst up to the per-minute limit, no more");
        let refused = state(&shared).check_rate("k".into(), 5).await;
        assert!(!refused.allowed);
        assert!(refused.retry_after_seconds >= 1);
        assert_eq!(refused.remaining, 0);
        assert!(state(&shared).check_rate("other".into(), 5).await.allowed);
    }

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
        let mut host = state(&SharedState::default());
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

    #[test]
    fn counters_are_shared_across_calls() {
        let shared = SharedState::default();
        assert_eq!(state(&shared).increment("hits".into(), 2), 2);
        assert_eq!(state(&shared).increment("hits".into(), 3), 5);
    }
}
