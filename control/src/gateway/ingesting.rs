//! A node's telemetry batches being stored, a few at a time. On PostgreSQL a
//! backend inserting a batch keeps one core busy and then waits for its
//! commit, so batches stored on several connections at once go faster than
//! one after the other (ingest bench, 2-core machine: 40,500-42,500 rows/s
//! one at a time, 51,300 two at once, 58,000-64,700 four at once); SQLite
//! has one writer, so there it is one at a time. Each batch is acknowledged
//! as it finishes, in whatever order (the node acks by batch id), and a full
//! queue stops the connection reading more: the node's socket backs up and
//! its outbox holds the rest. Each batch is stored on a task of its own, so
//! it goes on while the connection awaits something else (a heartbeat's
//! update on SQLite waits for the write lock an unpolled batch would hold
//! forever); tasks still running when the connection ends are aborted, and
//! their transactions rolled back.

use gatehouse_protocol::telemetry::TelemetryBatch;
use tokio::task::JoinSet;

use crate::instruments::{BatchOutcome, Counted, Instruments};
use crate::store::{Dialect, Store};
use crate::telemetry::{self, IngestError};

/// Batches of one node stored at once on PostgreSQL.
pub const POSTGRES_IN_FLIGHT: usize = 4;

/// A batch stored (or refused): its id and the outcome.
pub type Stored = (String, Result<bool, IngestError>);

/// The batches of one connection being stored.
pub struct Ingesting {
    store: Store,
    instruments: Instruments,
    tenant_id: String,
    limit: usize,
    running: JoinSet<Stored>,
}

impl Ingesting {
    pub fn new(store: Store, instruments: Instruments, tenant_id: &str) -> Self {
        let limit = match store.dialect() {
            Dialect::Postgres => POSTGRES_IN_FLIGHT,
            Dialect::Sqlite => 1,
        };
        Self {
            store,
            instruments,
            tenant_id: tenant_id.to_owned(),
            limit,
            running: JoinSet::new(),
        }
    }

    /// Whether a batch must finish before another starts.
    pub fn is_full(&self) -> bool {
        self.running.len() >= self.limit
    }

    /// Starts storing `batch`.
    pub fn start(&mut self, batch: TelemetryBatch) {
        let store = self.store.clone();
        let instruments = self.instruments.clone();
        let tenant_id = self.tenant_id.clone();
        let in_flight = Counted::new(&instruments.batches_in_flight);
        self.running.spawn(async move {
            let outcome = telemetry::ingest(&store, &tenant_id, &batch).await;
            drop(in_flight);
            let counted = match &outcome {
                Ok(true) => BatchOutcome::Stored,
                Ok(false) => BatchOutcome::Duplicate,
                Err(IngestError::Invalid(_)) => BatchOutcome::Invalid,
                Err(IngestError::Database(_)) => BatchOutcome::Failed,
            };
            instruments.batch(
                counted,
                [
                    ("logs", batch.logs.len()),
                    ("metrics", batch.metrics.len()),
                    ("errors", batch.errors.len()),
                    ("health", batch.health.len()),
                ],
                batch.logs.iter().map(|log| log.at_ms).min(),
            );
            (batch.batch_id, outcome)
        });
    }

    /// The next batch to finish; never ready while none is being stored. A
    /// task that panicked reports a database error for no batch: nothing is
    /// acknowledged, the connection ends and the node sends it again.
    pub async fn next(&mut self) -> Stored {
        match self.running.join_next().await {
            Some(Ok(stored)) => stored,
            Some(Err(failed)) => (
                String::new(),
                Err(IngestError::Database(sqlx::Error::Protocol(format!(
                    "telemetry ingestion task: {failed}"
                )))),
            ),
            None => std::future::pending().await,
        }
    }
}
