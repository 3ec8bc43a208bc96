//! Request logs: one row per request a gateway node handled. The paginated,
//! filtered listing, and the bulk insert the telemetry ingestion uses.

use std::borrow::Cow;

use axum::extract::State;
use gatehouse_protocol::telemetry::LogRecord;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use sqlx::{AnyConnection, AssertSqlSafe};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantAuth;
use crate::error::{ApiError, Result};
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::store::{ArrayLiteral, Dialect, Sql, Timestamp};
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

/// What an insert does with a log whose id is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// Fails (a unique violation). A batch is stored once (its id is
    /// recorded with it) and its logs' ids are its own, so this is the
    /// normal case, and the cheaper statement on PostgreSQL.
    Refuse,
    /// Skips it: for a batch that repeats logs stored before (a node that
    /// resent them in a new batch, or a batch redelivered after its id was
    /// forgotten).
    Skip,
}

/// Inserts a tenant's request logs, those of the batch `batch_id`, on
/// `conn` (a transaction): one statement and one round trip whatever the
/// batch size, no per-row parameters. PostgreSQL gets a column per
/// parameter as an array literal and unnests them; SQLite gets the rows as
/// one JSON parameter (`jsonb_each`, see [`INSERT_FROM_JSON_SQLITE`]). A
/// log without an id gets one derived from the tenant, the batch and its
/// position, the same whenever the batch is delivered.
pub async fn insert(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: &str,
    batch_id: &str,
    logs: &[LogRecord],
    duplicates: Duplicates,
) -> Result<(), sqlx::Error> {
    if logs.is_empty() {
        return Ok(());
    }
    let base = batch_uuid(tenant_id, batch_id);
    let rows: Vec<Row<'_>> = logs
        .iter()
        .enumerate()
        .map(|(position, log)| {
            let id = if log.id.is_empty() {
                derived_id(base, position)
            } else {
                log.id.clone()
            };
            Row::new(id, log)
        })
        .collect();
    let on_conflict = match duplicates {
        Duplicates::Refuse => "",
        Duplicates::Skip => " ON CONFLICT (id) DO NOTHING",
    };
    match dialect {
        Dialect::Postgres => {
            let mut query = sqlx::query(AssertSqlSafe(format!(
                "{INSERT_FROM_ARRAYS_POSTGRES}{on_conflict}"
            )))
            .bind(tenant_id);
            for column in postgres_columns(&rows) {
                query = query.bind(column);
            }
            query.execute(&mut *conn).await?;
        }
        Dialect::Sqlite => {
            let rows =
                serde_json::to_string(&rows).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
            sqlx::query(AssertSqlSafe(format!(
                "{INSERT_FROM_JSON_SQLITE}{on_conflict}"
            )))
            .bind(tenant_id)
            .bind(rows)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// The rows as the array literals `$2`..`$14` of
/// [`INSERT_FROM_ARRAYS_POSTGRES`], a column each.
fn postgres_columns(rows: &[Row<'_>]) -> [String; 13] {
    let mut columns: [ArrayLiteral; 13] =
        std::array::from_fn(|_| ArrayLiteral::with_capacity(rows.len(), 36));
    let [
        id,
        request_id,
        method,
        path,
        route_id,
        service_id,
        consumer_id,
        status_code,
        latency_ms,
        client_ip,
        bytes_in,
        bytes_out,
        at_ms,
    ] = &mut columns;
    for row in rows {
        id.push_text(Some(&row.id));
        request_id.push_text(Some(&row.request_id));
        method.push_text(Some(&row.method));
        path.push_text(Some(&row.path));
        route_id.push_text(row.route_id.as_deref());
        service_id.push_text(row.service_id.as_deref());
        consumer_id.push_text(row.consumer_id.as_deref());
        status_code.push_number(row.status_code);
        latency_ms.push_number(row.latency_ms);
        client_ip.push_text(Some(&row.client_ip));
        bytes_in.push_number(row.bytes_in);
        bytes_out.push_number(row.bytes_out);
        at_ms.push_number(row.at_ms);
    }
    columns.map(ArrayLiteral::finish)
}

/// A log as the inserts take it: its id given, its text storable. SQLite's
/// reads it as an object with camelCase keys (the wire's array form is the
/// node's, not the database's).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    id: String,
    request_id: Cow<'a, str>,
    method: Cow<'a, str>,
    path: Cow<'a, str>,
    route_id: Option<Cow<'a, str>>,
    service_id: Option<Cow<'a, str>>,
    consumer_id: Option<Cow<'a, str>>,
    status_code: i64,
    latency_ms: f64,
    client_ip: Cow<'a, str>,
    bytes_in: i64,
    bytes_out: i64,
    at_ms: i64,
}

impl<'a> Row<'a> {
    fn new(id: String, log: &'a LogRecord) -> Self {
        Self {
            id,
            request_id: storable(&log.request_id),
            method: storable(&log.method),
            path: storable(&log.path),
            route_id: log.route_id.as_deref().map(storable),
            service_id: log.service_id.as_deref().map(storable),
            consumer_id: log.consumer_id.as_deref().map(storable),
            status_code: log.status_code,
            latency_ms: log.latency_ms,
            client_ip: storable(&log.client_ip),
            bytes_in: log.bytes_in,
            bytes_out: log.bytes_out,
            at_ms: log.at_ms,
        }
    }
}

/// Text as both databases can hold it: PostgreSQL's cannot contain NUL,
/// which becomes U+FFFD (the row is stored with it replaced rather than
/// failing its whole batch, which the node would resend forever).
fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// The UUID the log ids of a tenant's batch derive from (a name-based UUID
/// of both: another tenant's batch of the same id derives other ids).
fn batch_uuid(tenant_id: &str, batch_id: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("{tenant_id}/{batch_id}").as_bytes(),
    )
}

/// The id of the log at `position` in the batch of `base`: the position
/// XORed into the last 48 bits, which leaves the UUID's version and variant
/// as they are.
fn derived_id(base: Uuid, position: usize) -> String {
    let mut bytes = *base.as_bytes();
    let position = (position as u64).to_be_bytes();
    for (byte, mask) in bytes[10..].iter_mut().zip(&position[2..]) {
        *byte ^= mask;
    }
    Uuid::from_bytes(bytes).to_string()
}

/// `$2`..`$14` are the logs' columns as array literals (see
/// [`postgres_columns`]). Followed by the conflict clause of [`Duplicates`].
const INSERT_FROM_ARRAYS_POSTGRES: &str = "INSERT INTO request_logs (id, tenant_id, request_id, \
     method, path, route_id, service_id, consumer_id, status_code, latency_ms, client_ip, \
     bytes_in, bytes_out, created_at) \
     SELECT r.id, $1, r.request_id, r.method, r.path, r.route_id, r.service_id, r.consumer_id, \
     r.status_code, r.latency_ms, r.client_ip, r.bytes_in, r.bytes_out, r.at_ms \
     FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::bigint[], $10::double precision[], $11::text[], $12::bigint[], \
     $13::bigint[], $14::bigint[]) \
     AS r(id, request_id, method, path, route_id, service_id, consumer_id, status_code, \
     latency_ms, client_ip, bytes_in, bytes_out, at_ms)";

/// `$2` is a JSON array of [`Row`]s (`WHERE true` lets SQLite's parser see
/// an upsert clause after it). `jsonb_each`, not `json_each`: the array is
/// parsed once and each row's fields are read from its binary form, where
/// `json_each` turns each row back into text that every `->>` parses again
/// (over half of the control plane's CPU under a logs load). Needs SQLite
/// 3.45 or later; the bundled one (libsqlite3-sys) is newer.
const INSERT_FROM_JSON_SQLITE: &str = "INSERT INTO request_logs (id, tenant_id, request_id, method, \
     path, route_id, service_id, consumer_id, status_code, latency_ms, client_ip, bytes_in, \
     bytes_out, created_at) \
     SELECT value ->> '$.id', $1, value ->> '$.requestId', value ->> '$.method', \
     value ->> '$.path', value ->> '$.routeId', value ->> '$.serviceId', \
     value ->> '$.consumerId', value ->> '$.statusCode', value ->> '$.latencyMs', \
     value ->> '$.clientIp', value ->> '$.bytesIn', value ->> '$.bytesOut', value ->> '$.atMs' \
     FROM jsonb_each($2) WHERE true";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_log_ids_are_stable_distinct_and_per_tenant() {
        let base = batch_uuid("tenant-a", "batch-1");
        assert_eq!(
            base,
            batch_uuid("tenant-a", "batch-1"),
            "the same on every delivery"
        );
        assert_ne!(
            base,
            batch_uuid("tenant-b", "batch-1"),
            "another tenant's batch"
        );
        let ids: std::collections::HashSet<_> = (0..10_000).map(|i| derived_id(base, i)).collect();
        assert_eq!(ids.len(), 10_000);
        for id in [derived_id(base, 0), derived_id(base, 9_999)] {
            let parsed = Uuid::parse_str(&id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 5);
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        }
        assert_eq!(derived_id(base, 0), base.to_string());
    }
}
