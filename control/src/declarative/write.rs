//! Carries out a plan in the config write's transaction: rate limits
//! first, then services, routes and consumers, in the order that keeps
//! every reference live at each step (a route is repointed before its old
//! service goes; routes are deleted before new ones could clash with them).

use std::collections::HashMap;

use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::error::{ApiError, Result};
use crate::route_plugins::{self, RoutePlugin};
use crate::routes::{self, NewRoute};
use crate::secrets::{self, CONSUMER_KEY_PREFIX};
use crate::services::{self, NewService};
use crate::store::{Store, Timestamp, Tombstone};
use crate::{consumers, tiers};

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
    /// Service ids by name: the live ones and those the plan creates.
    service_ids: HashMap<String, String>,
    now: Timestamp,
}

/// An id or item the plan names and the plan's sources lack: a bug, never
/// the request's fault.
fn missing(what: &str, key: &str) -> ApiError {
    ApiError::Internal(anyhow::anyhow!(
        "the plan names {what} `{key}` it was not made from"
    ))
}

fn find<'m, V>(map: &'m HashMap<String, V>, what: &str, key: &str) -> Result<&'m V> {
    map.get(key).ok_or_else(|| missing(what, key))
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
        service_ids: live.service_ids.clone(),
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
    let services: HashMap<String, &ServiceItem> = desired
        .services
        .iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    for name in of(Kind::Service, Action::Create) {
        writer
            .create_service(find(&services, "service", name)?)
            .await?;
    }
    for name in of(Kind::Service, Action::Update) {
        writer
            .update_service(find(&services, "service", name)?)
            .await?;
    }
    let routes: HashMap<String, &RouteItem> = desired.routes.iter().map(|r| (r.key(), r)).collect();
    // Deleted first: a new route may match what an old one did.
    for key in of(Kind::Route, Action::Delete) {
        let id = find(&live.route_ids, "route", key)?;
        writer.bury(Tombstone::Routes, id).await?;
    }
    for key in of(Kind::Route, Action::Update) {
        let id = find(&live.route_ids, "route", key)?;
        writer
            .update_route(id, find(&routes, "route", key)?)
            .await?;
    }
    for key in of(Kind::Route, Action::Create) {
        writer.create_route(find(&routes, "route", key)?).await?;
    }
    // After the routes: none points at a service that goes.
    for name in of(Kind::Service, Action::Delete) {
        let id = find(&live.service_ids, "service", name)?;
        writer.bury(Tombstone::Services, id).await?;
    }
    let consumers: HashMap<String, &ConsumerItem> = desired
        .consumers
        .iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    for name in of(Kind::Consumer, Action::Delete) {
        let id = find(&live.consumer_ids, "consumer", name)?;
        writer.bury(Tombstone::Consumers, id).await?;
    }
    for name in of(Kind::Consumer, Action::Update) {
        let id = find(&live.consumer_ids, "consumer", name)?;
        writer
            .update_consumer(id, find(&consumers, "consumer", name)?)
            .await?;
    }
    let mut keys = Vec::new();
    for name in of(Kind::Consumer, Action::Create) {
        keys.push(
            writer
                .create_consumer(find(&consumers, "consumer", name)?)
                .await?,
        );
    }
    Ok(keys)
}

impl Writer<'_> {
    async fn bury(&mut self, kind: Tombstone, id: &str) -> Result<()> {
        Store::bury(self.conn, kind, self.tenant_id, id).await?;
        Ok(())
    }

    async fn create_service(&mut self, service: &ServiceItem) -> Result<()> {
        let created = services::insert(
            self.conn,
            self.tenant_id,
            &NewService {
                name: service.name.clone(),
                target_url: service.target_url.clone(),
                health_check_path: service.health_check_path.clone(),
                timeout_ms: service.timeout_ms,
            },
        )
        .await?;
        self.service_ids.insert(created.name, created.id);
        Ok(())
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
        .bind(find(&self.live.service_ids, "service", &service.name)?)
        .bind(self.tenant_id)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// The id of the route's service (checked to be in the document).
    fn service_of(&self, route: &RouteItem) -> Result<String> {
        let name = route.service.as_deref().unwrap_or_default();
        find(&self.service_ids, "service", name).cloned()
    }

    async fn create_route(&mut self, route: &RouteItem) -> Result<()> {
        let created = routes::insert(
            self.conn,
            self.tenant_id,
            &NewRoute {
                method: route.method.clone(),
                pattern: routes::validate_pattern(&route.path_pattern)?,
                service_id: self.service_of(route)?,
                auth_required: route.auth_required,
                rate_limit_override: route.rate_limit_override,
                enabled: route.enabled,
            },
        )
        .await?;
        self.attach(&created.id, route).await
    }

    async fn update_route(&mut self, id: &str, route: &RouteItem) -> Result<()> {
        sqlx::query(
            "UPDATE routes SET service_id = $1, auth_required = $2, rate_limit_override = $3, \
             enabled = $4, updated_at = $5 WHERE id = $6 AND tenant_id = $7",
        )
        .bind(self.service_of(route)?)
        .bind(route.auth_required)
        .bind(route.rate_limit_override)
        .bind(route.enabled)
        .bind(self.now)
        .bind(id)
        .bind(self.tenant_id)
        .execute(&mut *self.conn)
        .await?;
        self.attach(id, route).await
    }

    /// Gives route `id` the route's plugins, by the ids of the stored
    /// plugins they name (checked to be stored before the plan was made;
    /// `replace` checks again under the plugins' locks).
    async fn attach(&mut self, id: &str, route: &RouteItem) -> Result<()> {
        let mut plugins = Vec::with_capacity(route.plugins.len());
        for plugin in &route.plugins {
            let stored = find(&self.live.plugins, "plugin", &plugin.label())?;
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
        consumers::insert(
            self.conn,
            self.tenant_id,
            &consumer.name,
            &consumer.rate_limit_tier,
            &key,
        )
        .await?;
        Ok(NewConsumerKey {
            name: consumer.name.clone(),
            api_key: key.plaintext,
        })
    }
}
