//! Building a tenant's config snapshot from the database, in one read
//! transaction that sees one moment (REPEATABLE READ on PostgreSQL; a
//! SQLite read transaction is a snapshot already), so routes never point at
//! services or plugins from another moment and the version names exactly
//! what was read.

use gatehouse_protocol::{
    ConfigIdentity, ConfigSnapshot, ConsumerConfig, PluginPhase, RateLimits, RouteConfig,
    RoutePluginConfig, ServiceConfig,
};

use crate::config_rows;
use crate::store::Store;

/// Which config `tenant_id` has now (one small read, made at every wake-up
/// and heartbeat of a node's connection).
pub async fn current(store: &Store, tenant_id: &str) -> Result<ConfigIdentity, sqlx::Error> {
    let (version, revision): (i64, String) =
        sqlx::query_as("SELECT config_version, config_revision FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(store.pool())
            .await?;
    Ok(ConfigIdentity {
        tenant_id: tenant_id.to_owned(),
        version,
        revision,
    })
}

/// The tenant's current config.
pub async fn build(store: &Store, tenant_id: &str) -> Result<ConfigSnapshot, sqlx::Error> {
    let mut tx = store.begin_snapshot().await?;
    let (version, revision): (i64, String) =
        sqlx::query_as("SELECT config_version, config_revision FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(&mut *tx)
            .await?;
    let services = config_rows::services(&mut tx, tenant_id).await?;
    let routes = config_rows::routes(&mut tx, tenant_id).await?;
    let attached = config_rows::attachments(&mut tx, tenant_id).await?;
    let mut plugins_of: std::collections::HashMap<String, Vec<RoutePluginConfig>> =
        std::collections::HashMap::new();
    for row in attached {
        plugins_of
            .entry(row.route_id)
            .or_default()
            .push(RoutePluginConfig {
                plugin_id: row.plugin_id,
                name: row.name.into(),
                sha256: row.sha256,
                config_json: row.config.into(),
                failure_policy: row.failure_policy,
                phase: PluginPhase::parse(&row.phase).unwrap_or_default(),
            });
    }
    let consumers = config_rows::consumers(&mut tx, tenant_id).await?;
    let tiers: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT name, requests_per_minute FROM rate_limit_tiers WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_all(&mut *tx)
    .await?;
    let (anonymous_per_minute,): (Option<i64>,) =
        sqlx::query_as("SELECT anonymous_requests_per_minute FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(ConfigSnapshot {
        rate_limits: RateLimits {
            tiers: tiers.into_iter().collect(),
            anonymous_per_minute,
        },
        tenant_id: tenant_id.to_owned(),
        version,
        revision,
        services: services
            .into_iter()
            .map(|s| ServiceConfig {
                id: s.id,
                target_url: s.target_url,
                health_check_path: s.health_check_path,
                timeout_ms: s.timeout_ms,
            })
            .collect(),
        routes: routes
            .into_iter()
            .map(|r| RouteConfig {
                plugins: plugins_of.remove(&r.id).unwrap_or_default(),
                id: r.id,
                method: r.method,
                path_pattern: r.path_pattern,
                service_id: r.service_id,
                auth_required: r.auth_required,
                rate_limit_override: r.rate_limit_override,
                enabled: r.enabled,
            })
            .collect(),
        consumers: consumers
            .into_iter()
            .map(|c| ConsumerConfig {
                id: c.id,
                api_key_hash: c.api_key_hash,
                rate_limit_tier: c.rate_limit_tier,
            })
            .collect(),
    })
}
