//! The rows of a tenant's live config, read the same way by its readers:
//! the snapshot and the deltas nodes are sent (`gateway::snapshot`) and the
//! config document (`declarative::live`). Each list is oldest first and
//! holds the rows a config write changed after version `since` ([`ALL`]
//! for every row); run them in one transaction for one moment of the
//! config.

use sqlx::{AnyConnection, FromRow};

use crate::store::Flag;

/// `since` for every row: rows are stamped with versions from 0 up.
pub const ALL: i64 = -1;

#[derive(Debug, FromRow)]
pub struct ServiceRow {
    pub id: String,
    pub name: String,
    pub target_url: String,
    pub health_check_path: Option<String>,
    pub timeout_ms: i64,
}

#[derive(Debug, FromRow)]
pub struct RouteRow {
    pub id: String,
    pub method: String,
    pub path_pattern: String,
    pub service_id: String,
    #[sqlx(try_from = "Flag")]
    pub auth_required: bool,
    pub rate_limit_override: Option<i64>,
    #[sqlx(try_from = "Flag")]
    pub enabled: bool,
}

/// A plugin on a route, with what the readers need of the plugin.
#[derive(Debug, FromRow)]
pub struct AttachmentRow {
    pub route_id: String,
    pub plugin_id: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub config: String,
    pub failure_policy: String,
    pub phase: String,
}

#[derive(Debug, FromRow)]
pub struct ConsumerRow {
    pub id: String,
    pub name: String,
    pub api_key_hash: String,
    pub rate_limit_tier: String,
}

/// The tenant's live services.
pub async fn services(
    conn: &mut AnyConnection,
    tenant_id: &str,
    since: i64,
) -> Result<Vec<ServiceRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, target_url, health_check_path, timeout_ms FROM services \
         WHERE tenant_id = $1 AND deleted_at IS NULL AND config_version > $2 \
         ORDER BY created_at, id",
    )
    .bind(tenant_id)
    .bind(since)
    .fetch_all(conn)
    .await
}

/// The tenant's live routes (some may name a deleted service).
pub async fn routes(
    conn: &mut AnyConnection,
    tenant_id: &str,
    since: i64,
) -> Result<Vec<RouteRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, method, path_pattern, service_id, auth_required, rate_limit_override, enabled \
         FROM routes WHERE tenant_id = $1 AND deleted_at IS NULL AND config_version > $2 \
         ORDER BY created_at, id",
    )
    .bind(tenant_id)
    .bind(since)
    .fetch_all(conn)
    .await
}

/// The plugins on the tenant's live routes (those changed after `since`),
/// each route's in order.
///
/// A plugin in use cannot be deleted (plugins.rs), so every attachment
/// names a live plugin; none is filtered out here, so that a broken
/// invariant shows (a node's route fails as its policy says) instead of a
/// route silently running without the plugin.
pub async fn attachments(
    conn: &mut AnyConnection,
    tenant_id: &str,
    since: i64,
) -> Result<Vec<AttachmentRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT rp.route_id, rp.plugin_id, p.name, p.version, p.sha256, rp.config, \
         rp.failure_policy, rp.phase \
         FROM route_plugins rp JOIN routes r ON r.id = rp.route_id JOIN plugins p ON p.id = rp.plugin_id \
         WHERE r.tenant_id = $1 AND r.deleted_at IS NULL AND r.config_version > $2 \
         ORDER BY rp.route_id, rp.position",
    )
    .bind(tenant_id)
    .bind(since)
    .fetch_all(conn)
    .await
}

/// The tenant's live (not revoked) consumers.
pub async fn consumers(
    conn: &mut AnyConnection,
    tenant_id: &str,
    since: i64,
) -> Result<Vec<ConsumerRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, api_key_hash, rate_limit_tier FROM consumers \
         WHERE tenant_id = $1 AND revoked_at IS NULL AND config_version > $2 \
         ORDER BY created_at, id",
    )
    .bind(tenant_id)
    .bind(since)
    .fetch_all(conn)
    .await
}
