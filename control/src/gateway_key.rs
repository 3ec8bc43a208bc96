//! The tenant's gateway key: rotating it. The new key is shown once; the old
//! one stops working at once: new connections with it get 401, and nodes
//! connected with it are closed (close code [`KEY_ROTATED_CLOSE_CODE`]) when
//! the rotation's config version reaches them, on every replica (or at
//! their next heartbeat, for one that connected during the rotation).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantAuth;
use crate::error::Result;
use crate::extract::Json;
use crate::gateway::ConfigWrite;
use crate::secrets::{self, GATEWAY_KEY_PREFIX};
use crate::state::AppState;
use crate::store::{Store, Timestamp};

pub use gatehouse_protocol::sync::KEY_ROTATED_CLOSE_CODE;

/// A freshly rotated gateway key.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedGatewayKey {
    pub tenant_id: String,
    /// The new key (`gk_...`), shown only in this answer.
    pub gateway_api_key: String,
    /// Its first characters, to recognise it later.
    pub gateway_key_prefix: String,
    pub rotated_at: Timestamp,
}

/// The rotation endpoint (a config write: its commit wakes the tenant's
/// connections, which is what cuts off the nodes on the old key).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(rotate))
}

/// Replace the tenant's gateway key. Nodes using the old key are
/// disconnected and cannot reconnect; they keep serving their last config
/// until restarted with the new key.
#[utoipa::path(post, path = "/api/tenants/{tenantId}/gateway-key", tag = "gateway",
    params(("tenantId" = String, Path)),
    responses((status = 201, body = RotatedGatewayKey)),
    security(("jwt" = [])))]
async fn rotate(
    State(state): State<AppState>,
    auth: TenantAuth,
) -> Result<(StatusCode, Json<RotatedGatewayKey>)> {
    let key = secrets::generate(GATEWAY_KEY_PREFIX);
    let now = Timestamp::now();
    let mut tx = ConfigWrite::begin(&state, &auth.tenant_id).await?;
    sqlx::query(
        "UPDATE tenants SET gateway_key_hash = $1, gateway_key_prefix = $2, updated_at = $3 \
         WHERE id = $4",
    )
    .bind(&key.hash)
    .bind(&key.display_prefix)
    .bind(now)
    .bind(&auth.tenant_id)
    .execute(&mut **tx)
    .await?;
    tx.commit().await?;
    tracing::info!(
        tenant_id = auth.tenant_id,
        prefix = key.display_prefix,
        "gateway key rotated"
    );
    Ok((
        StatusCode::CREATED,
        Json(RotatedGatewayKey {
            tenant_id: auth.tenant_id,
            gateway_api_key: key.plaintext,
            gateway_key_prefix: key.display_prefix,
            rotated_at: now,
        }),
    ))
}

/// The tenant whose current gateway key hashes to `key_hash`.
pub async fn tenant_of(store: &Store, key_hash: &str) -> Result<Option<String>, sqlx::Error> {
    let tenant: Option<(String,)> =
        sqlx::query_as("SELECT id FROM tenants WHERE gateway_key_hash = $1")
            .bind(key_hash)
            .fetch_optional(store.pool())
            .await?;
    Ok(tenant.map(|(id,)| id))
}
