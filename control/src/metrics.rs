//! Traffic metrics: nodes report per-minute, per-route counts and latency
//! histograms; the API merges them into 1-minute, 15-minute or 1-hour
//! buckets. Percentiles come from merged histograms, never from averaging
//! percentiles.

use std::collections::BTreeMap;

use axum::extract::State;
use gatehouse_protocol::histogram;
use gatehouse_protocol::telemetry::MinuteMetrics;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::FromRow;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantAuth;
use crate::error::{ApiError, Result};
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::store::{Store, Timestamp};

const MINUTE_MS: i64 = 60_000;

/// Aggregated traffic for one bucket of time.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    pub tenant_id: String,
    pub bucket_start: Timestamp,
    pub bucket_seconds: i64,
    pub request_count: i64,
    /// Responses with a 5xx status.
    pub error_count: i64,
    /// Responses with a 4xx status.
    pub client_error_count: i64,
    /// Median latency in milliseconds; null when there was no request.
    pub p50_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    pub p99_latency_ms: Option<f64>,
}

/// The time span `GET .../metrics` covers.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema, Default)]
pub enum Period {
    /// The last hour in 1-minute buckets.
    #[default]
    #[serde(rename = "1h")]
    Hour,
    /// The last day in 15-minute buckets.
    #[serde(rename = "24h")]
    Day,
    /// The last week in 1-hour buckets.
    #[serde(rename = "7d")]
    Week,
}

impl Period {
    fn span_and_bucket_ms(self) -> (i64, i64) {
        match self {
            Self::Hour => (60 * MINUTE_MS, MINUTE_MS),
            Self::Day => (24 * 60 * MINUTE_MS, 15 * MINUTE_MS),
            Self::Week => (7 * 24 * 60 * MINUTE_MS, 60 * MINUTE_MS),
        }
    }
}

/// Query of `GET .../metrics`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// `1h` (default), `24h` or `7d`.
    pub period: Option<Period>,
}

/// A whole period's traffic: the sums of its buckets, its percentiles
/// (from the merged histograms of the whole span, not from the buckets'),
/// and how many consumers sent requests.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSummary {
    pub tenant_id: String,
    /// The same span as the period's buckets: `from` inclusive, `to`
    /// exclusive.
    pub from: Timestamp,
    pub to: Timestamp,
    pub request_count: i64,
    /// Responses with a 5xx status.
    pub error_count: i64,
    /// Responses with a 4xx status.
    pub client_error_count: i64,
    /// Null when there was no request.
    pub p50_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    pub p99_latency_ms: Option<f64>,
    /// Consumers with at least one request in the span, from the request
    /// logs: nodes running with `--request-logs false` add none, and logs
    /// older than `--log-retention-days` are gone.
    pub distinct_consumers: i64,
}

#[derive(FromRow)]
struct MinuteRow {
    minute_start: Timestamp,
    request_count: i64,
    client_error_count: i64,
    error_count: i64,
    latency_histogram: Vec<u8>,
}

/// The metrics endpoints.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tenant_metrics))
        .routes(routes!(summary))
}

/// Aggregated metrics, oldest bucket first, every bucket of the period present.
#[utoipa::path(get, path = "/api/tenants/{tenantId}/metrics", tag = "telemetry",
    params(("tenantId" = String, Path), MetricsQuery),
    responses((status = 200, body = [MetricsSnapshot])),
    security(("jwt" = [])))]
async fn tenant_metrics(
    State(state): State<AppState>,
    auth: TenantAuth,
    Query(query): Query<MetricsQuery>,
) -> Result<Json<Vec<MetricsSnapshot>>> {
    let period = query.period.unwrap_or_default();
    let snapshots = aggregate(state.store(), &auth.tenant_id, period, Timestamp::now()).await?;
    Ok(Json(snapshots))
}

/// The period's totals, percentiles and distinct consumers.
#[utoipa::path(get, path = "/api/tenants/{tenantId}/metrics/summary", tag = "telemetry",
    params(("tenantId" = String, Path), MetricsQuery),
    responses((status = 200, body = MetricsSummary)),
    security(("jwt" = [])))]
async fn summary(
    State(state): State<AppState>,
    auth: TenantAuth,
    Query(query): Query<MetricsQuery>,
) -> Result<Json<MetricsSummary>> {
    let (from, to) = span(query.period.unwrap_or_default(), Timestamp::now());
    let store = state.store();
    let mut whole = Bucket::default();
    for row in minute_rows(store, &auth.tenant_id, from, to).await? {
        whole.add_row(&row)?;
    }
    // Per consumer of the tenant, whether a log of the span names it: the
    // (tenant, consumer, time) index answers each, where COUNT(DISTINCT)
    // would read every log of the span.
    let (distinct_consumers,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM consumers c WHERE c.tenant_id = $1 AND EXISTS ( \
         SELECT 1 FROM request_logs l WHERE l.tenant_id = $1 AND l.consumer_id = c.id \
         AND l.created_at >= $2 AND l.created_at < $3)",
    )
    .bind(&auth.tenant_id)
    .bind(from)
    .bind(to)
    .fetch_one(store.pool())
    .await?;
    Ok(Json(MetricsSummary {
        tenant_id: auth.tenant_id,
        from,
        to,
        request_count: whole.requests,
        error_count: whole.errors,
        client_error_count: whole.client_errors,
        p50_latency_ms: whole.latency_ms(0.50),
        p95_latency_ms: whole.latency_ms(0.95),
        p99_latency_ms: whole.latency_ms(0.99),
        distinct_consumers,
    }))
}

/// The stored per-minute reports of `tenant_id` in `[from, to)`.
async fn minute_rows(
    store: &Store,
    tenant_id: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<MinuteRow>> {
    Ok(sqlx::query_as(
        "SELECT minute_start, request_count, client_error_count, error_count, latency_histogram \
         FROM metrics_minutes WHERE tenant_id = $1 AND minute_start >= $2 AND minute_start < $3",
    )
    .bind(tenant_id)
    .bind(from)
    .bind(to)
    .fetch_all(store.pool())
    .await?)
}

/// The span of `period` ending with the end of the bucket that holds `now`.
fn span(period: Period, now: Timestamp) -> (Timestamp, Timestamp) {
    let (span, bucket) = period.span_and_bucket_ms();
    let end = now.millis() - now.millis().rem_euclid(bucket) + bucket;
    (
        Timestamp::from_millis(end - span),
        Timestamp::from_millis(end),
    )
}

/// The tenant's buckets for `period` ending with the bucket that holds `now`.
pub async fn aggregate(
    store: &Store,
    tenant_id: &str,
    period: Period,
    now: Timestamp,
) -> Result<Vec<MetricsSnapshot>> {
    let (span_ms, bucket) = period.span_and_bucket_ms();
    let (from, to) = span(period, now);
    let start = from.millis();
    let rows = minute_rows(store, tenant_id, from, to).await?;

    let mut buckets: BTreeMap<i64, Bucket> = (0..span_ms / bucket)
        .map(|i| (start + i * bucket, Bucket::default()))
        .collect();
    for row in rows {
        let at = row.minute_start.millis();
        let key = at - (at - start).rem_euclid(bucket);
        if let Some(target) = buckets.get_mut(&key) {
            target.add_row(&row)?;
        }
    }
    Ok(buckets
        .into_iter()
        .map(|(at, b)| b.snapshot(tenant_id, Timestamp::from_millis(at), bucket / 1000))
        .collect())
}

#[derive(Default)]
struct Bucket {
    requests: i64,
    client_errors: i64,
    errors: i64,
    latency: Option<Histogram<u64>>,
}

impl Bucket {
    /// Adds one stored minute report.
    fn add_row(&mut self, row: &MinuteRow) -> Result<()> {
        let latency = histogram::from_bytes(&row.latency_histogram)
            .map_err(|err| ApiError::Internal(anyhow::anyhow!("stored histogram: {err}")))?;
        self.requests += row.request_count;
        self.client_errors += row.client_error_count;
        self.errors += row.error_count;
        let merged = self.latency.get_or_insert_with(histogram::new_histogram);
        merged
            .add(&latency)
            .map_err(|err| ApiError::Internal(anyhow::anyhow!("merging histograms: {err:?}")))
    }

    /// The latency at quantile `q` in milliseconds; `None` without requests.
    fn latency_ms(&self, q: f64) -> Option<f64> {
        self.latency
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
    }

    fn snapshot(
        self,
        tenant_id: &str,
        bucket_start: Timestamp,
        bucket_seconds: i64,
    ) -> MetricsSnapshot {
        MetricsSnapshot {
            tenant_id: tenant_id.to_owned(),
            bucket_start,
            bucket_seconds,
            request_count: self.requests,
            error_count: self.errors,
            client_error_count: self.client_errors,
            p50_latency_ms: self.latency_ms(0.50),
            p95_latency_ms: self.latency_ms(0.95),
            p99_latency_ms: self.latency_ms(0.99),
        }
    }
}

/// A shipped minute that cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("route {route_id}: {source}")]
    Histogram {
        route_id: String,
        source: histogram::HistogramError,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Stores (or replaces) node `node_id`'s report for one route and minute,
/// on `conn`. A node's reports of a minute are cumulative, so one with
/// fewer requests than the stored report is older and leaves it as it is
/// (two of a node's batches may be stored at once, in either order).
pub async fn merge_minute(
    conn: &mut AnyConnection,
    tenant_id: &str,
    node_id: &str,
    report: &MinuteMetrics,
) -> Result<(), MergeError> {
    let bytes = histogram::decode_to_bytes(&report.latency_histogram).map_err(|source| {
        MergeError::Histogram {
            route_id: report.route_id.clone(),
            source,
        }
    })?;
    let minute_start =
        Timestamp::from_millis(report.minute_ms - report.minute_ms.rem_euclid(MINUTE_MS));
    sqlx::query(
        "INSERT INTO metrics_minutes (tenant_id, route_id, node_id, minute_start, request_count, \
         client_error_count, error_count, latency_histogram, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (tenant_id, minute_start, route_id, node_id) DO UPDATE SET \
         request_count = excluded.request_count, \
         client_error_count = excluded.client_error_count, \
         error_count = excluded.error_count, \
         latency_histogram = excluded.latency_histogram, updated_at = excluded.updated_at \
         WHERE metrics_minutes.request_count <= excluded.request_count",
    )
    .bind(tenant_id)
    .bind(&report.route_id)
    .bind(node_id)
    .bind(minute_start)
    .bind(report.request_count)
    .bind(report.client_error_count)
    .bind(report.error_count)
    .bind(bytes)
    .bind(Timestamp::now())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
