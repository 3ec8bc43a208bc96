//! Tenant plugins: Wasm components uploaded raw (`application/wasm`),
//! checked against the plugin world before they are stored, listed, and
//! deleted. Endpoints, validation and queries.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantAuth;
use crate::error::{ApiError, Result, conflict_on_unique};
use crate::extract::{Json, PathId, Query};
use crate::plugin_check;
use crate::route_plugins;
use crate::secrets::sha256_hex;
use crate::state::AppState;
use crate::store::{Store, Timestamp, Tombstone};

/// The largest component accepted (JavaScript and Python components run to
/// tens of megabytes).
pub const MAX_PLUGIN_BYTES: usize = 32 * 1024 * 1024;

/// An uploaded plugin (its bytes are not part of the JSON).
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginEntity {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub version: String,
    /// Lowercase hex SHA-256 of the component: how nodes fetch and cache it.
    pub sha256: String,
    pub size_bytes: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
}

/// Query of `POST .../plugins`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Lowercase letters, digits, `-` and `_`, at most 64.
    pub name: String,
    /// At most 64 visible characters, e.g. `1.2.0`.
    pub version: String,
}

/// The plugin endpoints.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plugins, upload_plugin))
        .routes(routes!(get_plugin, delete_plugin))
        .layer(DefaultBodyLimit::max(MAX_PLUGIN_BYTES))
}

/// List the tenant's plugins.
#[utoipa::path(get, path = "/api/tenants/{tenantId}/plugins", tag = "plugins",
    params(("tenantId" = String, Path)),
    responses((status = 200, body = [PluginEntity])),
    security(("jwt" = [])))]
async fn list_plugins(
    State(state): State<AppState>,
    auth: TenantAuth,
) -> Result<Json<Vec<PluginEntity>>> {
    let plugins = sqlx::query_as(
        "SELECT id, tenant_id, name, version, sha256, size_bytes, created_at, updated_at, deleted_at \
         FROM plugins WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
    )
    .bind(&auth.tenant_id)
    .fetch_all(state.store().pool())
    .await?;
    Ok(Json(plugins))
}

/// Upload a plugin: the raw component as the body (`application/wasm`).
#[utoipa::path(post, path = "/api/tenants/{tenantId}/plugins", tag = "plugins",
    params(("tenantId" = String, Path), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = PluginEntity), (status = 400, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn upload_plugin(
    State(state): State<AppState>,
    auth: TenantAuth,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PluginEntity>)> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/wasm") {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(MAX_PLUGIN_BYTES)
        } else {
            ApiError::bad_request("bad_request", rejection.body_text())
        }
    })?;
    let name = validate_label("name", &query.name, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
    })?;
    if plugin_check::BUILTIN_NAMES.contains(&name.as_str()) {
        return Err(ApiError::invalid(
            "name",
            "is the name of a built-in plugin (api-key-auth, rate-limit, request-log)",
        ));
    }
    let version = validate_label("version", &query.version, |c| c.is_ascii_graphic())?;
    let checked = bytes.clone();
    tokio::task::spawn_blocking(move || plugin_check::check(&checked))
        .await
        .map_err(|err| ApiError::Internal(err.into()))?
        .map_err(|err| ApiError::Invalid {
            code: "invalid_plugin",
            message: err.to_string(),
            field: None,
        })?;
    let now = Timestamp::now();
    let plugin = sqlx::query_as(
        "INSERT INTO plugins (id, tenant_id, name, version, sha256, size_bytes, wasm, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
         RETURNING id, tenant_id, name, version, sha256, size_bytes, created_at, updated_at, deleted_at",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(&auth.tenant_id)
    .bind(name)
    .bind(version)
    .bind(sha256_hex(&bytes))
    .bind(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
    .bind(bytes.to_vec())
    .bind(now)
    .fetch_one(state.store().pool())
    .await
    .map_err(conflict_on_unique("plugin_exists", "a live plugin with this name and version exists"))?;
    Ok((StatusCode::CREATED, Json(plugin)))
}

/// One plugin of the tenant.
#[utoipa::path(get, path = "/api/tenants/{tenantId}/plugins/{id}", tag = "plugins",
    params(("tenantId" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = PluginEntity), (status = 404, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn get_plugin(
    State(state): State<AppState>,
    auth: TenantAuth,
    PathId(id): PathId,
) -> Result<Json<PluginEntity>> {
    let plugin = sqlx::query_as(
        "SELECT id, tenant_id, name, version, sha256, size_bytes, created_at, updated_at, deleted_at \
         FROM plugins WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
    )
    .bind(&id)
    .bind(&auth.tenant_id)
    .fetch_optional(state.store().pool())
    .await?
    .ok_or(ApiError::NotFound("plugin"))?;
    Ok(Json(plugin))
}

/// Delete a plugin (sets deletedAt); 409 while a live route uses it.
#[utoipa::path(delete, path = "/api/tenants/{tenantId}/plugins/{id}", tag = "plugins",
    params(("tenantId" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn delete_plugin(
    State(state): State<AppState>,
    auth: TenantAuth,
    PathId(id): PathId,
) -> Result<StatusCode> {
    let store = state.store();
    let mut tx = store.begin_write().await?;
    // Under the lock a route's write takes to attach it: no route can
    // attach the plugin between this check and the delete.
    route_plugins::lock_plugin(store, &mut tx, &id).await?;
    let attached: Option<(String,)> = sqlx::query_as(
        "SELECT r.id FROM route_plugins rp JOIN routes r ON r.id = rp.route_id \
         WHERE rp.plugin_id = $1 AND r.tenant_id = $2 AND r.deleted_at IS NULL LIMIT 1",
    )
    .bind(&id)
    .bind(&auth.tenant_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((route,)) = attached {
        return Err(ApiError::conflict(
            "plugin_in_use",
            format!("route {route} uses this plugin; detach it first"),
        ));
    }
    if !Store::bury(&mut tx, Tombstone::Plugins, &auth.tenant_id, &id).await? {
        return Err(ApiError::NotFound("plugin"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn validate_label(
    field: &'static str,
    raw: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<String> {
    if raw.is_empty() || raw.len() > 64 || !raw.chars().all(allowed) {
        return Err(ApiError::invalid(
            field,
            "1 to 64 characters; names: lowercase letters, digits, - and _",
        ));
    }
    Ok(raw.to_owned())
}
