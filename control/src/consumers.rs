//! Consumers: the API clients of a tenant, each with one `ck_` key that is
//! shown once and stored as a SHA-256 hash. Endpoints, validation, queries.

use axum::extract::State;
use axum::http::StatusCode;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantAuth;
use crate::error::{ApiError, Result};
use crate::extract::{Json, PathId};
use crate::gateway::ConfigWrite;
use crate::secrets::{self, CONSUMER_KEY_PREFIX};
use crate::state::AppState;
use crate::store::{Store, Timestamp, Tombstone};
use crate::{tiers, validate};

/// The tier of a consumer created without one.
pub const DEFAULT_TIER: &str = "free";

/// An API consumer of a tenant.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerEntity {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// The rate-limit tier: one of the tenant's (free, pro, enterprise and
    /// unlimited by default).
    pub rate_limit_tier: String,
    /// The first characters of the API key, to tell keys apart.
    pub api_key_prefix: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A new consumer, with its API key in plaintext (shown this once).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedConsumer {
    #[serde(flatten)]
    pub consumer: ConsumerEntity,
    pub api_key: String,
}

/// Body of `POST .../consumers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateConsumer {
    pub name: String,
    #[serde(default)]
    pub rate_limit_tier: Option<String>,
}

/// Body of `PATCH .../consumers/{id}`. Read-only fields are ignored.
#[derive(Debug, Deserialize, ToSchema)]
// The read-only fields of the entity are accepted (clients send entities back) and ignored.
#[allow(dead_code)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateConsumer {
    pub name: Option<String>,
    pub rate_limit_tier: Option<String>,
    #[schema(ignore)]
    id: Option<IgnoredAny>,
    #[schema(ignore)]
    tenant_id: Option<IgnoredAny>,
    #[schema(ignore)]
    api_key_prefix: Option<IgnoredAny>,
    #[schema(ignore)]
    created_at: Option<IgnoredAny>,
    #[schema(ignore)]
    updated_at: Option<IgnoredAny>,
    #[schema(ignore)]
    revoked_at: Option<IgnoredAny>,
}

/// The consumer endpoints.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_consumers, create_consumer))
        .routes(routes!(update_consumer, revoke_consumer))
}

/// List all active (non-revoked) consumers.
#[utoipa::path(get, path = "/api/tenants/{tenantId}/consumers", tag = "consumers",
    params(("tenantId" = String, Path)),
    responses((status = 200, body = [ConsumerEntity])),
    security(("jwt" = [])))]
async fn list_consumers(
    State(state): State<AppState>,
    auth: TenantAuth,
) -> Result<Json<Vec<ConsumerEntity>>> {
    Ok(Json(
        state
            .store()
            .live(Tombstone::Consumers, &auth.tenant_id)
            .await?,
    ))
}

/// Create a consumer and generate its API key, returned in plaintext once.
#[utoipa::path(post, path = "/api/tenants/{tenantId}/consumers", tag = "consumers",
    params(("tenantId" = String, Path)), request_body = CreateConsumer,
    responses((status = 201, body = CreatedConsumer)),
    security(("jwt" = [])))]
async fn create_consumer(
    State(state): State<AppState>,
    auth: TenantAuth,
    Json(body): Json<CreateConsumer>,
) -> Result<(StatusCode, Json<CreatedConsumer>)> {
    let name = validate::name("name", &body.name)?;
    let tier_name = body.rate_limit_tier.as_deref().unwrap_or(DEFAULT_TIER);
    let key = secrets::generate(CONSUMER_KEY_PREFIX);
    let mut tx = ConfigWrite::begin(&state, &auth.tenant_id).await?;
    // Checked in the write: a tier removed meanwhile cannot be left named
    // by a consumer (it would run unlimited).
    let tier = tiers::require_tier(&mut tx, &auth.tenant_id, tier_name).await?;
    let consumer = insert(&mut tx, &auth.tenant_id, &name, &tier, &key).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedConsumer {
            consumer,
            api_key: key.plaintext,
        }),
    ))
}

/// Stores a new consumer of `tenant_id` with `key` on `conn` (a config
/// write that checked its tier).
pub async fn insert(
    conn: &mut AnyConnection,
    tenant_id: &str,
    name: &str,
    tier: &str,
    key: &secrets::NewSecret,
) -> Result<ConsumerEntity, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO consumers (id, tenant_id, name, api_key_hash, api_key_prefix, \
         rate_limit_tier, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         RETURNING *",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(tenant_id)
    .bind(name)
    .bind(&key.hash)
    .bind(&key.display_prefix)
    .bind(tier)
    .bind(Timestamp::now())
    .fetch_one(conn)
    .await
}

/// Rename a consumer or change its tier. Accepts partial updates.
#[utoipa::path(patch, path = "/api/tenants/{tenantId}/consumers/{id}", tag = "consumers",
    params(("tenantId" = String, Path), ("id" = String, Path)), request_body = UpdateConsumer,
    responses((status = 200, body = ConsumerEntity), (status = 404, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn update_consumer(
    State(state): State<AppState>,
    auth: TenantAuth,
    PathId(id): PathId,
    Json(body): Json<UpdateConsumer>,
) -> Result<Json<ConsumerEntity>> {
    let name = body
        .name
        .as_deref()
        .map(|n| validate::name("name", n))
        .transpose()?;
    let mut tx = ConfigWrite::begin(&state, &auth.tenant_id).await?;
    let tier = match body.rate_limit_tier.as_deref() {
        Some(name) => Some(tiers::require_tier(&mut tx, &auth.tenant_id, name).await?),
        None => None,
    };
    let consumer = sqlx::query_as(
        "UPDATE consumers SET name = COALESCE($1, name), \
         rate_limit_tier = COALESCE($2, rate_limit_tier), updated_at = $3 \
         WHERE id = $4 AND tenant_id = $5 AND revoked_at IS NULL RETURNING *",
    )
    .bind(name)
    .bind(tier)
    .bind(Timestamp::now())
    .bind(&id)
    .bind(&auth.tenant_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(ApiError::NotFound("consumer"))?;
    tx.commit().await?;
    Ok(Json(consumer))
}

/// Revoke a consumer (sets revokedAt); its API key stops working.
#[utoipa::path(delete, path = "/api/tenants/{tenantId}/consumers/{id}", tag = "consumers",
    params(("tenantId" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn revoke_consumer(
    State(state): State<AppState>,
    auth: TenantAuth,
    PathId(id): PathId,
) -> Result<StatusCode> {
    let mut tx = ConfigWrite::begin(&state, &auth.tenant_id).await?;
    if !Store::bury(&mut tx, Tombstone::Consumers, &auth.tenant_id, &id).await? {
        return Err(ApiError::NotFound("consumer"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
