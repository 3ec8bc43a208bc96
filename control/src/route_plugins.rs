//! Tenant plugins attached to routes: which, in what order, with which
//! config and failure policy. Validation and queries; the route endpoints
//! call these.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;
use uuid::Uuid;

use gatehouse_protocol::PluginPhase;

use crate::error::{ApiError, Result};
use crate::routes::RouteEntity;
use crate::store::Store;

/// Plugins a route may carry.
pub const MAX_PLUGINS_PER_ROUTE: usize = 16;
/// The largest per-route plugin config, as JSON text.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// A plugin on a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutePlugin {
    /// One of the tenant's live plugins.
    pub plugin_id: String,
    /// Handed to the plugin as JSON (`config.get-json`); `{}` when absent.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// `closed` (default: a failure answers 503 `plugin_failed`) or `open`
    /// (a failure skips the plugin).
    #[serde(default = "closed")]
    pub failure_policy: String,
    /// `request` (default: runs after authentication and the rate limit) or
    /// `auth` (authenticates the request in place of the built-in key
    /// check, before the rate limit: the consumer it names is the
    /// request's).
    #[serde(default = "request_phase")]
    pub phase: String,
}

pub(crate) fn request_phase() -> String {
    PluginPhase::Request.as_str().to_owned()
}

pub(crate) fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

pub(crate) fn closed() -> String {
    "closed".to_owned()
}

/// Checks the form of a route's plugin list (which plugins are live is
/// checked by [`replace`], under the plugins' locks).
pub fn validate(plugins: &[RoutePlugin]) -> Result<Vec<RoutePlugin>> {
    if plugins.len() > MAX_PLUGINS_PER_ROUTE {
        return Err(ApiError::invalid(
            "plugins",
            format!("at most {MAX_PLUGINS_PER_ROUTE} plugins a route"),
        ));
    }
    let mut checked = Vec::with_capacity(plugins.len());
    for plugin in plugins {
        let unknown = || {
            ApiError::invalid(
                "plugins",
                format!("`{}` is not a live plugin of this tenant", plugin.plugin_id),
            )
        };
        let id = Uuid::parse_str(&plugin.plugin_id)
            .map_err(|_| unknown())?
            .to_string();
        validate_settings(&plugin.config, &plugin.failure_policy, &plugin.phase)?;
        checked.push(RoutePlugin {
            plugin_id: id,
            ..plugin.clone()
        });
    }
    Ok(checked)
}

/// Checks what a route says of one of its plugins: its failure policy,
/// phase and config size (all reported as `plugins`).
pub fn validate_settings(
    config: &serde_json::Value,
    failure_policy: &str,
    phase: &str,
) -> Result<()> {
    if !matches!(failure_policy, "closed" | "open") {
        return Err(ApiError::invalid(
            "plugins",
            "failurePolicy must be `closed` or `open`",
        ));
    }
    if PluginPhase::parse(phase).is_none() {
        return Err(ApiError::invalid(
            "plugins",
            "phase must be `auth` or `request`",
        ));
    }
    if config.to_string().len() > MAX_CONFIG_BYTES {
        return Err(ApiError::invalid(
            "plugins",
            format!("a plugin config must be at most {MAX_CONFIG_BYTES} bytes of JSON"),
        ));
    }
    Ok(())
}

/// The lock a plugin's deletion and its attachment to a route both take,
/// so that a route can never be left pointing at a deleted plugin (a
/// `closed` plugin would then fail open).
pub async fn lock_plugin(
    store: &Store,
    conn: &mut AnyConnection,
    plugin_id: &str,
) -> Result<(), sqlx::Error> {
    store
        .serialize_on(conn, &format!("plugin:{plugin_id}"))
        .await
}

/// Replaces a route's plugins, on `conn` (the route's transaction): 400
/// when one is not a live plugin of `tenant_id` by the time it is attached.
pub async fn replace(
    store: &Store,
    conn: &mut AnyConnection,
    tenant_id: &str,
    route_id: &str,
    plugins: &[RoutePlugin],
) -> Result<()> {
    // Locked in one order, so two writes attaching the same plugins cannot
    // wait on each other.
    let mut ids: Vec<&str> = plugins.iter().map(|p| p.plugin_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        lock_plugin(store, conn, id).await?;
        let live: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM plugins WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(tenant_id)
        .fetch_optional(&mut *conn)
        .await?;
        if live.is_none() {
            return Err(ApiError::invalid(
                "plugins",
                format!("`{id}` is not a live plugin of this tenant"),
            ));
        }
    }
    sqlx::query("DELETE FROM route_plugins WHERE route_id = $1")
        .bind(route_id)
        .execute(&mut *conn)
        .await?;
    for (position, plugin) in plugins.iter().enumerate() {
        sqlx::query(
            "INSERT INTO route_plugins (route_id, position, plugin_id, config, failure_policy, \
             tenant_id, phase) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(route_id)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(&plugin.plugin_id)
        .bind(plugin.config.to_string())
        .bind(&plugin.failure_policy)
        .bind(tenant_id)
        .bind(&plugin.phase)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[derive(FromRow)]
struct Row {
    route_id: String,
    plugin_id: String,
    config: String,
    failure_policy: String,
    phase: String,
}

/// Fills in the plugins of `routes` (all of one tenant).
pub async fn attach(
    store: &Store,
    tenant_id: &str,
    routes: &mut [RouteEntity],
) -> Result<(), sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT rp.route_id, rp.plugin_id, rp.config, rp.failure_policy, rp.phase FROM route_plugins rp \
         JOIN routes r ON r.id = rp.route_id WHERE r.tenant_id = $1 ORDER BY rp.route_id, rp.position",
    )
    .bind(tenant_id)
    .fetch_all(store.pool())
    .await?;
    let mut by_route: HashMap<String, Vec<RoutePlugin>> = HashMap::new();
    for row in rows {
        by_route.entry(row.route_id).or_default().push(RoutePlugin {
            plugin_id: row.plugin_id,
            config: serde_json::from_str(&row.config).unwrap_or_else(|_| empty_object()),
            failure_policy: row.failure_policy,
            phase: row.phase,
        });
    }
    for route in routes {
        route.plugins = by_route.remove(&route.id).unwrap_or_default();
    }
    Ok(())
}
