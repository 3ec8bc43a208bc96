//! Services: the upstreams a tenant's routes forward to. Endpoints,
//! validation and queries.

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
use crate::extract::{Json, PathId, double_option};
use crate::gateway::ConfigWrite;
use crate::state::AppState;
use crate::store::{Store, Timestamp, Tombstone};
use crate::validate;

/// The default upstream timeout.
pub const DEFAULT_TIMEOUT_MS: i64 = 30_000;
/// The longest upstream timeout accepted.
pub const MAX_TIMEOUT_MS: i64 = 300_000;

/// A downstream HTTP service that routes forward to.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntity {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// Absolute http(s) URL; its path prefixes every forwarded path.
    pub target_url: String,
    /// Path the gateway probes for health, if any.
    pub health_check_path: Option<String>,
    /// Upstream timeout in milliseconds (1..300000).
    pub timeout_ms: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
}

/// Body of `POST .../services`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateService {
    pub name: String,
    pub target_url: String,
    #[serde(default)]
    pub health_check_path: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<i64>,
}

/// Body of `PATCH .../services/{id}`: any subset of the writable fields.
/// Read-only fields of the entity are accepted and ignored.
#[derive(Debug, Deserialize, ToSchema)]
// The read-only fields of the entity are accepted (clients send entities back) and ignored.
#[allow(dead_code)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateService {
    pub name: Option<String>,
    pub target_url: Option<String>,
    /// `null` removes the health check.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub health_check_path: Option<Option<String>>,
    pub timeout_ms: Option<i64>,
    #[schema(ignore)]
    id: Option<IgnoredAny>,
    #[schema(ignore)]
    tenant_id: Option<IgnoredAny>,
    #[schema(ignore)]
    created_at: Option<IgnoredAny>,
    #[schema(ignore)]
    updated_at: Option<IgnoredAny>,
    #[schema(ignore)]
    deleted_at: Option<IgnoredAny>,
}

/// The service endpoints.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_services, create_service))
        .routes(routes!(update_service, delete_service))
}

/// List all non-deleted services.
#[utoipa::path(get, path = "/api/tenants/{tenantId}/services", tag = "services",
    params(("tenantId" = String, Path)),
    responses((status = 200, body = [ServiceEntity])),
    security(("jwt" = [])))]
async fn list_services(
    State(state): State<AppState>,
    auth: TenantAuth,
) -> Result<Json<Vec<ServiceEntity>>> {
    Ok(Json(
        state
            .store()
            .live(Tombstone::Services, &auth.tenant_id)
            .await?,
    ))
}

/// Create a new downstream service.
#[utoipa::path(post, path = "/api/tenants/{tenantId}/services", tag = "services",
    params(("tenantId" = String, Path)), request_body = CreateService,
    responses((status = 201, body = ServiceEntity)),
    security(("jwt" = [])))]
async fn create_service(
    State(state): State<AppState>,
    auth: TenantAuth,
    Json(body): Json<CreateService>,
) -> Result<(StatusCode, Json<ServiceEntity>)> {
    let name = validate::name("name", &body.name)?;
    let target_url = validate_target_url(&body.target_url)?;
    let health_check_path = body
        .health_check_path
        .as_deref()
        .map(validate_health_check_path)
        .transpose()?;
    let timeout_ms = validate_timeout(body.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))?;
    let mut tx = ConfigWrite::begin(&state, &auth.tenant_id).await?;
    let service = insert(
        &mut tx,
        &auth.tenant_id,
        &NewService {
            name,
            target_url,
            health_check_path,
            timeout_ms,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(service)))
}

/// A checked service to store.
pub struct NewService {
    pub name: String,
    pub target_url: String,
    pub health_check_path: Option<String>,
    pub timeout_ms: i64,
}

/// Stores a new service of `tenant_id` on `conn` (a config write).
pub async fn insert(
    conn: &mut AnyConnection,
    tenant_id: &str,
    service: &NewService,
) -> Result<ServiceEntity, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO services (id, tenant_id, name, target_url, health_check_path, timeout_ms, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING *",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(tenant_id)
    .bind(&service.name)
    .bind(&service.target_url)
    .bind(&service.health_check_path)
    .bind(service.timeout_ms)
    .bind(Timestamp::now())
    .fetch_one(conn)
    .await
}

/// Update a service. Accepts partial updates.
#[utoipa::path(patch, path = "/api/tenants/{tenantId}/services/{id}", tag = "services",
    params(("tenantId" = String, Path), ("id" = String, Path)), request_body = UpdateService,
    responses((status = 200, body = ServiceEntity), (status = 404, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn update_service(
    State(state): State<AppState>,
    auth: TenantAuth,
    PathId(id): PathId,
    Json(body): Json<UpdateService>,
) -> Result<Json<ServiceEntity>> {
    let name = body
        .name
        .as_deref()
        .map(|name| validate::name("name", name))
        .transpose()?;
    let target_url = body
        .target_url
        .as_deref()
        .map(validate_target_url)
        .transpose()?;
    let health_check_path = match &body.health_check_path {
        Some(Some(path)) => Some(Some(validate_health_check_path(path)?)),
        Some(None) => Some(None),
        None => None,
    };
    let timeout_ms = body.timeout_ms.map(validate_timeout).transpose()?;
    let mut tx = ConfigWrite::begin(&state, &auth.tenant_id).await?;
    // One statement writes only the fields the body names, so concurrent
    // updates of different fields all survive.
    let service = sqlx::query_as(
        "UPDATE services SET name = COALESCE($1, name), target_url = COALESCE($2, target_url), \
         health_check_path = CASE WHEN $3 THEN $4 ELSE health_check_path END, \
         timeout_ms = COALESCE($5, timeout_ms), updated_at = $6 \
         WHERE id = $7 AND tenant_id = $8 AND deleted_at IS NULL RETURNING *",
    )
    .bind(name)
    .bind(target_url)
    .bind(health_check_path.is_some())
    .bind(health_check_path.flatten())
    .bind(timeout_ms)
    .bind(Timestamp::now())
    .bind(&id)
    .bind(&auth.tenant_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(ApiError::NotFound("service"))?;
    tx.commit().await?;
    Ok(Json(service))
}

/// Soft-delete a service. Routes pointing to it fail until reassigned.
#[utoipa::path(delete, path = "/api/tenants/{tenantId}/services/{id}", tag = "services",
    params(("tenantId" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn delete_service(
    State(state): State<AppState>,
    auth: TenantAuth,
    PathId(id): PathId,
) -> Result<StatusCode> {
    let mut tx = ConfigWrite::begin(&state, &auth.tenant_id).await?;
    if !Store::bury(&mut tx, Tombstone::Services, &auth.tenant_id, &id).await? {
        return Err(ApiError::NotFound("service"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn validate_target_url(raw: &str) -> Result<String> {
    let raw = raw.trim();
    if raw.len() > 2048 {
        return Err(ApiError::invalid("targetUrl", "must be at most 2048 bytes"));
    }
    let url = url::Url::parse(raw).map_err(|err| {
        ApiError::invalid(
            "targetUrl",
            format!("must be an absolute http(s) URL ({err})"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::invalid(
            "targetUrl",
            "scheme must be http or https",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid("targetUrl", "must name a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ApiError::invalid(
            "targetUrl",
            "must not have a query or fragment; its path is the forwarding prefix",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::invalid("targetUrl", "must not embed credentials"));
    }
    Ok(url.to_string())
}

pub(crate) fn validate_health_check_path(path: &str) -> Result<String> {
    if !path.starts_with('/') || path.len() > 1024 || path.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            "healthCheckPath",
            "must be a path starting with / (at most 1024 bytes, no spaces)",
        ));
    }
    Ok(path.to_owned())
}

pub(crate) fn validate_timeout(timeout_ms: i64) -> Result<i64> {
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ApiError::invalid(
            "timeoutMs",
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        ));
    }
    Ok(timeout_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls_must_be_absolute_http() {
        assert_eq!(
            validate_target_url("http://10.0.0.1:8080/v1")
                .ok()
                .as_deref(),
            Some("http://10.0.0.1:8080/v1")
        );
        assert!(validate_target_url("https://api.example.com").is_ok());
        for bad in [
            "ftp://x",
            "/relative",
            "http://",
            "not a url",
            "http://h/?q=1",
            "http://u:p@h/",
        ] {
            assert!(validate_target_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeouts_are_bounded() {
        assert!(validate_timeout(0).is_err());
        assert!(validate_timeout(1).is_ok());
        assert!(validate_timeout(MAX_TIMEOUT_MS).is_ok());
        assert!(validate_timeout(MAX_TIMEOUT_MS + 1).is_err());
    }
}
