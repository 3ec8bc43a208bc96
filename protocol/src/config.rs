//! The configuration a gateway node serves from: everything of one tenant
//! the hot path needs, versioned. The control plane builds it from the
//! database; the node keeps the last one on disk.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One tenant's whole gateway configuration at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSnapshot {
    pub tenant_id: String,
    /// Grows with every change of the tenant's routes, services or consumers.
    pub version: i64,
    /// A random id the control plane gives each committed change: with the
    /// tenant and the version it names this config and no other, even after
    /// a database restore sends versions back or replays their numbers.
    #[serde(default)]
    pub revision: String,
    /// Live services (deleted ones are absent: their routes answer 503).
    pub services: Vec<ServiceConfig>,
    /// Routes that are not deleted, enabled or not.
    pub routes: Vec<RouteConfig>,
    /// Consumers that are not revoked.
    pub consumers: Vec<ConsumerConfig>,
    /// The tenant's rate-limit tiers and anonymous limit.
    #[serde(default)]
    pub rate_limits: RateLimits,
}

impl ConfigSnapshot {
    /// Which config this is.
    pub fn identity(&self) -> ConfigIdentity {
        ConfigIdentity {
            tenant_id: self.tenant_id.clone(),
            version: self.version,
            revision: self.revision.clone(),
        }
    }
}

/// What names one config: its tenant, version and revision. A node and the
/// control plane compare identities, never versions alone: two tenants'
/// configs at the same version, or a config from before a database
/// restore, differ in identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigIdentity {
    pub tenant_id: String,
    pub version: i64,
    pub revision: String,
}

/// The tenant's rate limits, requests per minute (`None`: unlimited).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    /// Tier name → limit; a consumer's `rateLimitTier` picks one.
    pub tiers: BTreeMap<String, Option<i64>>,
    /// Per client IP, on routes without auth.
    pub anonymous_per_minute: Option<i64>,
}

/// A service as the proxy needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConfig {
    pub id: String,
    pub target_url: String,
    pub health_check_path: Option<String>,
    pub timeout_ms: i64,
}

/// A route as the proxy needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteConfig {
    pub id: String,
    pub method: String,
    pub path_pattern: String,
    pub service_id: String,
    pub auth_required: bool,
    pub rate_limit_override: Option<i64>,
    pub enabled: bool,
    /// Tenant plugins run in order after the built-ins.
    #[serde(default)]
    pub plugins: Vec<RoutePluginConfig>,
}

/// A consumer as the proxy needs it: never the key, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerConfig {
    pub id: String,
    /// Lowercase hex SHA-256 of the consumer's API key.
    pub api_key_hash: String,
    pub rate_limit_tier: String,
}

/// A tenant plugin attached to a route, as nodes need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutePluginConfig {
    pub plugin_id: String,
    /// The plugin's name (shared: every call of the plugin on the route is
    /// tagged with it without a copy).
    pub name: std::sync::Arc<str>,
    /// SHA-256 of the component: how a node fetches and caches it.
    pub sha256: String,
    /// The plugin's config on this route, as JSON text (shared: every call
    /// of the plugin on the route hands it over without a copy).
    pub config_json: std::sync::Arc<str>,
    /// `closed` (a failure answers 503) or `open` (a failure skips the plugin).
    pub failure_policy: String,
    /// When the plugin's `on-request` runs: in the authentication step
    /// instead of the built-in key check (the consumer it names is the
    /// request's), or after the rate limit. Absent from older control
    /// planes: the request phase.
    #[serde(default)]
    pub phase: PluginPhase,
}

/// When a route's tenant plugin runs its `on-request`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginPhase {
    /// Authenticates the request: runs before the rate limit, in place of
    /// the built-in API-key check, and may name the request's consumer.
    Auth,
    /// Runs after authentication and the rate limit.
    #[default]
    Request,
}

impl PluginPhase {
    /// The phase's name in the REST API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Request => "request",
        }
    }

    /// The phase named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "auth" => Some(Self::Auth),
            "request" => Some(Self::Request),
            _ => None,
        }
    }
}
