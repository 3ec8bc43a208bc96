//! The control plane's own metrics, in Prometheus' text format at
//! `GET /metrics` on `--metrics-listen` (not served unless given), so that
//! its share of a run shows beside the nodes': telemetry ingestion (batches
//! and rows stored, batches being stored, how old their oldest request was
//! when stored), the database (connections in use and idle, the pool's
//! size, write transactions begun and the time spent waiting to begin
//! them), connected gateway nodes, the config snapshots sent to them, and
//! the config writes committed. Every name starts with `gatehouse_control_`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::state::AppState;
use crate::store::Store;

/// What a stored (or refused) telemetry batch came to.
#[derive(Debug, Clone, Copy)]
pub enum BatchOutcome {
    Stored,
    /// Seen before: acknowledged again, not stored twice.
    Duplicate,
    /// Never storable: acknowledged and dropped.
    Invalid,
    /// The database failed: the node sends it again.
    Failed,
}

impl BatchOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Duplicate => "duplicate",
            Self::Invalid => "invalid",
            Self::Failed => "failed",
        }
    }
}

/// One more on a gauge while it lives (an aborted task's too).
pub struct Counted(prometheus::IntGauge);

impl Counted {
    pub fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The control plane's metrics. Cheap to clone (the metrics are shared).
#[derive(Debug, Clone)]
pub struct Instruments {
    registry: Registry,
    batches: IntCounterVec,
    rows: IntCounterVec,
    /// Telemetry batches being stored right now.
    pub batches_in_flight: IntGauge,
    record_age: Histogram,
    /// Gateway nodes connected to this replica.
    pub gateway_connections: IntGauge,
    /// Config snapshots sent to nodes.
    pub snapshots_sent: IntCounter,
    /// Config deltas sent to nodes.
    pub deltas_sent: IntCounter,
    /// Config writes committed (each one config version).
    pub config_writes: IntCounter,
    db_connections: IntGaugeVec,
    db_pool_max: IntGauge,
}

impl Instruments {
    /// The metrics, with `store`'s own (write waits) registered beside them.
    pub fn new(store: &Store) -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("gatehouse_control".to_owned()), None)?;
        let batches = IntCounterVec::new(
            Opts::new(
                "telemetry_batches_total",
                "Telemetry batches received from nodes, by outcome",
            ),
            &["outcome"],
        )?;
        let rows = IntCounterVec::new(
            Opts::new(
                "telemetry_rows_total",
                "Telemetry rows stored, by kind (logs, metrics, errors, health)",
            ),
            &["kind"],
        )?;
        let batches_in_flight = IntGauge::new(
            "telemetry_batches_in_flight",
            "Telemetry batches being stored now",
        )?;
        let record_age = Histogram::with_opts(
            HistogramOpts::new(
                "telemetry_lag_seconds",
                "How old a stored batch's oldest request log was when the batch was stored",
            )
            .buckets(vec![
                0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
            ]),
        )?;
        let gateway_connections = IntGauge::new(
            "gateway_connections",
            "Gateway nodes connected to this replica",
        )?;
        let snapshots_sent = IntCounter::new(
            "config_snapshots_sent_total",
            "Config snapshots sent to gateway nodes",
        )?;
        let deltas_sent = IntCounter::new(
            "config_deltas_sent_total",
            "Config deltas (what changed since the config a node serves) sent to gateway nodes",
        )?;
        let config_writes = IntCounter::new(
            "config_writes_total",
            "Config writes committed (each one new config version)",
        )?;
        let db_connections = IntGaugeVec::new(
            Opts::new("db_connections", "Database pool connections, by state"),
            &["state"],
        )?;
        let db_pool_max = IntGauge::new("db_pool_max_connections", "The database pool's size")?;
        registry.register(Box::new(batches.clone()))?;
        registry.register(Box::new(rows.clone()))?;
        registry.register(Box::new(batches_in_flight.clone()))?;
        registry.register(Box::new(record_age.clone()))?;
        registry.register(Box::new(gateway_connections.clone()))?;
        registry.register(Box::new(snapshots_sent.clone()))?;
        registry.register(Box::new(deltas_sent.clone()))?;
        registry.register(Box::new(config_writes.clone()))?;
        registry.register(Box::new(db_connections.clone()))?;
        registry.register(Box::new(db_pool_max.clone()))?;
        registry.register(Box::new(store.write_waits().begins.clone()))?;
        registry.register(Box::new(store.write_waits().waited.clone()))?;
        Ok(Self {
            registry,
            batches,
            rows,
            batches_in_flight,
            record_age,
            gateway_connections,
            snapshots_sent,
            deltas_sent,
            config_writes,
            db_connections,
            db_pool_max,
        })
    }

    /// Counts a telemetry batch's outcome; for a stored one, its rows by
    /// kind and (when it has request logs) the age of its oldest.
    pub fn batch(
        &self,
        outcome: BatchOutcome,
        rows: [(&'static str, usize); 4],
        oldest_ms: Option<i64>,
    ) {
        self.batches.with_label_values(&[outcome.label()]).inc();
        if !matches!(outcome, BatchOutcome::Stored) {
            return;
        }
        for (kind, count) in rows {
            self.rows
                .with_label_values(&[kind])
                .inc_by(u64::try_from(count).unwrap_or(0));
        }
        if let Some(oldest) = oldest_ms {
            let age_ms = crate::store::Timestamp::now().millis() - oldest;
            #[allow(clippy::cast_precision_loss)]
            self.record_age.observe(age_ms.max(0) as f64 / 1000.0);
        }
    }

    /// The metrics as Prometheus text, the pool's state read now.
    pub fn render(&self, store: &Store) -> String {
        let pool = store.pool();
        let size = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        self.db_connections
            .with_label_values(&["in_use"])
            .set((size - idle).max(0));
        self.db_connections.with_label_values(&["idle"]).set(idle);
        self.db_pool_max
            .set(i64::from(pool.options().get_max_connections()));
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %err, "control-plane metrics not rendered");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Serves `GET /metrics` on `listener` until aborted.
pub fn serve(
    listener: TcpListener,
    state: AppState,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(state);
    let task = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "the metrics listener stopped");
        }
    });
    tracing::info!(%addr, "control plane metrics listening");
    Ok((addr, task))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.instruments().render(state.store()),
    )
}
