//! The tenant's live config as a document, read in one transaction (the
//! one that will change it, for a write), with the ids behind each key and
//! the digest that is its `ETag`.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::AnyConnection;

use crate::error::{ApiError, Result};
use crate::secrets::sha256_hex;
use crate::{config_rows, tiers};

use super::document::{
    ConfigDocument, ConsumerItem, PluginRef, RouteItem, ServiceItem, plugin_label,
};

/// A stored plugin, as route plugins name it.
#[derive(Debug, Clone)]
pub struct StoredPlugin {
    pub id: String,
    pub sha256: String,
}

/// The live config and what the document leaves out: the ids of its items.
#[derive(Debug)]
pub struct Live {
    /// In key order, with the tenant's rate limits.
    pub doc: ConfigDocument,
    pub service_ids: HashMap<String, String>,
    pub route_ids: HashMap<String, String>,
    pub consumer_ids: HashMap<String, String>,
    /// The tenant's live plugins by `name@version`.
    pub plugins: HashMap<String, StoredPlugin>,
    pub version: i64,
}

impl Live {
    /// The document's digest: lowercase hex SHA-256 of its JSON.
    pub fn digest(&self) -> String {
        digest(&self.doc)
    }
}

/// The digest of a document in key order.
pub fn digest(doc: &ConfigDocument) -> String {
    // Serialising derived structs of strings, numbers and JSON values
    // cannot fail.
    sha256_hex(serde_json::to_vec(doc).unwrap_or_default())
}

/// Reads `tenant_id`'s live config on `conn`. 409 when two live services
/// or consumers share a name: such a config has no document until one is
/// renamed.
pub async fn load(conn: &mut AnyConnection, tenant_id: &str) -> Result<Live> {
    let (version,): (i64,) = sqlx::query_as("SELECT config_version FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(&mut *conn)
        .await?;
    let service_rows = config_rows::services(conn, tenant_id, config_rows::ALL).await?;
    let route_rows = config_rows::routes(conn, tenant_id, config_rows::ALL).await?;
    let attachment_rows = config_rows::attachments(conn, tenant_id, config_rows::ALL).await?;
    let consumer_rows = config_rows::consumers(conn, tenant_id, config_rows::ALL).await?;
    let plugin_rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT id, name, version, sha256 FROM plugins WHERE tenant_id = $1 AND deleted_at IS NULL",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    let rate_limits = tiers::load_on(conn, tenant_id).await?;

    let mut service_ids = HashMap::new();
    let mut service_names: HashMap<String, String> = HashMap::new();
    let mut services = Vec::with_capacity(service_rows.len());
    for row in service_rows {
        unique(&mut service_ids, &row.name, row.id.clone(), "services")?;
        service_names.insert(row.id, row.name.clone());
        services.push(ServiceItem {
            name: row.name,
            target_url: row.target_url,
            health_check_path: row.health_check_path,
            timeout_ms: row.timeout_ms,
        });
    }
    let mut attachments: HashMap<String, Vec<PluginRef>> = HashMap::new();
    for row in attachment_rows {
        attachments
            .entry(row.route_id)
            .or_default()
            .push(PluginRef {
                name: row.name,
                version: row.version,
                sha256: None,
                config: serde_json::from_str(&row.config)
                    .unwrap_or_else(|_| Value::Object(Default::default())),
                failure_policy: row.failure_policy,
                phase: row.phase,
            });
    }
    let mut route_ids = HashMap::new();
    let mut routes = Vec::with_capacity(route_rows.len());
    for row in route_rows {
        let route = RouteItem {
            method: row.method,
            path_pattern: row.path_pattern,
            // None: the route's service was deleted.
            service: service_names.get(&row.service_id).cloned(),
            auth_required: row.auth_required,
            rate_limit_override: row.rate_limit_override,
            enabled: row.enabled,
            plugins: attachments.remove(&row.id).unwrap_or_default(),
        };
        route_ids.insert(route.key(), row.id);
        routes.push(route);
    }
    let mut consumer_ids = HashMap::new();
    let mut consumers = Vec::with_capacity(consumer_rows.len());
    for row in consumer_rows {
        unique(&mut consumer_ids, &row.name, row.id, "consumers")?;
        consumers.push(ConsumerItem {
            name: row.name,
            rate_limit_tier: row.rate_limit_tier,
        });
    }
    let plugins = plugin_rows
        .into_iter()
        .map(|(id, name, version, sha256)| {
            (plugin_label(&name, &version), StoredPlugin { id, sha256 })
        })
        .collect();
    let mut doc = ConfigDocument {
        services,
        routes,
        consumers,
        rate_limits: Some(rate_limits),
    };
    doc.sort();
    Ok(Live {
        doc,
        service_ids,
        route_ids,
        consumer_ids,
        plugins,
        version,
    })
}

fn unique(ids: &mut HashMap<String, String>, name: &str, id: String, what: &str) -> Result<()> {
    if let Some(first) = ids.insert(name.to_owned(), id) {
        return Err(ApiError::conflict(
            "ambiguous_names",
            format!(
                "two live {what} are named `{name}` ({first} is one): names are the document's \
                 keys, so rename one through PATCH /api/tenants/{{tenantId}}/{what}/{{id}} first"
            ),
        ));
    }
    Ok(())
}
