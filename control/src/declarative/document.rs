//! The config document: a tenant's services, routes (with their plugins),
//! consumers and rate limits, each item keyed by its name (a route by
//! method and path pattern), never by an id. What `GET .../config` answers,
//! `PUT .../config` takes, and `gatehouse export` prints as YAML.
//!
//! [`ConfigDocument::normalize`] checks the form of every item and puts it
//! in the shape the database keeps it in (trimmed names, upper-case
//! methods, canonical patterns and URLs, defaults filled in), so a
//! document and the live config compare item by item. An error names the
//! item: `routes[3].pathPattern`.

use std::collections::{HashMap, HashSet};

use gatehouse_protocol::RoutePattern;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::consumers::DEFAULT_TIER;
use crate::error::{ApiError, Result};
use crate::route_plugins::{self, MAX_PLUGINS_PER_ROUTE};
use crate::services::{self, DEFAULT_TIMEOUT_MS};
use crate::tiers::{self, TierSettings};
use crate::{routes, validate};

/// A tenant's whole config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigDocument {
    #[serde(default)]
    pub services: Vec<ServiceItem>,
    #[serde(default)]
    pub routes: Vec<RouteItem>,
    /// Consumers by name and tier; their keys are never part of the document.
    #[serde(default)]
    pub consumers: Vec<ConsumerItem>,
    /// The tiers and the anonymous limit. Absent in a `PUT`: left as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<TierSettings>,
}

/// A service, keyed by its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceItem {
    pub name: String,
    pub target_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_path: Option<String>,
    /// Default 30000.
    #[serde(default = "default_timeout")]
    pub timeout_ms: i64,
}

fn default_timeout() -> i64 {
    DEFAULT_TIMEOUT_MS
}

/// A route, keyed by its method and path pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteItem {
    pub method: String,
    pub path_pattern: String,
    /// The name of a service of the document. `null` only in what `GET`
    /// answers, for a route whose service was deleted (a `PUT` must name
    /// one). Required, even as `null`.
    #[serde(deserialize_with = "Option::deserialize")]
    #[schema(required = true)]
    pub service: Option<String>,
    pub auth_required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_override: Option<i64>,
    /// Default true.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Tenant plugins, run in this order after the built-ins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginRef>,
}

fn enabled() -> bool {
    true
}

/// A tenant plugin on a route, by name and version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginRef {
    pub name: String,
    pub version: String,
    /// When given, the stored plugin of this name and version must have
    /// these bytes (lowercase hex SHA-256). In a dry run, a plugin not yet
    /// stored but given with its hash counts as to be uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Default `{}`.
    #[serde(default = "route_plugins::empty_object")]
    #[schema(value_type = Object)]
    pub config: Value,
    /// `closed` (default) or `open`.
    #[serde(default = "route_plugins::closed")]
    pub failure_policy: String,
    /// `request` (default) or `auth`.
    #[serde(default = "route_plugins::request_phase")]
    pub phase: String,
}

/// A consumer, keyed by its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumerItem {
    pub name: String,
    /// Default `free`.
    #[serde(default = "default_tier")]
    pub rate_limit_tier: String,
}

fn default_tier() -> String {
    DEFAULT_TIER.to_owned()
}

impl RouteItem {
    /// The route's key in the document: `GET /users/:id`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path_pattern)
    }

    /// What the route matches: its method and its pattern's shape (`GET
    /// /users/:`), the same for `/users/:id` and `/users/:name`. A route
    /// whose pattern does not parse is its own.
    pub fn matches(&self) -> String {
        let shape = RoutePattern::parse(&self.path_pattern)
            .map_or_else(|_| self.path_pattern.clone(), |p| p.shape());
        format!("{} {shape}", self.method)
    }
}

/// How plans and errors name a plugin: `name@version`.
pub fn plugin_label(name: &str, version: &str) -> String {
    format!("{name}@{version}")
}

impl PluginRef {
    /// `name@version`.
    pub fn label(&self) -> String {
        plugin_label(&self.name, &self.version)
    }
}

impl ConfigDocument {
    /// Checks every item's form and normalises it, keeping the items in
    /// their order (errors name them by their place in the request).
    /// Cross-references are checked by [`check_references`](Self::check_references).
    pub fn normalize(mut self) -> Result<Self> {
        let mut names = Seen::default();
        for (index, service) in self.services.iter_mut().enumerate() {
            let at = format!("services[{index}]");
            normalize_service(service).map_err(|err| err.within(&at))?;
            names.once(&service.name, &at, "name", "service")?;
        }
        let mut keys = Seen::default();
        for (index, route) in self.routes.iter_mut().enumerate() {
            let at = format!("routes[{index}]");
            normalize_route(route, &at)?;
            keys.once(&route.matches(), &at, "pathPattern", "route")?;
        }
        let mut consumers = Seen::default();
        for (index, consumer) in self.consumers.iter_mut().enumerate() {
            let at = format!("consumers[{index}]");
            consumer.name =
                validate::name("name", &consumer.name).map_err(|err| err.within(&at))?;
            consumers.once(&consumer.name, &at, "name", "consumer")?;
        }
        if let Some(limits) = &mut self.rate_limits {
            tiers::validate(limits).map_err(|err| err.within("rateLimits"))?;
        }
        Ok(self)
    }

    /// Puts the items in key order (services, consumers and tiers by name,
    /// routes by path pattern, then method): the order the live config is
    /// given in.
    pub fn sort(&mut self) {
        if let Some(limits) = &mut self.rate_limits {
            limits.tiers.sort_by(|a, b| a.name.cmp(&b.name));
        }
        self.services.sort_by(|a, b| a.name.cmp(&b.name));
        self.routes
            .sort_by(|a, b| (&a.path_pattern, &a.method).cmp(&(&b.path_pattern, &b.method)));
        self.consumers.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// 400 unless every route names a service of the document and every
    /// consumer a tier of `limits` (the document's own, or the tenant's
    /// when it has none).
    pub fn check_references(&self, limits: &TierSettings) -> Result<()> {
        let services: HashSet<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        for (index, route) in self.routes.iter().enumerate() {
            let message = match &route.service {
                Some(name) if services.contains(name.as_str()) => continue,
                Some(name) => format!(
                    "`{name}` is not a service of the document (route {})",
                    route.key()
                ),
                None => format!(
                    "route {} names no service (its service was deleted): name a service of \
                     the document",
                    route.key()
                ),
            };
            return Err(ApiError::invalid(
                format!("routes[{index}].service"),
                message,
            ));
        }
        let tiers: HashSet<&str> = limits.tiers.iter().map(|t| t.name.as_str()).collect();
        for (index, consumer) in self.consumers.iter().enumerate() {
            if !tiers.contains(consumer.rate_limit_tier.as_str()) {
                return Err(ApiError::invalid(
                    format!("consumers[{index}].rateLimitTier"),
                    format!(
                        "unknown tier `{}` (consumer {})",
                        consumer.rate_limit_tier, consumer.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Keys met so far, to refuse a second item with the same one.
#[derive(Default)]
struct Seen(HashMap<String, String>);

impl Seen {
    fn once(&mut self, key: &str, at: &str, field: &str, what: &str) -> Result<()> {
        if let Some(first) = self.0.get(key) {
            return Err(ApiError::invalid(
                format!("{at}.{field}"),
                format!("a second {what} `{key}` (the first is {first})"),
            ));
        }
        self.0.insert(key.to_owned(), at.to_owned());
        Ok(())
    }
}

fn normalize_service(service: &mut ServiceItem) -> Result<()> {
    service.name = validate::name("name", &service.name)?;
    service.target_url = services::validate_target_url(&service.target_url)?;
    service.health_check_path = service
        .health_check_path
        .as_deref()
        .map(services::validate_health_check_path)
        .transpose()?;
    service.timeout_ms = services::validate_timeout(service.timeout_ms)?;
    Ok(())
}

/// Normalises a route in place.
fn normalize_route(route: &mut RouteItem, at: &str) -> Result<()> {
    let within = |err: ApiError| err.within(at);
    route.method = routes::validate_method(&route.method).map_err(within)?;
    let pattern = routes::validate_pattern(&route.path_pattern).map_err(within)?;
    route.path_pattern = pattern.to_string();
    route.service = route
        .service
        .as_deref()
        .map(|name| validate::name("service", name))
        .transpose()
        .map_err(within)?;
    route.rate_limit_override = route
        .rate_limit_override
        .map(routes::validate_rate_limit)
        .transpose()
        .map_err(within)?;
    if route.plugins.len() > MAX_PLUGINS_PER_ROUTE {
        return Err(ApiError::invalid(
            format!("{at}.plugins"),
            format!("at most {MAX_PLUGINS_PER_ROUTE} plugins a route"),
        ));
    }
    for (index, plugin) in route.plugins.iter_mut().enumerate() {
        let at = format!("{at}.plugins[{index}]");
        normalize_plugin(plugin, &at)?;
    }
    Ok(())
}

fn normalize_plugin(plugin: &mut PluginRef, at: &str) -> Result<()> {
    plugin.name = plugin.name.trim().to_owned();
    plugin.version = plugin.version.trim().to_owned();
    if plugin.name.is_empty() || plugin.version.is_empty() {
        return Err(ApiError::invalid(
            format!("{at}.name"),
            "a plugin is named by its name and version",
        ));
    }
    if let Some(sha256) = &plugin.sha256
        && !(sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    {
        return Err(ApiError::invalid(
            format!("{at}.sha256"),
            "must be 64 lowercase hex digits",
        ));
    }
    route_plugins::validate_settings(&plugin.config, &plugin.failure_policy, &plugin.phase)
        .map_err(|err| err.at(at.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ConfigDocument> {
        serde_json::from_str::<ConfigDocument>(json)
            .expect("a document")
            .normalize()
    }

    fn field_of(err: ApiError) -> Option<String> {
        match err {
            ApiError::Invalid { field, .. } => field.map(|f| f.into_owned()),
            _ => None,
        }
    }

    #[test]
    fn items_are_normalised_and_sorted() {
        let mut doc = parse(
            r#"{"services": [{"name": " b ", "targetUrl": "http://h:1"}, {"name": "a", "targetUrl": "http://h:2/v1"}],
                "routes": [{"method": "get", "pathPattern": "/z", "service": "a", "authRequired": false},
                           {"method": "ANY", "pathPattern": "/a/:id", "service": "b", "authRequired": true}]}"#,
        )
        .expect("valid");
        doc.sort();
        assert_eq!(doc.services[0].name, "a");
        assert_eq!(doc.services[1].name, "b");
        assert_eq!(doc.services[1].target_url, "http://h:1/");
        assert_eq!(doc.services[0].timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(doc.routes[0].key(), "ANY /a/:id");
        assert_eq!(doc.routes[1].key(), "GET /z");
        assert!(doc.routes[1].enabled);
    }

    #[test]
    fn errors_name_the_item() {
        let err = parse(
            r#"{"routes": [{"method": "GET", "pathPattern": "/a", "service": "s", "authRequired": false},
                           {"method": "GET", "pathPattern": "no-slash", "service": "s", "authRequired": false}]}"#,
        )
        .expect_err("bad pattern");
        assert_eq!(field_of(err).as_deref(), Some("routes[1].pathPattern"));
        let err = parse(
            r#"{"routes": [{"method": "GET", "pathPattern": "/a", "service": "s", "authRequired": false,
                            "plugins": [{"name": "p", "version": "1", "failurePolicy": "maybe"}]}]}"#,
        )
        .expect_err("bad policy");
        assert_eq!(field_of(err).as_deref(), Some("routes[0].plugins[0]"));
        let err =
            parse(r#"{"services": [{"name": "s", "targetUrl": "ftp://x"}]}"#).expect_err("bad url");
        assert_eq!(field_of(err).as_deref(), Some("services[0].targetUrl"));
    }

    #[test]
    fn a_key_may_appear_once() {
        let err = parse(
            r#"{"routes": [{"method": "GET", "pathPattern": "/u/:id", "service": "s", "authRequired": false},
                           {"method": "GET", "pathPattern": "/u/:name", "service": "s", "authRequired": false}]}"#,
        )
        .expect_err("same shape");
        assert_eq!(field_of(err).as_deref(), Some("routes[1].pathPattern"));
        let err = parse(r#"{"consumers": [{"name": "a"}, {"name": " a"}]}"#).expect_err("twice");
        assert_eq!(field_of(err).as_deref(), Some("consumers[1].name"));
    }

    #[test]
    fn references_are_checked() {
        let doc = parse(
            r#"{"services": [{"name": "s", "targetUrl": "http://h"}],
                "routes": [{"method": "GET", "pathPattern": "/a", "service": "t", "authRequired": false}],
                "consumers": [{"name": "c", "rateLimitTier": "gold"}]}"#,
        )
        .expect("form is fine");
        let limits = TierSettings {
            tiers: vec![tiers::Tier {
                name: "free".into(),
                requests_per_minute: Some(60),
            }],
            anonymous_requests_per_minute: None,
        };
        let err = doc.check_references(&limits).expect_err("no service t");
        assert_eq!(field_of(err).as_deref(), Some("routes[0].service"));
        let mut doc = doc;
        doc.routes.clear();
        let err = doc.check_references(&limits).expect_err("no tier gold");
        assert_eq!(field_of(err).as_deref(), Some("consumers[0].rateLimitTier"));
    }
}
