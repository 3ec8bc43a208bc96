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

use gatehouse_protocol::{RateLimits, RouteConfig};
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

    /// Takes one request from the tenant's bucket `key` of `per_minute`.
    pub async fn check(&self, tenant: &str, key: &str, per_minute: u64) -> Decision {
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
/// can apply there (the plugin is not called at all).
pub fn route_settings(route: &RouteConfig, limits: &RateLimits) -> Option<String> {
    let over = route.rate_limit_override.filter(|n| *n > 0);
    if route.auth_required {
        let any_tier_limited = limits.tiers.values().any(Option::is_some);
        (over.is_some() || any_tier_limited)
            .then(|| json!({ "override": over, "tiers": limits.tiers }).to_string())
    } else {
        let anonymous = limits.anonymous_per_minute.filter(|n| *n > 0);
        (over.is_some() || anonymous.is_some())
            .then(|| json!({ "override": over, "anonymous": anonymous }).to_string())
    }
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
}
