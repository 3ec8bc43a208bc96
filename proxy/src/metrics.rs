//! The node's Prometheus metrics, served on the admin listener: requests by
//! route and status, upstream latency, service health, the config version
//! served, the state of the link to the control plane, and telemetry
//! delivery, whether rate limits are fleet-wide, and slow clients cut off.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::sync::SyncStatus;

/// Every metric of the node, in its own registry.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    upstream_latency: HistogramVec,
    config_version: IntGauge,
    sync_connected: IntGauge,
    sync_rejected: IntGauge,
    snapshots: IntGauge,
    upstream_up: IntGaugeVec,
    plugin_failures: IntCounterVec,
    telemetry_dropped: IntGauge,
    telemetry_waiting: IntGauge,
    telemetry_spilled: IntGauge,
    rate_limit_fleet_up: IntGauge,
    rate_limit_fallbacks: IntCounter,
    fleet_nodes: IntGauge,
    slow_clients: IntCounter,
}

/// The state of the node's telemetry, for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TelemetryGauges {
    /// Records dropped since start (queue or outbox full).
    pub dropped: u64,
    /// Batches waiting for the control plane's ack.
    pub waiting_batches: usize,
    /// Bytes of batches spilled to the state dir.
    pub spilled_bytes: u64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers the metrics. Fails only on a programming error (a bad name).
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("gatehouse".to_owned()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "requests_total",
                "Requests handled, by route (`none` when no route matched) and status",
            ),
            &["route", "status"],
        )?;
        let upstream_latency = HistogramVec::new(
            HistogramOpts::new(
                "upstream_latency_seconds",
                "Time from sending the request upstream to its response header",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["route"],
        )?;
        let config_version = IntGauge::new(
            "config_version",
            "Version of the config being served (-1: none yet)",
        )?;
        let sync_connected =
            IntGauge::new("sync_connected", "1 while connected to the control plane")?;
        let sync_rejected = IntGauge::new(
            "sync_rejected",
            "1 when the control plane rejected the gateway key",
        )?;
        let snapshots = IntGauge::new(
            "sync_snapshots_received",
            "Configs installed since start (from snapshots or deltas)",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(upstream_latency.clone()))?;
        registry.register(Box::new(config_version.clone()))?;
        registry.register(Box::new(sync_connected.clone()))?;
        registry.register(Box::new(sync_rejected.clone()))?;
        registry.register(Box::new(snapshots.clone()))?;
        let upstream_up = IntGaugeVec::new(
            Opts::new(
                "upstream_up",
                "1 when the service's last health check passed, 0 when it failed",
            ),
            &["service"],
        )?;
        let telemetry_dropped = IntGauge::new(
            "telemetry_dropped_total",
            "Telemetry records dropped (buffers full)",
        )?;
        let telemetry_waiting = IntGauge::new(
            "telemetry_batches_waiting",
            "Telemetry batches not yet acked",
        )?;
        let telemetry_spilled = IntGauge::new(
            "telemetry_spilled_bytes",
            "Telemetry spilled to the state dir",
        )?;
        registry.register(Box::new(upstream_up.clone()))?;
        let plugin_failures = IntCounterVec::new(
            Opts::new(
                "plugin_failures_total",
                "Plugin calls that failed, by plugin and reason (timeout, out_of_memory, trap, unavailable)",
            ),
            &["plugin", "reason"],
        )?;
        registry.register(Box::new(plugin_failures.clone()))?;
        registry.register(Box::new(telemetry_dropped.clone()))?;
        registry.register(Box::new(telemetry_waiting.clone()))?;
        registry.register(Box::new(telemetry_spilled.clone()))?;
        let rate_limit_fleet_up = IntGauge::new(
            "rate_limit_fleet_up",
            "1 while rate-limit decisions are made in Redis (fleet-wide); 0 when local \
             (no --redis-url, or Redis unreachable)",
        )?;
        let rate_limit_fallbacks = IntCounter::new(
            "rate_limit_fallback_decisions_total",
            "Rate-limit decisions made locally with the node's share because Redis was unreachable",
        )?;
        registry.register(Box::new(rate_limit_fleet_up.clone()))?;
        registry.register(Box::new(rate_limit_fallbacks.clone()))?;
        let fleet_nodes = IntGauge::new(
            "fleet_nodes",
            "The tenant's connected nodes as the control plane last said (a node's share \
             of a fleet-wide limit while Redis is unreachable is the limit divided by this)",
        )?;
        registry.register(Box::new(fleet_nodes.clone()))?;
        let slow_clients = IntCounter::new(
            "slow_clients_closed_total",
            "Connections closed because a request's headers did not arrive within \
             --header-timeout-ms (slow or idle clients)",
        )?;
        registry.register(Box::new(slow_clients.clone()))?;
        config_version.set(-1);
        Ok(Self {
            rate_limit_fleet_up,
            rate_limit_fallbacks,
            fleet_nodes,
            slow_clients,
            upstream_up,
            plugin_failures,
            telemetry_dropped,
            telemetry_waiting,
            telemetry_spilled,
            registry,
            requests,
            upstream_latency,
            config_version,
            sync_connected,
            sync_rejected,
            snapshots,
        })
    }

    /// Counts one finished request.
    pub fn request(&self, route: Option<&str>, status: u16) {
        let status = status.to_string();
        self.requests
            .with_label_values(&[route.unwrap_or("none"), status.as_str()])
            .inc();
    }

    /// Records one upstream round trip.
    pub fn upstream_latency(&self, route: &str, seconds: f64) {
        self.upstream_latency
            .with_label_values(&[route])
            .observe(seconds);
    }

    /// Counts a failed plugin call.
    pub fn plugin_failure(&self, plugin: &str, reason: &str) {
        self.plugin_failures
            .with_label_values(&[plugin, reason])
            .inc();
    }

    /// Whether rate-limit decisions go through Redis.
    pub fn rate_limit_fleet_up(&self, up: bool) {
        self.rate_limit_fleet_up.set(i64::from(up));
    }

    /// Counts a decision made locally because Redis was unreachable.
    pub fn rate_limit_fallback(&self) {
        self.rate_limit_fallbacks.inc();
    }

    /// Counts a connection closed for not sending a request's headers in time.
    pub fn slow_client_closed(&self) {
        self.slow_clients.inc();
    }

    /// Records a health check's result.
    pub fn upstream_up(&self, service: &str, up: bool) {
        self.upstream_up
            .with_label_values(&[service])
            .set(i64::from(up));
    }

    /// The Prometheus text exposition, with the gauges brought up to date.
    pub fn render(
        &self,
        version: Option<i64>,
        sync: &SyncStatus,
        telemetry: TelemetryGauges,
    ) -> String {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.telemetry_dropped.set(clamp(telemetry.dropped));
        self.telemetry_waiting
            .set(clamp(telemetry.waiting_batches as u64));
        self.telemetry_spilled.set(clamp(telemetry.spilled_bytes));
        self.config_version.set(version.unwrap_or(-1));
        self.sync_connected.set(i64::from(sync.connected()));
        self.sync_rejected.set(i64::from(sync.rejected()));
        self.fleet_nodes.set(i64::from(sync.fleet_size().get()));
        self.snapshots
            .set(i64::try_from(sync.snapshots()).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %err, "metrics not encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_sync_state() {
        let metrics = Metrics::new().expect("registers");
        metrics.request(Some("r1"), 200);
        metrics.request(Some("r1"), 200);
        metrics.request(None, 404);
        metrics.upstream_latency("r1", 0.003);
        metrics.upstream_up("s1", false);
        let gauges = TelemetryGauges {
            dropped: 3,
            waiting_batches: 1,
            spilled_bytes: 0,
        };
        let text = metrics.render(Some(7), &SyncStatus::default(), gauges);
        assert!(
            text.contains(r#"gatehouse_upstream_up{service="s1"} 0"#),
            "{text}"
        );
        assert!(text.contains("gatehouse_telemetry_dropped_total 3"));
        assert!(
            text.contains(r#"gatehouse_requests_total{route="r1",status="200"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"gatehouse_requests_total{route="none",status="404"} 1"#));
        assert!(text.contains(r#"gatehouse_upstream_latency_seconds_count{route="r1"} 1"#));
        assert!(text.contains("gatehouse_config_version 7"));
        assert!(text.contains("gatehouse_sync_connected 0"));
    }
}
