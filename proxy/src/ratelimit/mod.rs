//! Rate-limit decisions for the host's `counters.check-rate`: GCRA on the
//! node (`gcra`), or — on a node started with `--redis-url` — in Redis, one
//! atomic script per decision, so all of a tenant's nodes share each bucket
//! (`fleet`). While Redis is unreachable a node decides locally with its
//! share of the limit (the limit divided by the tenant's connected nodes,
//! as the control plane last said), and says so in metrics and an error
//! event. Which bucket and which limit a request gets is the `rate-limit`
//! plugin's business, with the per-route settings built here.

pub mod fleet;
pub mod gcra;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use gatehouse_protocol::{PluginPhase, RateLimits, RouteConfig};
use serde_json::json;

pub use fleet::Fleet;
pub use gcra::LocalGcra;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset_seconds: u64,
    /// Seconds until a refused request may succeed (0 when allowed).
    pub retry_after_seconds: u64,
}

/// How many of the tenant's nodes are connected, as the control plane
/// last reported (at least 1).
#[derive(Debug)]
pub struct FleetSize(AtomicU32);

impl Default for FleetSize {
    fn default() -> Self {
        Self(AtomicU32::new(1))
    }
}

impl FleetSize {
    pub fn set(&self, nodes: u32) {
        self.0.store(nodes.max(1), Ordering::Relaxed);
    }

    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed).max(1)
    }
}

/// The highest limit a bucket has (the control plane accepts no higher).
pub const MAX_PER_MINUTE: u64 = gatehouse_protocol::MAX_REQUESTS_PER_MINUTE as u64;

/// The node's limiter.
#[derive(Debug, Default)]
pub struct RateLimiter {
    local: LocalGcra,
    fleet: Option<Arc<Fleet>>,
    nodes: Arc<FleetSize>,
}

impl RateLimiter {
    /// Limits local to this node.
    pub fn local() -> Self {
        Self::default()
    }

    /// Limits shared through `fleet`, falling back to a share of each limit.
    pub fn shared(fleet: Arc<Fleet>, nodes: Arc<FleetSize>) -> Self {
        Self {
            local: LocalGcra::default(),
            fleet: Some(fleet),
            nodes,
        }
    }

    /// Takes one request from the tenant's bucket `key` of `per_minute`
    /// (taken as at least 1 and at most [`MAX_PER_MINUTE`]: a plugin may
    /// ask for any).
    pub async fn check(&self, tenant: &str, key: &str, per_minute: u64) -> Decision {
        let per_minute = per_minute.clamp(1, MAX_PER_MINUTE);
        let Some(fleet) = &self.fleet else {
            return self.local.check(key, per_minute);
        };
        if let Some(decision) = fleet.check(tenant, key, per_minute).await {
            return decision;
        }
        let share = (per_minute / u64::from(self.nodes.get())).max(1);
        let mut decision = self.local.check(key, share);
        // Clients see the fleet's limit; this node enforces its share.
        decision.limit = per_minute;
        decision
    }
}

/// The `rate-limit` plugin's config for `route`, or `None` when no limit
/// can apply there (the plugin is not called at all). Consumers are limited
/// by their tier, anonymous clients per IP: a route that requires a key
/// sees only consumers, a route without one only anonymous clients, unless
/// an `auth` tenant plugin may name a consumer there, when it sees both.
pub fn route_settings(route: &RouteConfig, limits: &RateLimits) -> Option<String> {
    let over = route.rate_limit_override.filter(|n| *n > 0);
    let plugin_auth = route.plugins.iter().any(|p| p.phase == PluginPhase::Auth);
    let tiers = (route.auth_required || plugin_auth).then_some(&limits.tiers);
    let anonymous = (!route.auth_required)
        .then_some(limits.anonymous_per_minute)
        .flatten()
        .filter(|n| *n > 0);
    let any_tier_limited = tiers.is_some_and(|t| t.values().any(Option::is_some));
    (over.is_some() || any_tier_limited || anonymous.is_some()).then(|| {
        let mut settings = json!({ "override": over });
        if let Some(tiers) = tiers {
            settings["tiers"] = json!(tiers);
        }
        if !route.auth_required {
            settings["anonymous"] = json!(anonymous);
        }
        settings.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(auth: bool, over: Option<i64>) -> RouteConfig {
        RouteConfig {
            id: "r".into(),
            method: "GET".into(),
            path_pattern: "/".into(),
            service_id: "s".into(),
            auth_required: auth,
            rate_limit_override: over,
            enabled: true,
            plugins: vec![],
        }
    }

    #[test]
    fn settings_only_where_a_limit_can_apply() {
        let mut limits = RateLimits::default();
        limits.tiers.insert("free".into(), Some(60));
        limits.tiers.insert("unlimited".into(), None);
        let secure = route_settings(&route(true, None), &limits).expect("tiers apply");
        assert_eq!(
            secure,
            r#"{"override":null,"tiers":{"free":60,"unlimited":null}}"#
        );
        assert!(route_settings(&route(false, None), &limits).is_none());
        limits.anonymous_per_minute = Some(10);
        assert_eq!(
            route_settings(&route(false, Some(5)), &limits).expect("limited"),
            r#"{"anonymous":10,"override":5}"#
        );
        let unlimited = RateLimits {
            tiers: [("unlimited".to_owned(), None)].into(),
            anonymous_per_minute: None,
        };
        assert!(route_settings(&route(true, None), &unlimited).is_none());
        assert!(route_settings(&route(true, Some(3)), &unlimited).is_some());
    }

    /// An open route where a tenant plugin may name the consumer limits
    /// consumers by tier and everyone else per IP.
    #[test]
    fn an_auth_plugin_brings_the_tiers_to_an_open_route() {
        let mut limits = RateLimits::default();
        limits.tiers.insert("free".into(), Some(60));
        let mut open = route(false, None);
        open.plugins.push(gatehouse_protocol::RoutePluginConfig {
            plugin_id: "p".into(),
            name: "sso".into(),
            sha256: "00".into(),
            config_json: std::sync::Arc::from("{}"),
            failure_policy: "closed".into(),
            phase: PluginPhase::Auth,
        });
        assert_eq!(
            route_settings(&open, &limits).expect("tiers apply"),
            r#"{"anonymous":null,"override":null,"tiers":{"free":60}}"#
        );
        limits.anonymous_per_minute = Some(10);
        assert_eq!(
            route_settings(&open, &limits).expect("limited"),
            r#"{"anonymous":10,"override":null,"tiers":{"free":60}}"#
        );
    }

    #[tokio::test]
    async fn local_limits_need_no_redis() {
        let limiter = RateLimiter::local();
        let mut allowed = 0;
        for _ in 0..8 {
            if limiter.check("t", "k", 5).await.allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5);
    }

    #[tokio::test]
    async fn local_limits_take_any_limit_within_bounds() {
        let limiter = RateLimiter::local();
        let first = limiter.check("t", "zero", 0).await;
        assert!(first.allowed && first.limit == 1, "{first:?}");
        assert!(!limiter.check("t", "zero", 0).await.allowed, "one a minute");
        let huge = limiter.check("t", "huge", u64::MAX).await;
        assert!(huge.allowed && huge.limit == MAX_PER_MINUTE, "{huge:?}");
    }
}
