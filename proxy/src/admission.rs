//! Whether a request may go upstream, and where: match its route, run the
//! auth plugin when the route requires a key, find its service, run the
//! rate-limit plugin where a limit applies.

use std::sync::Arc;

use crate::compiled::CompiledConfig;
use crate::keys::Consumer;
use crate::plugins::{
    Builtins, CallContext, Header, LocalResponse, PluginFailure, Request as PluginRequest,
    RequestAction,
};
use crate::respond::Reject;
use crate::routing::Route;
use crate::upstream::Upstream;

/// A request that may proceed.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub route: Arc<Route>,
    pub upstream: Arc<Upstream>,
    /// The consumer the auth plugin identified, when the route asks for one.
    pub consumer: Option<Consumer>,
    /// Headers for the response to the client (`RateLimit-*`).
    pub response_headers: Vec<Header>,
    /// The request as plugins saw it, when one ran (for the tenant chain).
    pub plugin_request: Option<PluginRequest>,
    /// A built-in that failed open (the rate limiter), to report.
    pub failed_open: Option<(&'static str, PluginFailure)>,
}

/// The request line admission looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    pub path: &'a str,
}

/// Why a request does not go upstream.
#[derive(Debug)]
pub enum Refusal {
    /// The gateway answers with its error JSON (404, 503).
    Reject(Reject, Option<Arc<Route>>),
    /// A plugin answered (the auth plugin's 401, the rate limit's 429).
    Answered(LocalResponse, Arc<Route>),
    /// A plugin that fails closed failed: 503 `plugin_failed`.
    PluginFailed(&'static str, PluginFailure, Arc<Route>),
}

/// Decides a request: 404 without an (enabled) route; on a route that
/// requires a key, the `api-key-auth` plugin identifies the consumer or
/// answers; 503 when the route's service is gone; where a limit applies,
/// the `rate-limit` plugin takes from the bucket or answers 429 (and fails
/// open). `plugin_request` builds what plugins see, only when one runs.
pub async fn admit(
    config: &CompiledConfig,
    builtins: &Builtins,
    request: RequestFacts<'_>,
    plugin_request: impl FnOnce(&Route) -> PluginRequest,
) -> Result<Admitted, Refusal> {
    let route = config
        .routes
        .lookup(request.method, request.path)
        .ok_or(Refusal::Reject(Reject::ROUTE_NOT_FOUND, None))?;
    let refuse = |reject| Refusal::Reject(reject, Some(Arc::clone(route)));
    let ctx = CallContext::for_tenant(config, &builtins.shared);
    let mut seen =
        (route.auth_required || route.rate_limit.is_some()).then(|| plugin_request(route));
    let consumer = match &mut seen {
        Some(plugin_request) if route.auth_required => {
            match builtins.api_key_auth.on_request(&ctx, plugin_request).await {
                Ok(RequestAction::Proceed(changes)) => {
                    // A consumer the plugin names must be one of this tenant's.
                    let consumer = changes.consumer_id.and_then(|id| config.keys.by_id(&id));
                    let consumer = consumer.ok_or_else(|| refuse(Reject::INVALID_API_KEY))?;
                    plugin_request.consumer_id = Some(consumer.id.to_string());
                    Some(consumer)
                }
                Ok(RequestAction::Respond(response)) => {
                    return Err(Refusal::Answered(response, Arc::clone(route)));
                }
                Err(failure) => {
                    return Err(Refusal::PluginFailed(
                        "api-key-auth",
                        failure,
                        Arc::clone(route),
                    ));
                }
            }
        }
        _ => None,
    };
    let upstream = config
        .upstreams
        .get(&*route.service_id)
        .ok_or_else(|| refuse(Reject::SERVICE_UNAVAILABLE))?;
    let mut admitted = Admitted {
        route: Arc::clone(route),
        upstream: Arc::clone(upstream),
        consumer,
        response_headers: Vec::new(),
        plugin_request: None,
        failed_open: None,
    };
    if let (Some(settings), Some(plugin_request)) = (&route.rate_limit, &seen) {
        let ctx = ctx.with_config(Arc::clone(settings));
        match builtins.rate_limit.on_request(&ctx, plugin_request).await {
            Ok(RequestAction::Proceed(changes)) => {
                admitted.response_headers = changes.response_headers
            }
            Ok(RequestAction::Respond(response)) => {
                return Err(Refusal::Answered(response, Arc::clone(route)));
            }
            Err(failure) => admitted.failed_open = Some(("rate-limit", failure)),
        }
    }
    admitted.plugin_request = seen;
    Ok(admitted)
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
            plugins: vec![],
        };
        CompiledConfig::compile(&ConfigSnapshot {
            tenant_id: "t".into(),
            version: 1,
            revision: "r1".into(),
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
            rate_limits: gatehouse_protocol::RateLimits {
                tiers: [("free".to_owned(), Some(2))].into(),
                anonymous_per_minute: None,
            },
        })
    }

    fn plugin_request(key: Option<&str>) -> PluginRequest {
        PluginRequest {
            method: "GET".into(),
            path: "/".into(),
            query: String::new(),
            headers: key
                .map(|k| {
                    vec![crate::plugins::Header {
                        name: "x-api-key".into(),
                        value: k.into(),
                    }]
                })
                .unwrap_or_default(),
            client_ip: "127.0.0.1".into(),
            route_id: "r".into(),
            consumer_id: None,
        }
    }

    fn status(
        config: &CompiledConfig,
        builtins: &Builtins,
        path: &str,
        key: Option<&str>,
    ) -> Result<Option<String>, u16> {
        let facts = RequestFacts {
            method: "GET",
            path,
        };
        let decision =
            futures_util::FutureExt::now_or_never(admit(config, builtins, facts, |_| {
                plugin_request(key)
            }))
            .expect("no I/O on local limits");
        match decision {
            Ok(admitted) => Ok(admitted.consumer.map(|c| c.id.to_string())),
            Err(Refusal::Reject(reject, _)) => Err(reject.status),
            Err(Refusal::Answered(response, _)) => Err(response.status),
            Err(Refusal::PluginFailed(..)) => Err(503),
        }
    }

    #[test]
    fn decides_404_401_503_and_admits() {
        let config = config();
        let engine = crate::plugins::PluginEngine::new(crate::plugins::EngineSettings::default())
            .expect("engine");
        let builtins = Builtins::load(&engine, Arc::default(), false).expect("built-ins");
        assert_eq!(status(&config, &builtins, "/nope", None), Err(404));
        assert_eq!(status(&config, &builtins, "/secure", None), Err(401));
        assert_eq!(
            status(&config, &builtins, "/secure", Some("ck_bad")),
            Err(401)
        );
        assert_eq!(
            status(&config, &builtins, "/secure", Some("ck_good")),
            Ok(Some("c".to_owned()))
        );
        assert_eq!(
            status(&config, &builtins, "/secure", Some("ck_good")),
            Ok(Some("c".to_owned()))
        );
        assert_eq!(
            status(&config, &builtins, "/secure", Some("ck_good")),
            Err(429),
            "the free tier here allows 2 a minute"
        );
        assert_eq!(status(&config, &builtins, "/open", None), Ok(None));
        assert_eq!(status(&config, &builtins, "/orphan", None), Err(503));
    }
}
