//! Building what a node is sent from the database: a tenant's whole config
//! ([`build`]) or what changed since a config it serves ([`delta`]). Each is
//! read in one read transaction that sees one moment (REPEATABLE READ on
//! PostgreSQL; a SQLite read transaction is a snapshot already), so routes
//! never point at services or plugins from another moment and the version
//! names exactly what was read.
//!
//! A delta is the rows stamped (by the triggers of migration 13) with a
//! version after the base's, buried ones sent as removals. Config writes run
//! one at a time per tenant and each stamps the rows it changes with the
//! version it commits, so the rows stamped after version V are what changed
//! since V (a service, route or consumer row changed behind the control
//! plane's back is stamped with the next version, and goes out with the
//! next change as it would in a snapshot).

use std::collections::HashMap;

use gatehouse_protocol::{
    Changes, ConfigDelta, ConfigIdentity, ConfigSnapshot, ConsumerConfig, PluginPhase, RateLimits,
    RouteConfig, RoutePluginConfig, ServiceConfig,
};
use sqlx::AnyConnection;

use crate::config_rows;
use crate::store::{Store, Tombstone};
use crate::tiers;

/// Which config `tenant_id` has now (one small read, made at every wake-up
/// and heartbeat of a node's connection).
pub async fn current(store: &Store, tenant_id: &str) -> Result<ConfigIdentity, sqlx::Error> {
    let mut conn = store.pool().acquire().await?;
    identity_on(&mut conn, tenant_id).await
}

async fn identity_on(
    conn: &mut AnyConnection,
    tenant_id: &str,
) -> Result<ConfigIdentity, sqlx::Error> {
    let (version, revision): (i64, String) =
        sqlx::query_as("SELECT config_version, config_revision FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(conn)
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
    let identity = identity_on(&mut tx, tenant_id).await?;
    let services = services(&mut tx, tenant_id, config_rows::ALL).await?;
    let routes = routes(&mut tx, tenant_id, config_rows::ALL).await?;
    let consumers = consumers(&mut tx, tenant_id, config_rows::ALL).await?;
    let rate_limits = rate_limits(&mut tx, tenant_id).await?;
    tx.commit().await?;
    Ok(ConfigSnapshot {
        tenant_id: identity.tenant_id,
        version: identity.version,
        revision: identity.revision,
        services,
        routes,
        consumers,
        rate_limits,
    })
}

/// What changed in the tenant's config since `base`, or `None` when
/// `base` is not a config a delta can start from: another tenant's, one
/// newer than the current, or one this database's history does not name
/// (from before a restore, or more than `HISTORY_KEPT` versions back).
pub async fn delta(
    store: &Store,
    tenant_id: &str,
    base: &ConfigIdentity,
) -> Result<Option<ConfigDelta>, sqlx::Error> {
    if base.tenant_id != tenant_id {
        return Ok(None);
    }
    let mut tx = store.begin_snapshot().await?;
    let current = identity_on(&mut tx, tenant_id).await?;
    let known: Option<(i64,)> = sqlx::query_as(
        "SELECT version FROM config_history WHERE tenant_id = $1 AND version = $2 \
         AND revision = $3",
    )
    .bind(tenant_id)
    .bind(base.version)
    .bind(&base.revision)
    .fetch_optional(&mut *tx)
    .await?;
    if known.is_none() || base.version > current.version {
        return Ok(None);
    }
    let since = base.version;
    let services = Changes {
        upserted: services(&mut tx, tenant_id, since).await?,
        removed: Store::buried_since(&mut tx, Tombstone::Services, tenant_id, since).await?,
    };
    let routes = Changes {
        upserted: routes(&mut tx, tenant_id, since).await?,
        removed: Store::buried_since(&mut tx, Tombstone::Routes, tenant_id, since).await?,
    };
    let consumers = Changes {
        upserted: consumers(&mut tx, tenant_id, since).await?,
        removed: Store::buried_since(&mut tx, Tombstone::Consumers, tenant_id, since).await?,
    };
    let rate_limits = rate_limits(&mut tx, tenant_id).await?;
    tx.commit().await?;
    Ok(Some(ConfigDelta {
        base: base.clone(),
        version: current.version,
        revision: current.revision,
        services,
        routes,
        consumers,
        rate_limits,
    }))
}

async fn services(
    conn: &mut AnyConnection,
    tenant_id: &str,
    since: i64,
) -> Result<Vec<ServiceConfig>, sqlx::Error> {
    Ok(config_rows::services(conn, tenant_id, since)
        .await?
        .into_iter()
        .map(|s| ServiceConfig {
            id: s.id,
            target_url: s.target_url,
            health_check_path: s.health_check_path,
            timeout_ms: s.timeout_ms,
        })
        .collect())
}

/// The live routes changed after `since`, each with its plugins.
async fn routes(
    conn: &mut AnyConnection,
    tenant_id: &str,
    since: i64,
) -> Result<Vec<RouteConfig>, sqlx::Error> {
    let routes = config_rows::routes(conn, tenant_id, since).await?;
    let mut plugins_of: HashMap<String, Vec<RoutePluginConfig>> = HashMap::new();
    for row in config_rows::attachments(conn, tenant_id, since).await? {
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
    Ok(routes
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
        .collect())
}

async fn consumers(
    conn: &mut AnyConnection,
    tenant_id: &str,
    since: i64,
) -> Result<Vec<ConsumerConfig>, sqlx::Error> {
    Ok(config_rows::consumers(conn, tenant_id, since)
        .await?
        .into_iter()
        .map(|c| ConsumerConfig {
            id: c.id,
            api_key_hash: c.api_key_hash,
            rate_limit_tier: c.rate_limit_tier,
        })
        .collect())
}

async fn rate_limits(conn: &mut AnyConnection, tenant_id: &str) -> Result<RateLimits, sqlx::Error> {
    let settings = tiers::load_on(conn, tenant_id).await?;
    Ok(RateLimits {
        tiers: settings
            .tiers
            .into_iter()
            .map(|tier| (tier.name, tier.requests_per_minute))
            .collect(),
        anonymous_per_minute: settings.anonymous_requests_per_minute,
    })
}
