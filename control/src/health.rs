//! Service health as the gateway nodes' active checks saw it: the latest
//! snapshot per live service, and the insert the ingestion uses.

use axum::extract::State;
use gatehouse_protocol::telemetry::HealthResult;
use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::FromRow;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantAuth;
use crate::error::Result;
use crate::extract::Json;
use crate::state::AppState;
use crate::store::Timestamp;

/// One health check result of one service.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthSnapshot {
    pub id: String,
    pub tenant_id: String,
    pub service_id: String,
    /// The gateway node that checked.
    pub node_id: String,
    /// `up` or `down`.
    pub status: String,
    /// The status the health check path answered, if it answered.
    pub http_status: Option<i64>,
    pub latency_ms: Option<f64>,
    /// Why the check failed, if it did.
    pub error: Option<String>,
    pub checked_at: Timestamp,
    pub created_at: Timestamp,
}

/// The health endpoints.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(latest_health))
}

/// The latest health snapshot of each live service.
#[utoipa::path(get, path = "/api/tenants/{tenantId}/health", tag = "telemetry",
    params(("tenantId" = String, Path)),
    responses((status = 200, body = [HealthSnapshot])),
    security(("jwt" = [])))]
async fn latest_health(
    State(state): State<AppState>,
    auth: TenantAuth,
) -> Result<Json<Vec<HealthSnapshot>>> {
    // ROW_NUMBER() is the portable DISTINCT ON (service_id).
    let snapshots = sqlx::query_as(
        "SELECT id, tenant_id, service_id, node_id, status, http_status, latency_ms, error, \
         checked_at, created_at FROM ( \
           SELECT h.*, ROW_NUMBER() OVER ( \
             PARTITION BY h.service_id ORDER BY h.checked_at DESC, h.id DESC) AS rank \
           FROM health_snapshots h \
           JOIN services s ON s.id = h.service_id AND s.tenant_id = h.tenant_id \
           WHERE h.tenant_id = $1 AND s.deleted_at IS NULL \
         ) latest WHERE rank = 1 ORDER BY service_id",
    )
    .bind(&auth.tenant_id)
    .fetch_all(state.store().pool())
    .await?;
    Ok(Json(snapshots))
}

/// Stores a check result of `node_id` on `conn`; returns the snapshot id.
pub async fn insert(
    conn: &mut AnyConnection,
    tenant_id: &str,
    node_id: &str,
    check: &HealthResult,
) -> Result<String, sqlx::Error> {
    let id = Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO health_snapshots (id, tenant_id, service_id, node_id, status, http_status, \
         latency_ms, error, checked_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(&check.service_id)
    .bind(node_id)
    .bind(if check.up { "up" } else { "down" })
    .bind(check.http_status)
    .bind(check.latency_ms)
    .bind(&check.error)
    .bind(Timestamp::from_millis(check.at_ms))
    .bind(Timestamp::now())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}
