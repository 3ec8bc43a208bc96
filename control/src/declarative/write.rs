//! Carries out a plan in the config write's transaction: rate limits
//! first, then services, routes and consumers, in the order that keeps
//! every reference live at each step (a route is repointed before its old
//! service goes; routes are deleted before new ones could clash with them).

use std::collections::HashMap;

use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, Result};
use crate::route_plugins::{self, RoutePlugin};
use crate::secrets::{self, CONSUMER_KEY_PREFIX};
use crate::store::{Store, Timestamp, Tombstone};
use crate::tiers;

use super::document::{ConfigDocument, ConsumerItem, RouteItem, ServiceItem};
use super::live::Live;
use super::plan::{Action, Change, Kind};

/// A consumer the change created, with its API key (shown this once).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewConsumerKey {
    pub name: String,
    pub api_key: String,
}

/// What the writes of one plan need at hand.
struct Writer<'a> {
    store: &'a Store,
    conn: &'a mut AnyConnection,
    tenant_id: &'a str,
    live: &'a Live,
    now: Timestamp,
}

/// Applies `changes` (from `live` to `desired`) on `conn`. Returns the
/// keys of the consumers it created.
pub async fn apply(
    store: &Store,
    conn: &mut AnyConnection,
    tenant_id: &str,
    live: &Live,
    desired: &ConfigDocument,
    changes: &[Change],
) -> Result<Vec<NewConsumerKey>> {
    let mut writer = Writer {
        store,
        conn,
        tenant_id,
        live,
        now: Timestamp::now(),
    };
    let of = |kind: Kind, action: Action| {
        changes
            .iter()
            .filter(move |c| c.kind == kind && c.action == action)
            .map(|c| c.key.as_str())
    };
    if changes.iter().any(|c| c.kind == Kind::RateLimits)
        && let Some(limits) = &desired.rate_limits
    {
        tiers::replace(writer.conn, tenant_id, limits).await?;
    }
    let services: HashMap<&str, &ServiceItem> = desired
        .services
        .iter()
        .map(|s| (s.name.as_str(), s))
        .collect();
    let mut service_ids = live.service_ids.clone();
    for name in of(Kind::Service, Action::Create) {
        let id = writer.create_service(services[name]).await?;
        service_ids.insert(name.to_owned(), id);
    }
    for name in of(Kind::Service, Action::Update) {
        writer.update_service(services[name]).await?;
    }
    let routes: HashMap<String, &RouteItem> = desired.routes.iter().map(|r| (r.key(), r)).collect();
    for key in of(Kind::Route, Action::Delete) {
        writer.bury(Tombstone::Routes, &live.route_ids[key]).await?;
    }
    for key in of(Kind::Route, Action::Update) {
        let route = routes[key];
        let id = &live.route_ids[key];
        writer
            .update_route(id, route, &service_ids[&route.service])
            .await?;
        writer.attach(id, route).await?;
    }
    for key in of(Kind::Route, Action::Create) {
        let route = routes[key];
        let id = writer
            .create_route(route, &service_ids[&route.service])
            .await?;
        writer.attach(&id, route).await?;
    }
    for name in of(Kind::Service, Action::Delete) {
        writer
            .bury(Tombstone::Services, &live.service_ids[name])
            .await?;
    }
    let consumers: HashMap<&str, &ConsumerItem> = desired
        .consumers
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    for name in of(Kind::Consumer, Action::Delete) {
        writer
            .bury(Tombstone::Consumers, &live.consumer_ids[name])
            .await?;
    }
    for name in of(Kind::Consumer, Action::Update) {
        writer
            .update_consumer(&live.consumer_ids[name], consumers[name])
            .await?;
    }
    let mut keys = Vec::new();
    for name in of(Kind::Consumer, Action::Create) {
        keys.push(writer.create_consumer(consumers[name]).await?);
    }
    Ok(keys)
}

impl Writer<'_> {
    async fn bury(&mut self, kind: Tombstone, id: &str) -> Result<()> {
        Store::bury(self.conn, kind, self.tenant_id, id).await?;
        Ok(())
    }

    async fn create_service(&mut self, service: &ServiceItem) -> Result<String> {
        let id = Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO services (id, tenant_id, name, target_url, health_check_path, timeout_ms, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&id)
        .bind(self.tenant_id)
        .bind(&service.name)
        .bind(&service.target_url)
        .bind(&service.health_check_path)
        .bind(service.timeout_ms)
        .bind(self.now)
        .execute(&mut *self.conn)
        .await?;
        Ok(id)
    }

    async fn update_service(&mut self, service: &ServiceItem) -> Result<()> {
        sqlx::query(
            "UPDATE services SET target_url = $1, health_check_path = $2, timeout_ms = $3, \
             updated_at = $4 WHERE id = $5 AND tenant_id = $6",
        )
        .bind(&service.target_url)
        .bind(&service.health_check_path)
        .bind(service.timeout_ms)
        .bind(self.now)
        .bind(&self.live.service_ids[&service.name])
        .bind(self.tenant_id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn create_route(&mut self, route: &RouteItem, service_id: &str) -> Result<String> {
        let pattern = crate::routes::validate_pattern(&route.path_pattern)?;
        let id = Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO routes (id, tenant_id, method, path_pattern, path_shape, service_id, \
             auth_required, rate_limit_override, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&id)
        .bind(self.tenant_id)
        .bind(&route.method)
        .bind(&route.path_pattern)
        .bind(pattern.shape())
        .bind(service_id)
        .bind(route.auth_required)
        .bind(route.rate_limit_override)
        .bind(route.enabled)
        .bind(self.now)
        .execute(&mut *self.conn)
        .await?;
        Ok(id)
    }

    async fn update_route(&mut self, id: &str, route: &RouteItem, service_id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE routes SET service_id = $1, auth_required = $2, rate_limit_override = $3, \
             enabled = $4, updated_at = $5 WHERE id = $6 AND tenant_id = $7",
        )
        .bind(service_id)
        .bind(route.auth_required)
        .bind(route.rate_limit_override)
        .bind(route.enabled)
        .bind(self.now)
        .bind(id)
        .bind(self.tenant_id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// Gives route `id` the route's plugins, by the ids of the stored
    /// plugins they name (checked to exist before the plan was made).
    async fn attach(&mut self, id: &str, route: &RouteItem) -> Result<()> {
        let mut plugins = Vec::with_capacity(route.plugins.len());
        for plugin in &route.plugins {
            let stored = self.live.plugins.get(&plugin.label()).ok_or_else(|| {
                ApiError::invalid(
                    "plugins",
                    format!("no live plugin {} (route {})", plugin.label(), route.key()),
                )
            })?;
            plugins.push(RoutePlugin {
                plugin_id: stored.id.clone(),
                config: plugin.config.clone(),
                failure_policy: plugin.failure_policy.clone(),
                phase: plugin.phase.clone(),
            });
        }
        route_plugins::replace(self.store, self.conn, self.tenant_id, id, &plugins).await
    }

    async fn update_consumer(&mut self, id: &str, consumer: &ConsumerItem) -> Result<()> {
        sqlx::query(
            "UPDATE consumers SET rate_limit_tier = $1, updated_at = $2 \
             WHERE id = $3 AND tenant_id = $4",
        )
        .bind(&consumer.rate_limit_tier)
        .bind(self.now)
        .bind(id)
        .bind(self.tenant_id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn create_consumer(&mut self, consumer: &ConsumerItem) -> Result<NewConsumerKey> {
        let key = secrets::generate(CONSUMER_KEY_PREFIX);
        sqlx::query(
            "INSERT INTO consumers (id, tenant_id, name, api_key_hash, api_key_prefix, \
             rate_limit_tier, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(self.tenant_id)
        .bind(&consumer.name)
        .bind(&key.hash)
        .bind(&key.display_prefix)
        .bind(&consumer.rate_limit_tier)
        .bind(self.now)
        .execute(&mut *self.conn)
        .await?;
        Ok(NewConsumerKey {
            name: consumer.name.clone(),
            api_key: key.plaintext,
        })
    }
}
