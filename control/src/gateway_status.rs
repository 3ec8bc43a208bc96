//! Gateway nodes' connections as the database records them, so any control
//! plane replica can tell whether a tenant's gateway is online.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantAuth;
use crate::error::Result;
use crate::extract::Json;
use crate::state::AppState;
use crate::store::{Store, Timestamp};

/// A connected node that has not been heard from for this long is gone.
pub const LIVENESS_WINDOW_MS: i64 = 30_000;

/// Whether the tenant's gateway is connected.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    pub tenant_id: String,
    /// True while at least one node is connected and heard from recently.
    pub online: bool,
    /// How many nodes are connected.
    pub connected_nodes: i64,
    /// The most recent heartbeat of any node, if one ever connected.
    pub last_seen_at: Option<Timestamp>,
}

/// The gateway-status endpoint.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(gateway_status))
}

/// Whether the tenant's gateway is currently connected to the control plane.
#[utoipa::path(get, path = "/api/tenants/{tenantId}/gateway-status", tag = "gateway",
    params(("tenantId" = String, Path)),
    responses((status = 200, body = GatewayStatus)),
    security(("jwt" = [])))]
async fn gateway_status(
    State(state): State<AppState>,
    auth: TenantAuth,
) -> Result<Json<GatewayStatus>> {
    Ok(Json(
        status(state.store(), &auth.tenant_id, Timestamp::now()).await?,
    ))
}

/// The tenant's gateway status as of `now`.
pub async fn status(
    store: &Store,
    tenant_id: &str,
    now: Timestamp,
) -> Result<GatewayStatus, sqlx::Error> {
    let (connected, last_seen): (i64, Option<Timestamp>) = sqlx::query_as(
        "SELECT \
           COALESCE(SUM(CASE WHEN disconnected_at IS NULL AND last_seen_at >= $2 THEN 1 ELSE 0 END), 0), \
           MAX(last_seen_at) \
         FROM gateway_nodes WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .bind(now.add_millis(-LIVENESS_WINDOW_MS))
    .fetch_one(store.pool())
    .await?;
    Ok(GatewayStatus {
        tenant_id: tenant_id.to_owned(),
        online: connected > 0,
        connected_nodes: connected,
        last_seen_at: last_seen,
    })
}

/// Records a node's connection through replica `replica_id`; returns the
/// connection id for heartbeats and the disconnect.
pub async fn connect(
    store: &Store,
    tenant_id: &str,
    node_name: &str,
    replica_id: &str,
) -> Result<String, sqlx::Error> {
    let id = Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO gateway_nodes (id, tenant_id, node_name, replica_id, connected_at, \
         last_seen_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(node_name)
    .bind(replica_id)
    .bind(Timestamp::now())
    .execute(store.pool())
    .await?;
    Ok(id)
}

/// Notes that the connection is alive at `at`.
pub async fn heartbeat(
    store: &Store,
    connection_id: &str,
    at: Timestamp,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE gateway_nodes SET last_seen_at = $1 WHERE id = $2 AND disconnected_at IS NULL",
    )
    .bind(at)
    .bind(connection_id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Notes that the connection closed.
pub async fn disconnect(store: &Store, connection_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE gateway_nodes SET disconnected_at = $1 WHERE id = $2")
        .bind(Timestamp::now())
        .bind(connection_id)
        .execute(store.pool())
        .await?;
    Ok(())
}
