//! Whether a request may go upstream, and where: match its route, check its
//! API key, find its service. This is the policy seam the Wasm plugins
//! (issue: Wasm plugins) will take over; the native key check stays as their
//! benchmark baseline.

use std::sync::Arc;

use crate::compiled::CompiledConfig;
use crate::keys::{Consumer, key_from_headers};
use crate::respond::Reject;
use crate::routing::Route;
use crate::upstream::Upstream;

/// A request that may proceed.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub route: Arc<Route>,
    pub upstream: Arc<Upstream>,
    /// The consumer whose key was presented, when the route asks for one.
    pub consumer: Option<Arc<Consumer>>,
}

/// The request line and credential headers admission looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub x_api_key: Option<&'a str>,
    pub authorization: Option<&'a str>,
}

/// Decides a request: 404 without an (enabled) route, 401 without a valid
/// key on a route that requires one, 503 when the route's service is gone.
pub fn admit(
    config: &CompiledConfig,
    request: RequestFacts<'_>,
) -> Result<Admitted, (Reject, Option<Arc<Route>>)> {
    let route = config
        .routes
        .lookup(request.method, request.path)
        .ok_or((Reject::ROUTE_NOT_FOUND, None))?;
    let consumer = if route.auth_required {
        let key = key_from_headers(request.x_api_key, request.authorization);
        let consumer = key.and_then(|key| config.keys.lookup(key));
        Some(consumer.ok_or_else(|| (Reject::INVALID_API_KEY, Some(Arc::clone(route))))?)
    } else {
        None
    };
    let upstream = config
        .upstreams
        .get(&route.service_id)
        .ok_or_else(|| (Reject::SERVICE_UNAVAILABLE, Some(Arc::clone(route))))?;
    Ok(Admitted {
        route: Arc::clone(route),
        upstream: Arc::clone(upstream),
        consumer,
    })
}

#[cfg(test)]
mod tests {
    use gatehouse_protocol::{ConfigSnapshot, ConsumerConfig, RouteConfig, ServiceConfig};
    use sha2::{Digest, Sha256};

    use super::*;

    fn config() -> CompiledConfig {
        let route = |id: &str, pattern: &str, service: &str, auth: bool| RouteConfig {
            id: id.into(),
            method: "GET".into(),
            path_pattern: pattern.into(),
            service_id: service.into(),
            auth_required: auth,
            rate_limit_override: None,
            enabled: true,
        };
        CompiledConfig::compile(&ConfigSnapshot {
            tenant_id: "t".into(),
            version: 1,
            services: vec![ServiceConfig {
                id: "s".into(),
                target_url: "http://127.0.0.1:1/".into(),
                health_check_path: None,
                timeout_ms: 100,
            }],
            routes: vec![
                route("secure", "/secure", "s", true),
                route("open", "/open", "s", false),
                route("orphan", "/orphan", "gone", false),
            ],
            consumers: vec![ConsumerConfig {
                id: "c".into(),
                api_key_hash: Sha256::digest(b"ck_good")
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
                rate_limit_tier: "free".into(),
            }],
        })
    }

    fn facts<'a>(path: &'a str, key: Option<&'a str>) -> RequestFacts<'a> {
        RequestFacts {
            method: "GET",
            path,
            x_api_key: key,
            authorization: None,
        }
    }

    #[test]
    fn decides_404_401_503_and_admits() {
        let config = config();
        assert_eq!(
            admit(&config, facts("/nope", None))
                .map(|_| ())
                .map_err(|e| e.0.status),
            Err(404)
        );
        assert_eq!(
            admit(&config, facts("/secure", None))
                .map(|_| ())
                .map_err(|e| e.0.status),
            Err(401)
        );
        assert_eq!(
            admit(&config, facts("/secure", Some("ck_bad")))
                .map(|_| ())
                .map_err(|e| e.0.status),
            Err(401)
        );
        let ok = admit(&config, facts("/secure", Some("ck_good"))).expect("admitted");
        assert_eq!(ok.consumer.map(|c| c.id.clone()).as_deref(), Some("c"));
        assert!(
            admit(&config, facts("/open", None))
                .expect("open")
                .consumer
                .is_none()
        );
        assert_eq!(
            admit(&config, facts("/orphan", None))
                .map(|_| ())
                .map_err(|e| e.0.status),
            Err(503)
        );
    }
}
