//! Whether a request may go upstream, and where: match its route,
//! authenticate it (the route's `auth` tenant plugins, or else the built-in
//! key check when the route requires a key), find its service, run the
//! rate-limit plugin where a limit applies (by the consumer's tier).

use std::sync::Arc;

use gatehouse_protocol::PluginPhase;

use crate::compiled::CompiledConfig;
use crate::keys::Consumer;
use crate::plugins::chain::{PluginRef, RequestChain, Stop};
use crate::plugins::{
    Builtins, CallContext, Header, LocalResponse, PluginFailure, Registry,
    Request as PluginRequest, RequestAction,
};
use crate::respond::Reject;
use crate::routing::Route;
use crate::upstream::Upstream;

/// A request that may proceed.
#[derive(Debug)]
pub struct Admitted {
    pub route: Arc<Route>,
    pub upstream: Arc<Upstream>,
    /// The consumer authentication identified, if any.
    pub consumer: Option<Consumer>,
    /// Headers for the response to the client (`RateLimit-*`).
    pub response_headers: Vec<Header>,
    /// The request on its way through the route's tenant plugins (after
    /// their `auth` phase), when the route has any.
    pub chain: Option<RequestChain>,
    /// The context the route's tenant plugins are called in, when it has
    /// any.
    pub plugin_context: Option<CallContext>,
    /// A built-in that failed open (the rate limiter), to report.
    pub failed_open: Option<(&'static str, PluginFailure)>,
}

/// The request line admission looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub request_id: &'a str,
}

/// A request that does not go upstream: why, and what goes with the answer.
#[derive(Debug)]
pub struct Refused {
    pub why: Refusal,
    /// Tenant `auth` plugins that failed open on the way (to report).
    pub skipped: Vec<(PluginRef, PluginFailure)>,
    /// The `response-headers` of the `auth` plugins that proceeded, for
    /// the answer whoever gives it.
    pub response_headers: Vec<Header>,
    /// The consumer identified before the refusal (a 429 of a known
    /// consumer), for the request's log.
    pub consumer: Option<Consumer>,
}

impl From<Refusal> for Refused {
    fn from(why: Refusal) -> Self {
        Self {
            why,
            skipped: Vec::new(),
            response_headers: Vec::new(),
            consumer: None,
        }
    }
}

/// Why a request does not go upstream.
#[derive(Debug)]
pub enum Refusal {
    /// The gateway answers with its error JSON (401, 404, 503).
    Reject(Reject, Option<Arc<Route>>),
    /// A plugin answered (the auth plugin's 401, the rate limit's 429, a
    /// tenant auth plugin's answer).
    Answered(LocalResponse, Arc<Route>),
    /// A built-in that fails closed failed: 503 `plugin_failed`.
    PluginFailed(&'static str, PluginFailure, Arc<Route>),
    /// A tenant `auth` plugin that fails closed failed: 503 `plugin_failed`.
    TenantPluginFailed(PluginRef, PluginFailure, Arc<Route>),
}

/// `why`, with what the tenant plugins of `chain` left for the answer: those
/// that failed open on the way, and the response headers of the others.
fn refused(why: Refusal, chain: Option<&mut RequestChain>) -> Refused {
    let mut refused = Refused::from(why);
    if let Some(chain) = chain {
        refused.skipped = std::mem::take(&mut chain.skipped);
        refused.response_headers = std::mem::take(&mut chain.changes.response_headers);
        refused.consumer = chain.consumer.take();
    }
    refused
}

/// Decides a request: 404 without an (enabled) route; the route's `auth`
/// tenant plugins, when it has any, run in place of the built-in key check
/// (one may answer; the consumer one names is the request's); otherwise on
/// a route that requires a key the `api-key-auth` plugin identifies the
/// consumer or answers; a route that requires a key and has no consumer is
/// 401; 503 when the route's service is gone; where a limit applies, the
/// `rate-limit` plugin takes from the bucket (by the consumer's tier) or
/// answers 429 (and fails open). `plugin_request` builds what plugins see,
/// only when one runs.
pub async fn admit(
    config: &CompiledConfig,
    builtins: &Builtins,
    registry: &Registry,
    request: RequestFacts<'_>,
    plugin_request: impl FnOnce(&Route) -> PluginRequest,
) -> Result<Admitted, Refused> {
    let route = config
        .routes
        .lookup(request.method, request.path)
        .ok_or(Refusal::Reject(Reject::ROUTE_NOT_FOUND, None))?;
    let refuse = |reject| Refusal::Reject(reject, Some(Arc::clone(route)));
    let ctx = CallContext::for_tenant(config, &builtins.shared);
    let tenant_ctx =
        (!route.plugins.is_empty()).then(|| ctx.clone().for_request(request.request_id));
    let needs_request =
        route.auth_required || route.rate_limit.is_some() || !route.plugins.is_empty();
    let mut chain = needs_request.then(|| RequestChain::new(plugin_request(route)));
    if let Some(chain) = &mut chain {
        if route.plugins.iter().any(|p| p.phase == PluginPhase::Auth) {
            let tenant_ctx = tenant_ctx.as_ref().unwrap_or(&ctx);
            let authenticated = chain
                .run(registry, tenant_ctx, &route.plugins, PluginPhase::Auth)
                .await;
            match authenticated {
                Ok(()) => {}
                Err(Stop::Answered(response)) => {
                    let refusal = Refusal::Answered(response, Arc::clone(route));
                    return Err(refused(refusal, Some(chain)));
                }
                Err(Stop::Failed(plugin, failure)) => {
                    let refusal = Refusal::TenantPluginFailed(plugin, failure, Arc::clone(route));
                    return Err(refused(refusal, Some(chain)));
                }
            }
        } else if route.auth_required {
            let consumer = check_key(config, builtins, &ctx, route, &chain.request).await?;
            chain.identify(consumer);
        }
        if route.auth_required && chain.consumer.is_none() {
            return Err(refused(refuse(Reject::INVALID_API_KEY), Some(chain)));
        }
    }
    let Some(upstream) = config.upstreams.get(&*route.service_id) else {
        return Err(refused(refuse(Reject::SERVICE_UNAVAILABLE), chain.as_mut()));
    };
    let mut admitted = Admitted {
        route: Arc::clone(route),
        upstream: Arc::clone(upstream),
        consumer: chain.as_ref().and_then(|c| c.consumer.clone()),
        response_headers: Vec::new(),
        chain: None,
        plugin_context: tenant_ctx,
        failed_open: None,
    };
    if let (Some(settings), Some(chain)) = (&route.rate_limit, &mut chain) {
        let ctx = ctx.with_config(Arc::clone(settings));
        match builtins.rate_limit.on_request(&ctx, &chain.request).await {
            Ok(RequestAction::Proceed(changes)) => {
                admitted.response_headers = changes.response_headers
            }
            Ok(RequestAction::Respond(response)) => {
                let refusal = Refusal::Answered(response, Arc::clone(route));
                return Err(refused(refusal, Some(chain)));
            }
            Err(failure) => admitted.failed_open = Some(("rate-limit", failure)),
        }
    }
    admitted.chain = chain.filter(|_| !route.plugins.is_empty());
    Ok(admitted)
}

/// The built-in key check: the consumer whose key the request carries.
async fn check_key(
    config: &CompiledConfig,
    builtins: &Builtins,
    ctx: &CallContext,
    route: &Arc<Route>,
    request: &PluginRequest,
) -> Result<Consumer, Refusal> {
    match builtins.api_key_auth.on_request(ctx, request).await {
        Ok(RequestAction::Proceed(changes)) => {
            // A consumer the plugin names must be one of this tenant's.
            let consumer = changes.consumer_id.and_then(|id| config.keys.by_id(&id));
            consumer
                .ok_or_else(|| Refusal::Reject(Reject::INVALID_API_KEY, Some(Arc::clone(route))))
        }
        Ok(RequestAction::Respond(response)) => Err(Refusal::Answered(response, Arc::clone(route))),
        Err(failure) => Err(Refusal::PluginFailed(
            "api-key-auth",
            failure,
            Arc::clone(route),
        )),
    }
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
                by_plugin("sso-open", "/sso-open", "open"),
                by_plugin("sso-closed", "/sso-closed", "closed"),
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

    /// A route requiring a key whose authentication is a tenant plugin (one
    /// no node has loaded here) with `policy`.
    fn by_plugin(id: &str, pattern: &str, policy: &str) -> RouteConfig {
        RouteConfig {
            id: id.into(),
            method: "GET".into(),
            path_pattern: pattern.into(),
            service_id: "s".into(),
            auth_required: true,
            rate_limit_override: None,
            enabled: true,
            plugins: vec![gatehouse_protocol::RoutePluginConfig {
                plugin_id: "p".into(),
                name: "sso".into(),
                sha256: "00".into(),
                config_json: Arc::from("{}"),
                failure_policy: policy.into(),
                phase: PluginPhase::Auth,
            }],
        }
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

    /// The built-ins and an empty registry of tenant plugins.
    struct Plugins {
        builtins: Builtins,
        registry: Registry,
    }

    fn status(
        config: &CompiledConfig,
        plugins: &Plugins,
        path: &str,
        key: Option<&str>,
    ) -> Result<Option<String>, u16> {
        let facts = RequestFacts {
            method: "GET",
            path,
            request_id: "req-1",
        };
        let decision = futures_util::FutureExt::now_or_never(admit(
            config,
            &plugins.builtins,
            &plugins.registry,
            facts,
            |_| plugin_request(key),
        ))
        .expect("no I/O on local limits");
        match decision {
            Ok(admitted) => Ok(admitted.consumer.map(|c| c.id.to_string())),
            Err(refused) => Err(refused_status(&refused.why)),
        }
    }

    fn refused_status(refusal: &Refusal) -> u16 {
        match refusal {
            Refusal::Reject(reject, _) => reject.status,
            Refusal::Answered(response, _) => response.status,
            Refusal::PluginFailed(..) | Refusal::TenantPluginFailed(..) => 503,
        }
    }

    #[test]
    fn decides_404_401_503_and_admits() {
        let config = config();
        let engine = Arc::new(
            crate::plugins::PluginEngine::new(crate::plugins::EngineSettings::default())
                .expect("engine"),
        );
        let dir = std::env::temp_dir().join(format!("gatehouse-admit-{}", uuid::Uuid::new_v4()));
        let builtins = &Plugins {
            builtins: Builtins::load(&engine, Arc::default(), false).expect("built-ins"),
            registry: Registry::new(Arc::clone(&engine), dir.clone()).expect("registry"),
        };
        assert_eq!(status(&config, builtins, "/nope", None), Err(404));
        assert_eq!(status(&config, builtins, "/secure", None), Err(401));
        assert_eq!(
            status(&config, builtins, "/secure", Some("ck_bad")),
            Err(401)
        );
        assert_eq!(
            status(&config, builtins, "/secure", Some("ck_good")),
            Ok(Some("c".to_owned()))
        );
        assert_eq!(
            status(&config, builtins, "/secure", Some("ck_good")),
            Ok(Some("c".to_owned()))
        );
        assert_eq!(
            status(&config, builtins, "/secure", Some("ck_good")),
            Err(429),
            "the free tier here allows 2 a minute"
        );
        assert_eq!(status(&config, builtins, "/open", None), Ok(None));
        assert_eq!(status(&config, builtins, "/orphan", None), Err(503));
        // A tenant auth plugin in place of the key check: one that cannot
        // run never lets a request through, whatever its policy; the
        // built-in is not asked, so even a good key does not pass.
        assert_eq!(
            status(&config, builtins, "/sso-open", Some("ck_good")),
            Err(401)
        );
        assert_eq!(
            status(&config, builtins, "/sso-closed", Some("ck_good")),
            Err(503)
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
