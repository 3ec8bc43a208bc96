//! Error events: upstream failures, timeouts, plugin failures and the like,
//! grouped by kind and route so a storm of one failure is one event with a
//! count. Listing, resolving, and recording.

use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_protocol::telemetry::ErrorOccurrence;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::FromRow;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantAuth;
use crate::error::{ApiError, Result};
use crate::extract::{Json, PathId, Query};
use crate::state::AppState;
use crate::store::{Flag, Sql, Store, Timestamp};
use crate::validate;

/// Events per page of `GET .../errors`.
pub const PAGE_SIZE: i64 = 50;
/// Occurrences of one kind on one route within this window share an event.
pub const GROUPING_WINDOW_MS: i64 = 60 * 60 * 1000;

/// A failure seen by the gateway, with how often and when.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEvent {
    pub id: String,
    pub tenant_id: String,
    /// e.g. `upstream_unavailable`, `upstream_timeout`, `plugin_failed`.
    pub kind: String,
    /// What happened, for a person: "could not connect to 127.0.0.1:9
    /// (connection refused)".
    pub message: String,
    /// The underlying error as the node saw it, for operators (null when
    /// the message says all).
    pub detail: Option<String>,
    pub route_id: Option<String>,
    pub service_id: Option<String>,
    pub plugin_id: Option<String>,
    pub status_code: Option<i64>,
    /// How many times it happened while this event was open.
    pub occurrences: i64,
    pub first_seen_at: Timestamp,
    pub last_seen_at: Timestamp,
    #[sqlx(try_from = "Flag")]
    pub resolved: bool,
    pub resolved_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// Filters of `GET .../errors`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ErrorFilter {
    /// Only resolved (`true`) or open (`false`) events.
    pub resolved: Option<bool>,
    /// 1-based page of 50 events, most recent first.
    pub page: Option<i64>,
}

/// Body of `PATCH .../errors/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveError {
    /// Must be `true`.
    pub resolved: bool,
}

/// The error-event endpoints.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_errors))
        .routes(routes!(resolve_error))
}

/// Paginated error events, most recently seen first.
#[utoipa::path(get, path = "/api/tenants/{tenantId}/errors", tag = "telemetry",
    params(("tenantId" = String, Path), ErrorFilter),
    responses((status = 200, body = [ErrorEvent])),
    security(("jwt" = [])))]
async fn list_errors(
    State(state): State<AppState>,
    auth: TenantAuth,
    Query(filter): Query<ErrorFilter>,
) -> Result<Json<Vec<ErrorEvent>>> {
    let page = validate::page(filter.page)?;
    let mut query = Sql::new(
        state.store().dialect(),
        "SELECT * FROM error_events WHERE tenant_id = ",
    );
    query.bind(auth.tenant_id);
    if let Some(resolved) = filter.resolved {
        query.push(" AND resolved = ").bind(resolved);
    }
    query
        .push(" ORDER BY last_seen_at DESC, id DESC LIMIT ")
        .bind(PAGE_SIZE)
        .push(" OFFSET ")
        .bind((page - 1) * PAGE_SIZE);
    let events = query.query_as()?.fetch_all(state.store().pool()).await?;
    Ok(Json(events))
}

/// Mark an error event as resolved.
#[utoipa::path(patch, path = "/api/tenants/{tenantId}/errors/{id}", tag = "telemetry",
    params(("tenantId" = String, Path), ("id" = String, Path)), request_body = ResolveError,
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn resolve_error(
    State(state): State<AppState>,
    auth: TenantAuth,
    PathId(id): PathId,
    Json(body): Json<ResolveError>,
) -> Result<StatusCode> {
    if !body.resolved {
        return Err(ApiError::invalid(
            "resolved",
            "only resolving is supported; a new occurrence opens a new event",
        ));
    }
    let found = sqlx::query(
        "UPDATE error_events SET resolved = $1, \
         resolved_at = COALESCE(resolved_at, $2) WHERE id = $3 AND tenant_id = $4",
    )
    .bind(true)
    .bind(Timestamp::now())
    .bind(&id)
    .bind(&auth.tenant_id)
    .execute(state.store().pool())
    .await?;
    if found.rows_affected() == 0 {
        return Err(ApiError::NotFound("error event"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Records an occurrence in its own transaction; returns the event id.
pub async fn record(
    store: &Store,
    tenant_id: &str,
    occurrence: &ErrorOccurrence,
) -> Result<String, sqlx::Error> {
    let mut tx = store.begin_write().await?;
    let id = record_on(store, &mut tx, tenant_id, occurrence).await?;
    tx.commit().await?;
    Ok(id)
}

/// Records an occurrence on `conn` (a transaction): it joins the open event
/// of the same kind, route and plugin seen within the grouping window, or
/// opens a new one. Returns the event id. Two transactions recording the
/// same kind, route and plugin (two batches stored at once) take turns, so
/// the second joins the event the first opened.
pub async fn record_on(
    store: &Store,
    conn: &mut AnyConnection,
    tenant_id: &str,
    occurrence: &ErrorOccurrence,
) -> Result<String, sqlx::Error> {
    let group = format!(
        "error-event/{tenant_id}/{}/{}/{}",
        occurrence.kind,
        occurrence.route_id.as_deref().unwrap_or_default(),
        occurrence.plugin_id.as_deref().unwrap_or_default()
    );
    store.serialize_on(conn, &group).await?;
    let at = Timestamp::from_millis(occurrence.at_ms);
    let open: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM error_events WHERE tenant_id = $1 AND kind = $2 \
         AND COALESCE(route_id, '') = $3 AND COALESCE(plugin_id, '') = $4 AND resolved = $5 \
         AND last_seen_at >= $6 ORDER BY last_seen_at DESC LIMIT 1",
    )
    .bind(tenant_id)
    .bind(&occurrence.kind)
    .bind(occurrence.route_id.clone().unwrap_or_default())
    .bind(occurrence.plugin_id.clone().unwrap_or_default())
    .bind(false)
    .bind(at.add_millis(-GROUPING_WINDOW_MS))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((id,)) = open {
        sqlx::query(
            "UPDATE error_events SET occurrences = occurrences + 1, message = $1, \
             detail = $5, status_code = $2, last_seen_at = CASE WHEN last_seen_at > $3 \
             THEN last_seen_at ELSE $3 END WHERE id = $4",
        )
        .bind(&occurrence.message)
        .bind(occurrence.status_code)
        .bind(at)
        .bind(&id)
        .bind(&occurrence.detail)
        .execute(&mut *conn)
        .await?;
        return Ok(id);
    }
    let id = Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO error_events (id, tenant_id, kind, message, route_id, service_id, \
         plugin_id, status_code, occurrences, first_seen_at, last_seen_at, resolved, \
         created_at, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9, $10, $11, $12)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(&occurrence.kind)
    .bind(&occurrence.message)
    .bind(&occurrence.route_id)
    .bind(&occurrence.service_id)
    .bind(&occurrence.plugin_id)
    .bind(occurrence.status_code)
    .bind(at)
    .bind(false)
    .bind(Timestamp::now())
    .bind(&occurrence.detail)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}
