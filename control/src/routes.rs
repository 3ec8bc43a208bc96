//! Routes: method + path pattern → service. Endpoints, validation and
//! queries.

use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_protocol::RoutePattern;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantAuth;
use crate::error::{ApiError, Result, conflict_on_unique};
use crate::extract::{Json, PathId, double_option};
use crate::gateway::ConfigWrite;
use crate::route_plugins::{self, RoutePlugin};
use crate::state::AppState;
use crate::store::{Flag, Store, Timestamp, Tombstone};
use crate::tiers::MAX_PER_MINUTE;

/// The methods a route may name; `ANY` matches every method.
pub const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

/// A route: which requests go to which service, and under which policy.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteEntity {
    pub id: String,
    pub tenant_id: String,
    /// GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY.
    pub method: String,
    /// `/users/:id`, `/static/*`, ...
    pub path_pattern: String,
    pub service_id: String,
    #[sqlx(try_from = "Flag")]
    pub auth_required: bool,
    /// Requests per minute on this route, replacing the consumer's tier.
    pub rate_limit_override: Option<i64>,
    #[sqlx(try_from = "Flag")]
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
    /// Tenant plugins, run in order after the built-ins.
    #[sqlx(skip)]
    pub plugins: Vec<RoutePlugin>,
}

/// Body of `POST .../routes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRoute {
    pub method: String,
    pub path_pattern: String,
    pub service_id: String,
    pub auth_required: bool,
    #[serde(default)]
    pub rate_limit_override: Option<i64>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub plugins: Vec<RoutePlugin>,
}

/// Body of `PATCH .../routes/{id}`: any subset of the writable fields.
/// Read-only fields of the entity are accepted and ignored.
#[derive(Debug, Deserialize, ToSchema)]
// The read-only fields of the entity are accepted (clients send entities back) and ignored.
#[allow(dead_code)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateRoute {
    pub method: Option<String>,
    pub path_pattern: Option<String>,
    pub service_id: Option<String>,
    pub auth_required: Option<bool>,
    /// `null` removes the override.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub rate_limit_override: Option<Option<i64>>,
    pub enabled: Option<bool>,
    /// Replaces the route's plugin list.
    pub plugins: Option<Vec<RoutePlugin>>,
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

/// The route endpoints.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_routes, create_route))
        .routes(routes!(update_route, delete_route))
}

/// List all non-deleted routes.
#[utoipa::path(get, path = "/api/tenants/{tenantId}/routes", tag = "routes",
    params(("tenantId" = String, Path)),
    responses((status = 200, body = [RouteEntity])),
    security(("jwt" = [])))]
async fn list_routes(
    State(state): State<AppState>,
    auth: TenantAuth,
) -> Result<Json<Vec<RouteEntity>>> {
    let mut routes: Vec<RouteEntity> = state
        .store()
        .live(Tombstone::Routes, &auth.tenant_id)
        .await?;
    route_plugins::attach(state.store(), &auth.tenant_id, &mut routes).await?;
    Ok(Json(routes))
}

/// Create a new route.
#[utoipa::path(post, path = "/api/tenants/{tenantId}/routes", tag = "routes",
    params(("tenantId" = String, Path)), request_body = CreateRoute,
    responses((status = 201, body = RouteEntity), (status = 409, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn create_route(
    State(state): State<AppState>,
    auth: TenantAuth,
    Json(body): Json<CreateRoute>,
) -> Result<(StatusCode, Json<RouteEntity>)> {
    let method = validate_method(&body.method)?;
    let pattern = validate_pattern(&body.path_pattern)?;
    let rate_limit_override = body
        .rate_limit_override
        .map(validate_rate_limit)
        .transpose()?;
    let plugins = route_plugins::validate(&body.plugins)?;
    let mut tx = ConfigWrite::begin(&state, &auth.tenant_id).await?;
    let service_id = require_live_service(&mut tx, &auth.tenant_id, &body.service_id).await?;
    let mut route = insert(
        &mut tx,
        &auth.tenant_id,
        &NewRoute {
            method,
            pattern,
            service_id,
            auth_required: body.auth_required,
            rate_limit_override,
            enabled: body.enabled.unwrap_or(true),
        },
    )
    .await?;
    route_plugins::replace(state.store(), &mut tx, &auth.tenant_id, &route.id, &plugins).await?;
    tx.commit().await?;
    route.plugins = plugins;
    Ok((StatusCode::CREATED, Json(route)))
}

const DUPLICATE_ROUTE: &str = "a live route with this method and path pattern already exists";

/// A checked route to store.
pub struct NewRoute {
    pub method: String,
    pub pattern: RoutePattern,
    pub service_id: String,
    pub auth_required: bool,
    pub rate_limit_override: Option<i64>,
    pub enabled: bool,
}

/// Stores a new route of `tenant_id` on `conn` (a config write that checked
/// its service), without plugins: 409 `route_conflict` when a live route
/// matches the same requests.
pub async fn insert(
    conn: &mut AnyConnection,
    tenant_id: &str,
    route: &NewRoute,
) -> Result<RouteEntity> {
    let now = Timestamp::now();
    sqlx::query_as(
        "INSERT INTO routes (id, tenant_id, method, path_pattern, path_shape, service_id, \
         auth_required, rate_limit_override, enabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING *",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(tenant_id)
    .bind(&route.method)
    .bind(route.pattern.to_string())
    .bind(route.pattern.shape())
    .bind(&route.service_id)
    .bind(route.auth_required)
    .bind(route.rate_limit_override)
    .bind(route.enabled)
    .bind(now)
    .fetch_one(conn)
    .await
    .map_err(conflict_on_unique("route_conflict", DUPLICATE_ROUTE))
}

/// Update an existing route. Accepts partial updates.
#[utoipa::path(patch, path = "/api/tenants/{tenantId}/routes/{id}", tag = "routes",
    params(("tenantId" = String, Path), ("id" = String, Path)), request_body = UpdateRoute,
    responses((status = 200, body = RouteEntity), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn update_route(
    State(state): State<AppState>,
    auth: TenantAuth,
    PathId(id): PathId,
    Json(body): Json<UpdateRoute>,
) -> Result<Json<RouteEntity>> {
    let method = body.method.as_deref().map(validate_method).transpose()?;
    let pattern = body
        .path_pattern
        .as_deref()
        .map(validate_pattern)
        .transpose()?;
    let rate_limit_override = match body.rate_limit_override {
        Some(Some(limit)) => Some(Some(validate_rate_limit(limit)?)),
        other => other,
    };
    let plugins = body
        .plugins
        .as_deref()
        .map(route_plugins::validate)
        .transpose()?;
    let mut tx = ConfigWrite::begin(&state, &auth.tenant_id).await?;
    let service_id = match &body.service_id {
        Some(service_id) => Some(require_live_service(&mut tx, &auth.tenant_id, service_id).await?),
        None => None,
    };
    // One statement writes only the fields the body names, so concurrent
    // updates of different fields all survive.
    let route: RouteEntity = sqlx::query_as(
        "UPDATE routes SET method = COALESCE($1, method), \
         path_pattern = COALESCE($2, path_pattern), path_shape = COALESCE($3, path_shape), \
         service_id = COALESCE($4, service_id), auth_required = COALESCE($5, auth_required), \
         rate_limit_override = CASE WHEN $6 THEN $7 ELSE rate_limit_override END, \
         enabled = COALESCE($8, enabled), updated_at = $9 \
         WHERE id = $10 AND tenant_id = $11 AND deleted_at IS NULL RETURNING *",
    )
    .bind(method)
    .bind(pattern.as_ref().map(ToString::to_string))
    .bind(pattern.as_ref().map(RoutePattern::shape))
    .bind(service_id)
    .bind(body.auth_required)
    .bind(rate_limit_override.is_some())
    .bind(rate_limit_override.flatten())
    .bind(body.enabled)
    .bind(Timestamp::now())
    .bind(&id)
    .bind(&auth.tenant_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(conflict_on_unique("route_conflict", DUPLICATE_ROUTE))?
    .ok_or(ApiError::NotFound("route"))?;
    if let Some(plugins) = &plugins {
        route_plugins::replace(state.store(), &mut tx, &auth.tenant_id, &route.id, plugins).await?;
    }
    tx.commit().await?;
    let mut routes = [route];
    route_plugins::attach(state.store(), &auth.tenant_id, &mut routes).await?;
    let [route] = routes;
    Ok(Json(route))
}

/// Soft-delete a route (sets deletedAt).
#[utoipa::path(delete, path = "/api/tenants/{tenantId}/routes/{id}", tag = "routes",
    params(("tenantId" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn delete_route(
    State(state): State<AppState>,
    auth: TenantAuth,
    PathId(id): PathId,
) -> Result<StatusCode> {
    let mut tx = ConfigWrite::begin(&state, &auth.tenant_id).await?;
    if !Store::bury(&mut tx, Tombstone::Routes, &auth.tenant_id, &id).await? {
        return Err(ApiError::NotFound("route"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The service id, if it names a live service of this tenant; 400
/// otherwise. Checked in the route's write, so the service cannot go
/// between the check and the route.
async fn require_live_service(
    conn: &mut AnyConnection,
    tenant_id: &str,
    raw: &str,
) -> Result<String> {
    let unknown = || ApiError::invalid("serviceId", "must name a live service of this tenant");
    let id = Uuid::parse_str(raw).map_err(|_| unknown())?.to_string();
    let live: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM services WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
    )
    .bind(&id)
    .bind(tenant_id)
    .fetch_optional(conn)
    .await?;
    live.map(|(id,)| id).ok_or_else(unknown)
}

pub(crate) fn validate_method(raw: &str) -> Result<String> {
    let method = raw.trim().to_ascii_uppercase();
    if METHODS.contains(&method.as_str()) {
        Ok(method)
    } else {
        Err(ApiError::invalid(
            "method",
            format!("must be one of {}", METHODS.join(", ")),
        ))
    }
}

pub(crate) fn validate_pattern(raw: &str) -> Result<RoutePattern> {
    RoutePattern::parse(raw)
        .map_err(|err| ApiError::invalid("pathPattern", format!("invalid path pattern: {err}")))
}

pub(crate) fn validate_rate_limit(limit: i64) -> Result<i64> {
    if (1..=MAX_PER_MINUTE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid(
            "rateLimitOverride",
            format!("must be between 1 and {MAX_PER_MINUTE} requests per minute, or null"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_normalised_and_checked() {
        assert_eq!(validate_method("get").ok().as_deref(), Some("GET"));
        assert_eq!(validate_method("ANY").ok().as_deref(), Some("ANY"));
        assert!(validate_method("TRACE").is_err());
        assert!(validate_method("").is_err());
    }

    #[test]
    fn overrides_are_positive() {
        assert!(validate_rate_limit(0).is_err());
        assert!(validate_rate_limit(-5).is_err());
        assert!(validate_rate_limit(60).is_ok());
    }
}
