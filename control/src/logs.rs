//! Request logs: one row per request a gateway node handled. The paginated,
//! filtered listing, and the bulk insert the telemetry ingestion uses.

use axum::extract::State;
use gatehouse_protocol::telemetry::LogRecord;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::FromRow;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantAuth;
use crate::error::{ApiError, Result};
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::store::{Dialect, Sql, Timestamp};
use crate::validate;

/// Rows per page of `GET .../logs`.
pub const PAGE_SIZE: i64 = 50;

/// One request a gateway node handled (or answered itself).
#[derive(Debug, Clone, Serialize, Deserialize, FromRow, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestLog {
    pub id: String,
    pub tenant_id: String,
    /// The X-Request-Id the gateway set.
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub route_id: Option<String>,
    pub service_id: Option<String>,
    pub consumer_id: Option<String>,
    pub status_code: i64,
    pub latency_ms: f64,
    pub client_ip: String,
    pub bytes_in: i64,
    pub bytes_out: i64,
    /// When the request arrived.
    pub created_at: Timestamp,
}

/// Filters of `GET .../logs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct LogFilter {
    /// Only requests at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// Only requests before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    /// Only requests for exactly this path.
    pub path: Option<String>,
    pub status_code: Option<i64>,
    pub consumer_id: Option<Uuid>,
    /// 1-based page of 50 rows, newest first.
    pub page: Option<i64>,
}

/// The log endpoints.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_logs))
}

/// Paginated request logs, 50 per page, newest first.
#[utoipa::path(get, path = "/api/tenants/{tenantId}/logs", tag = "telemetry",
    params(("tenantId" = String, Path), LogFilter),
    responses((status = 200, body = [RequestLog])),
    security(("jwt" = [])))]
async fn list_logs(
    State(state): State<AppState>,
    auth: TenantAuth,
    Query(filter): Query<LogFilter>,
) -> Result<Json<Vec<RequestLog>>> {
    let page = validate::page(filter.page)?;
    if let Some(status) = filter.status_code
        && !(100..=599).contains(&status)
    {
        return Err(ApiError::invalid(
            "statusCode",
            "must be an HTTP status (100..599)",
        ));
    }
    let mut query = Sql::new(
        state.store().dialect(),
        "SELECT * FROM request_logs WHERE tenant_id = ",
    );
    query.bind(auth.tenant_id);
    if let Some(from) = filter.from {
        query.push(" AND created_at >= ").bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND created_at < ").bind(to);
    }
    if let Some(path) = filter.path {
        query.push(" AND path = ").bind(path);
    }
    if let Some(status) = filter.status_code {
        query.push(" AND status_code = ").bind(status);
    }
    if let Some(consumer) = filter.consumer_id {
        query.push(" AND consumer_id = ").bind(consumer.to_string());
    }
    query
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .bind(PAGE_SIZE)
        .push(" OFFSET ")
        .bind((page - 1) * PAGE_SIZE);
    let logs = query.query_as()?.fetch_all(state.store().pool()).await?;
    Ok(Json(logs))
}

/// Inserts a tenant's request logs on `conn` (a transaction), in
/// multi-row statements. A log whose id is already stored is skipped, so a
/// node may safely send a batch twice.
pub async fn insert(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: &str,
    logs: &[LogRecord],
) -> Result<(), sqlx::Error> {
    // 14 columns a row: 28,000 parameters, under SQLite's 32,766 and
    // PostgreSQL's 65,535. Fewer statements mean fewer round trips.
    const ROWS_PER_STATEMENT: usize = 2_000;
    for chunk in logs.chunks(ROWS_PER_STATEMENT) {
        let mut query = Sql::new(
            dialect,
            "INSERT INTO request_logs (id, tenant_id, request_id, method, path, route_id, \
             service_id, consumer_id, status_code, latency_ms, client_ip, bytes_in, bytes_out, \
             created_at) VALUES ",
        );
        for log in chunk {
            query.row(|row| {
                row.bind(log.id.clone())
                    .bind(tenant_id.to_owned())
                    .bind(log.request_id.clone())
                    .bind(log.method.clone())
                    .bind(log.path.clone())
                    .bind(log.route_id.clone())
                    .bind(log.service_id.clone())
                    .bind(log.consumer_id.clone())
                    .bind(log.status_code)
                    .bind(log.latency_ms)
                    .bind(log.client_ip.clone())
                    .bind(log.bytes_in)
                    .bind(log.bytes_out)
                    .bind(Timestamp::from_millis(log.at_ms));
            });
        }
        query.push(" ON CONFLICT (id) DO NOTHING");
        query.query()?.execute(&mut *conn).await?;
    }
    Ok(())
}
