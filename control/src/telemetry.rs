//! Telemetry ingestion and retention. A node's batch (logs, minute metrics,
//! error occurrences, health results) is stored in one transaction, exactly
//! once: its id is recorded in the same transaction, and a batch seen before
//! is only acknowledged again. A background task deletes what is older than
//! the retention periods.

use std::time::Duration;

use gatehouse_protocol::telemetry::TelemetryBatch;

use crate::logs::Duplicates;
use crate::store::{Store, Timestamp};
use crate::{error_events, health, logs, metrics};

/// How long batch ids are remembered for deduplication.
const BATCH_ID_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The batch can never be stored (acknowledge and drop it).
    #[error("invalid batch: {0}")]
    Invalid(String),
    /// Storing failed; the node should send it again.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Stores a batch of `tenant_id`'s node. `Ok(false)` when the batch had been
/// stored before.
pub async fn ingest(
    store: &Store,
    tenant_id: &str,
    batch: &TelemetryBatch,
) -> Result<bool, IngestError> {
    match store_batch(store, tenant_id, batch, Duplicates::Refuse).await {
        Err(IngestError::Database(sqlx::Error::Database(err))) if err.is_unique_violation() => {
            // Logs stored before under the same ids: the batch again, skipping them.
            store_batch(store, tenant_id, batch, Duplicates::Skip).await
        }
        outcome => outcome,
    }
}

/// One attempt at [`ingest`], with `duplicates` deciding what a log stored
/// before does.
async fn store_batch(
    store: &Store,
    tenant_id: &str,
    batch: &TelemetryBatch,
    duplicates: Duplicates,
) -> Result<bool, IngestError> {
    let mut tx = store.begin_write().await?;
    let fresh = sqlx::query(
        "INSERT INTO telemetry_batches (tenant_id, batch_id, node_id, received_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .bind(&batch.batch_id)
    .bind(&batch.node_id)
    .bind(Timestamp::now())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok(false);
    }
    logs::insert(
        &mut tx,
        store.dialect(),
        tenant_id,
        &batch.batch_id,
        &batch.logs,
        duplicates,
    )
    .await?;
    for minute in &batch.metrics {
        metrics::merge_minute(&mut tx, tenant_id, &batch.node_id, minute)
            .await
            .map_err(|err| match err {
                metrics::MergeError::Database(err) => IngestError::Database(err),
                other => IngestError::Invalid(other.to_string()),
            })?;
    }
    for occurrence in &batch.errors {
        error_events::record_on(store, &mut tx, tenant_id, occurrence).await?;
    }
    for check in &batch.health {
        health::insert(&mut tx, tenant_id, &batch.node_id, check).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// How long telemetry is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub log_days: u32,
    pub metrics_days: u32,
}

/// Deletes what is older than `retention` now, then every hour, until the
/// task is aborted.
pub fn spawn_retention(store: Store, retention: Retention) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            match purge(&store, retention, Timestamp::now()).await {
                Ok(deleted) if deleted > 0 => tracing::info!(deleted, "old telemetry deleted"),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "retention pass failed; retrying in an hour")
                }
            }
        }
    })
}

/// Deletes telemetry older than `retention` as of `now`; returns the rows
/// deleted.
pub async fn purge(
    store: &Store,
    retention: Retention,
    now: Timestamp,
) -> Result<u64, sqlx::Error> {
    let log_cutoff = now.add_millis(-i64::from(retention.log_days) * DAY_MS);
    let metrics_cutoff = now.add_millis(-i64::from(retention.metrics_days) * DAY_MS);
    let mut deleted = purge_logs(store, log_cutoff).await?;
    let statements: [(&'static str, Timestamp); 3] = [
        (
            "DELETE FROM metrics_minutes WHERE minute_start < $1",
            metrics_cutoff,
        ),
        (
            "DELETE FROM health_snapshots WHERE checked_at < $1",
            metrics_cutoff,
        ),
        (
            "DELETE FROM telemetry_batches WHERE received_at < $1",
            now.add_millis(-BATCH_ID_RETENTION_MS),
        ),
    ];
    for (sql, cutoff) in statements {
        deleted += sqlx::query(sql)
            .bind(cutoff)
            .execute(store.pool())
            .await?
            .rows_affected();
    }
    Ok(deleted)
}

/// Deletes request logs older than `cutoff`, a tenant at a time: each
/// delete walks that tenant's logs in time order (`request_logs_tenant_time`),
/// so the table needs no time index of its own to insert into.
async fn purge_logs(store: &Store, cutoff: Timestamp) -> Result<u64, sqlx::Error> {
    let tenants: Vec<(String,)> = sqlx::query_as("SELECT id FROM tenants")
        .fetch_all(store.pool())
        .await?;
    let mut deleted = 0;
    for (tenant_id,) in tenants {
        deleted += sqlx::query("DELETE FROM request_logs WHERE tenant_id = $1 AND created_at < $2")
            .bind(tenant_id)
            .bind(cutoff)
            .execute(store.pool())
            .await?
            .rows_affected();
    }
    Ok(deleted)
}
