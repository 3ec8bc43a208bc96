//! The pingora proxy: each phase of a request calls one module. Load the
//! config once per request (lock-free) and keep it in the context; decide
//! with `admission`; forward with `forwarding`; answer failures with
//! `respond`; count with `metrics`; report with `telemetry`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::admission::{self, Admitted, Refusal, Refused, RequestFacts};
use crate::body_limit::BodyLimit;
use crate::drain::{InFlight, InFlightGuard};
use crate::forwarding::{self, Forwarded};
use crate::keys::Consumer;
use crate::layers::Layers;
use crate::live::LiveConfig;
use crate::metrics::Metrics;
use crate::plugins::chain::{self, Changes, PluginRef, Stop};
use crate::plugins::{
    Builtins, CallContext, Header as PluginHeader, LocalResponse as PluginLocalResponse,
    LogEntry as PluginLogEntry, PluginFailure, Registry, Request as PluginRequest,
    Response as PluginResponse,
};
use crate::respond::{self, Connection, Reject};
use crate::routing::Route;
use crate::telemetry::aggregator::now_ms;
use crate::telemetry::{Event, Failure, RequestOutcome, Telemetry};
use crate::upstream_failure;
use gatehouse_protocol::PluginPhase;
use gatehouse_protocol::trusted_proxies::TrustedProxies;

/// The gateway's request handling.
pub struct Gateway {
    live: LiveConfig,
    metrics: Arc<Metrics>,
    in_flight: InFlight,
    telemetry: Telemetry,
    builtins: Arc<Builtins>,
    registry: Arc<Registry>,
    body_limit: BodyLimit,
    /// Peers whose `X-Forwarded-For` names the client.
    trusted: TrustedProxies,
    /// What of the request handling runs (all of it but in benchmarks).
    layers: Layers,
}

impl Gateway {
    pub fn new(
        live: LiveConfig,
        metrics: Arc<Metrics>,
        in_flight: InFlight,
        telemetry: Telemetry,
        builtins: Arc<Builtins>,
        registry: Arc<Registry>,
        body_limit: BodyLimit,
    ) -> Self {
        Self {
            trusted: TrustedProxies::default(),
            layers: Layers::All,
            body_limit,
            live,
            metrics,
            in_flight,
            telemetry,
            builtins,
            registry,
        }
    }

    /// Takes the client from `X-Forwarded-For` on requests from `trusted`
    /// peers (load balancers in front of the node).
    pub fn with_trusted_proxies(mut self, trusted: TrustedProxies) -> Self {
        self.trusted = trusted;
        self
    }

    /// Runs the request handling only up to `layers` (the cost ladder of
    /// `benches/load`).
    pub fn with_layers(mut self, layers: Layers) -> Self {
        self.layers = layers;
        self
    }
}

/// What one request carries from phase to phase.
#[derive(Debug)]
pub struct RequestCtx {
    started: Instant,
    at_ms: i64,
    request_id: String,
    /// The client's address (the peer's, or what a trusted proxy says),
    /// formatted once.
    client_ip: Option<String>,
    admitted: Option<Admitted>,
    /// The route of a request answered locally (401/429/503).
    rejected_route: Option<Arc<Route>>,
    /// The consumer of a request refused after it was identified (429).
    refused_consumer: Option<Consumer>,
    /// Whether [`ProxyHttp::fail_to_proxy`] logged the request's failure.
    failure_logged: bool,
    upstream_sent: Option<Instant>,
    /// The address the upstream request went to (once one was picked).
    upstream_addr: Option<std::net::SocketAddr>,
    upstream_status: Option<u16>,
    failure: Option<Failure>,
    /// What the route's tenant plugins changed.
    plugin_changes: Changes,
    /// Headers plugins set for the client's response (`RateLimit-*`).
    response_headers: Vec<PluginHeader>,
    /// What the route's tenant plugins share (the tenant and consumers of
    /// the config the request was admitted with), when the route has any.
    plugin_base: Option<CallContext>,
    /// The request as the tenant plugins left it, for their `on-response`.
    plugin_request: Option<PluginRequest>,
    /// Request body bytes forwarded so far (against the body limit).
    body_bytes: u64,
    /// A body replacing the upstream's (a plugin replaced the response).
    replacement_body: Option<Bytes>,
    _in_flight: InFlightGuard,
}

impl RequestCtx {
    fn route(&self) -> Option<&Arc<Route>> {
        self.admitted
            .as_ref()
            .map(|a| &a.route)
            .or(self.rejected_route.as_ref())
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        // Called once the request's headers are parsed.
        crate::header_deadline::headers_received();
        RequestCtx {
            started: Instant::now(),
            at_ms: now_ms(),
            request_id: String::new(),
            client_ip: None,
            admitted: None,
            rejected_route: None,
            upstream_sent: None,
            upstream_addr: None,
            refused_consumer: None,
            failure_logged: false,
            upstream_status: None,
            failure: None,
            plugin_changes: Changes::default(),
            response_headers: Vec::new(),
            plugin_base: None,
            plugin_request: None,
            body_bytes: 0,
            replacement_body: None,
            _in_flight: self.in_flight.enter(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let header = session.req_header();
        if self.layers.headers() {
            ctx.request_id = forwarding::request_id(
                header
                    .headers
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok()),
            );
        }
        if self.body_limit.declared_too_large(header) {
            // The body is never read, so the connection cannot be reused.
            respond::send(
                session,
                &Reject::PAYLOAD_TOO_LARGE,
                &ctx.request_id,
                &[],
                Connection::Close,
            )
            .await?;
            return Ok(true);
        }
        let Some(config) = self.live.load() else {
            respond::send(
                session,
                &Reject::NOT_CONFIGURED,
                &ctx.request_id,
                &[],
                Connection::KeepAlive,
            )
            .await?;
            return Ok(true);
        };
        let facts = RequestFacts {
            method: header.method.as_str(),
            path: header.uri.path(),
            request_id: &ctx.request_id,
        };
        ctx.client_ip = client_ip(session, &self.trusted);
        let (client, request_id) = (ctx.client_ip.as_deref(), &ctx.request_id);
        let decision = admission::admit(&config, &self.builtins, &self.registry, facts, |route| {
            plugin_request(header, route, client, request_id)
        })
        .await;
        let mut admitted = match decision {
            Ok(admitted) => admitted,
            Err(refusal) => return self.refuse(session, ctx, refusal).await,
        };
        if let Some((name, failure)) = admitted.failed_open.take() {
            self.plugin_failed(ctx, name, None, &failure, "fails open");
        }
        ctx.response_headers = std::mem::take(&mut admitted.response_headers);
        let route = Arc::clone(&admitted.route);
        let (Some(mut chain), Some(base)) = (admitted.chain.take(), admitted.plugin_context.take())
        else {
            ctx.admitted = Some(admitted);
            return Ok(false);
        };
        ctx.admitted = Some(admitted);
        let outcome = chain
            .run(&self.registry, &base, &route.plugins, PluginPhase::Request)
            .await;
        ctx.plugin_base = Some(base);
        for (plugin, failure) in std::mem::take(&mut chain.skipped) {
            self.tenant_plugin_failed(ctx, &plugin, &failure, "fails open");
        }
        // The headers of the plugins that proceeded are on the answer,
        // whoever gives it.
        for header in std::mem::take(&mut chain.changes.response_headers) {
            chain::set_header(&mut ctx.response_headers, header);
        }
        match outcome {
            Ok(()) => {
                ctx.plugin_changes = chain.changes;
                ctx.plugin_request = Some(chain.request);
                Ok(false)
            }
            Err(Stop::Answered(response)) => {
                respond::send_local(session, &response, &ctx.request_id, &ctx.response_headers)
                    .await?;
                Ok(true)
            }
            Err(Stop::Failed(plugin, failure)) => {
                self.tenant_plugin_failed(ctx, &plugin, &failure, "fails closed");
                respond::send(
                    session,
                    &Reject::PLUGIN_FAILED,
                    &ctx.request_id,
                    &ctx.response_headers,
                    Connection::KeepAlive,
                )
                .await?;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let chunk = body.as_ref().map_or(0, Bytes::len);
        self.body_limit.count(&mut ctx.body_bytes, chunk)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let admitted = ctx
            .admitted
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no admitted route"))?;
        let peer = forwarding::peer(&admitted.upstream)?;
        ctx.upstream_addr = peer._address.as_inet().copied();
        Ok(peer)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let admitted = ctx
            .admitted
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no admitted route"))?;
        if self.layers.headers() {
            self.forward(session, upstream_request, ctx, admitted)?;
        }
        forwarding::apply_plugin_changes(
            upstream_request,
            &admitted.upstream,
            &ctx.plugin_changes,
        )?;
        ctx.upstream_sent = Some(Instant::now());
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        // The client speaks with the node, not the upstream: an HTTP/1.0
        // upstream's answer goes out in the node's HTTP/1.1.
        if !session.is_http2() {
            upstream_response.set_version(http::Version::HTTP_11);
        }
        if let (Some(sent), Some(route)) = (ctx.upstream_sent, ctx.admitted.as_ref()) {
            if self.layers.metrics() {
                self.metrics
                    .upstream_latency(&route.route.id, sent.elapsed().as_secs_f64());
            }
            let status = upstream_response.status.as_u16();
            ctx.upstream_status = Some(status);
            if status >= 500 {
                ctx.failure = Some(Failure {
                    kind: "upstream_error",
                    message: format!("the upstream answered {status}"),
                    detail: None,
                    plugin_id: None,
                });
            }
        }
        if self.layers.headers() {
            upstream_response.insert_header("x-request-id", ctx.request_id.as_str())?;
        }
        respond::add_headers(upstream_response, &ctx.response_headers);
        self.run_response_hooks(upstream_response, ctx).await
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.replacement_body.is_some() {
            *body = if end_of_stream {
                ctx.replacement_body.take()
            } else {
                None
            };
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        let Some(reject) = respond::for_error(e) else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        if reject.status >= 500 {
            let message = match ctx.admitted.as_ref() {
                Some(admitted) if upstream_failure::is_upstreams(e) => {
                    upstream_failure::describe(e, &admitted.upstream, ctx.upstream_addr)
                }
                _ => e.to_string(),
            };
            ctx.failure_logged = true;
            let route = ctx.route().map(|r| &*r.id);
            tracing::warn!(request_id = %ctx.request_id, route, cause = %e, "{message}");
            ctx.failure = Some(Failure {
                kind: reject.code,
                message,
                detail: Some(e.to_string()),
                plugin_id: None,
            });
        }
        if let Err(err) = respond::send(
            session,
            &reject,
            &ctx.request_id,
            &ctx.response_headers,
            Connection::Close,
        )
        .await
        {
            tracing::debug!(error = %err, "error response not sent");
        }
        FailToProxy {
            error_code: reject.status,
            can_reuse_downstream: false,
        }
    }

    /// A failure worth an error event was logged in words by
    /// [`Self::fail_to_proxy`]; pingora's own line would say it again raw.
    fn suppress_error_log(&self, _session: &Session, ctx: &Self::CTX, _error: &Error) -> bool {
        ctx.failure_logged
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Self::CTX) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = ctx.route().cloned();
        if self.layers.metrics() {
            self.metrics.request(route.as_ref().map(|r| &*r.id), status);
        }
        if !self.layers.telemetry() {
            return;
        }
        let header = session.req_header();
        let mut outcome = RequestOutcome {
            request_id: std::mem::take(&mut ctx.request_id),
            method: header.method.clone(),
            uri: header.uri.clone(),
            route_id: route.as_ref().map(|r| Arc::clone(&r.id)),
            service_id: route.as_ref().map(|r| Arc::clone(&r.service_id)),
            consumer_id: ctx
                .admitted
                .as_ref()
                .and_then(|a| a.consumer.as_ref())
                .or(ctx.refused_consumer.as_ref())
                .map(|c| c.id.clone()),
            status,
            latency_ms: ctx.started.elapsed().as_secs_f64() * 1000.0,
            client_ip: ctx
                .client_ip
                .take()
                .or_else(|| client_ip(session, &self.trusted))
                .unwrap_or_default(),
            bytes_in: session.as_downstream().body_bytes_read() as u64,
            bytes_out: session.as_downstream().body_bytes_sent() as u64,
            at_ms: ctx.at_ms,
            failure: ctx.failure.take(),
        };
        self.run_log_hooks(&outcome, ctx).await;
        if outcome.failure.is_none() {
            outcome.failure = ctx.failure.take();
        }
        self.telemetry.emit(Event::Request(Box::new(outcome)));
    }
}

impl Gateway {
    /// Rewrites the upstream request for its service and tells it about the
    /// client (see `forwarding`).
    fn forward(
        &self,
        session: &Session,
        upstream_request: &mut RequestHeader,
        ctx: &RequestCtx,
        admitted: &Admitted,
    ) -> Result<()> {
        // The hop appended to X-Forwarded-For is the peer itself; behind a
        // trusted proxy that is not the client.
        let peer = (!self.trusted.is_empty())
            .then(|| peer_ip(session))
            .flatten();
        let forwarded = Forwarded {
            peer_ip: peer.as_deref().or(ctx.client_ip.as_deref()),
            tls: session.digest().is_some_and(|d| d.ssl_digest.is_some()),
            request_id: &ctx.request_id,
            consumer: admitted.consumer.as_ref(),
        };
        forwarding::rewrite(upstream_request, &admitted.upstream, &forwarded)?;
        Ok(())
    }

    /// Answers a request admission refused.
    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        refused: Refused,
    ) -> Result<bool> {
        for (plugin, failure) in refused.skipped {
            self.tenant_plugin_failed(ctx, &plugin, &failure, "fails open");
        }
        ctx.refused_consumer = refused.consumer;
        let headers = &refused.response_headers;
        let reject = match refused.why {
            Refusal::Reject(reject, route) => {
                ctx.rejected_route = route;
                reject
            }
            Refusal::Answered(response, route) => {
                ctx.rejected_route = Some(route);
                respond::send_local(session, &response, &ctx.request_id, headers).await?;
                return Ok(true);
            }
            Refusal::PluginFailed(name, failure, route) => {
                ctx.rejected_route = Some(route);
                self.plugin_failed(ctx, name, None, &failure, "fails closed");
                Reject::PLUGIN_FAILED
            }
            Refusal::TenantPluginFailed(plugin, failure, route) => {
                ctx.rejected_route = Some(route);
                self.tenant_plugin_failed(ctx, &plugin, &failure, "fails closed");
                Reject::PLUGIN_FAILED
            }
        };
        respond::send(
            session,
            &reject,
            &ctx.request_id,
            headers,
            Connection::KeepAlive,
        )
        .await?;
        Ok(true)
    }

    /// The `on-response` hooks of the route's tenant plugins.
    async fn run_response_hooks(
        &self,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(request), Some(base), Some(admitted)) =
            (&ctx.plugin_request, &ctx.plugin_base, &ctx.admitted)
        else {
            return Ok(());
        };
        let response = PluginResponse {
            status: upstream_response.status.as_u16(),
            headers: plugin_headers(&upstream_response.headers).collect(),
        };
        let route = Arc::clone(&admitted.route);
        let outcome = chain::respond(&self.registry, base, &route.plugins, request, response).await;
        let mut replace = outcome.replace;
        for (plugin, failure, closed) in outcome.failed {
            self.tenant_plugin_failed(
                ctx,
                &plugin,
                &failure,
                if closed { "fails closed" } else { "fails open" },
            );
            if closed {
                let reject = Reject::PLUGIN_FAILED;
                replace = Some(PluginLocalResponse {
                    status: reject.status,
                    headers: vec![PluginHeader {
                        name: "content-type".into(),
                        value: "application/json".into(),
                    }],
                    body: reject.body().to_vec(),
                });
            }
        }
        if let Some(replacement) = replace {
            let mut header =
                respond::local_header(&replacement, &ctx.request_id, &ctx.response_headers)?;
            std::mem::swap(upstream_response, &mut header);
            ctx.replacement_body = Some(Bytes::from(replacement.body));
            return Ok(());
        }
        for name in &outcome.remove_headers {
            upstream_response.remove_header(name.as_str());
        }
        respond::add_headers(upstream_response, &outcome.set_headers);
        Ok(())
    }

    /// The `on-log` hooks of the route's tenant plugins, after the response
    /// (their failures are kept in `ctx` for the error event).
    async fn run_log_hooks(&self, outcome: &RequestOutcome, ctx: &mut RequestCtx) {
        let (Some(base), Some(admitted)) = (ctx.plugin_base.clone(), &ctx.admitted) else {
            return;
        };
        let route = Arc::clone(&admitted.route);
        let entry = PluginLogEntry::from(outcome);
        for (plugin, failure) in chain::log(&self.registry, &base, &route.plugins, &entry).await {
            self.tenant_plugin_failed(ctx, &plugin, &failure, "on-log");
        }
    }

    /// Counts a failed plugin call and keeps it for the request's error
    /// event.
    fn plugin_failed(
        &self,
        ctx: &mut RequestCtx,
        name: &str,
        plugin_id: Option<&str>,
        failure: &PluginFailure,
        policy: &str,
    ) {
        tracing::warn!(plugin = name, plugin_id, error = %failure, policy, "plugin failed");
        self.metrics.plugin_failure(name, failure.reason());
        ctx.failure = Some(Failure {
            kind: "plugin_failed",
            message: format!("{name} ({policy}): {failure}"),
            detail: None,
            plugin_id: plugin_id.map(str::to_owned),
        });
    }

    /// [`Self::plugin_failed`] for one of the route's tenant plugins.
    fn tenant_plugin_failed(
        &self,
        ctx: &mut RequestCtx,
        plugin: &PluginRef,
        failure: &PluginFailure,
        policy: &str,
    ) {
        self.plugin_failed(ctx, &plugin.name, Some(&plugin.plugin_id), failure, policy);
    }
}

/// The headers the built-ins read: `api-key-auth` the key (the
/// `rate-limit` built-in reads none). A header a built-in comes to read
/// must be listed here (see `plugins/api-key-auth`).
const BUILTIN_HEADERS: [&str; 2] = ["x-api-key", "authorization"];

/// The request as plugins see it: the client's, with the request id the
/// upstream will get (an unknown client IP is empty).
fn plugin_request(
    header: &RequestHeader,
    route: &Route,
    client_ip: Option<&str>,
    request_id: &str,
) -> PluginRequest {
    PluginRequest {
        method: header.method.as_str().to_owned(),
        path: header.uri.path().to_owned(),
        query: header.uri.query().unwrap_or("").to_owned(),
        headers: plugin_request_headers(&header.headers, !route.plugins.is_empty(), request_id),
        client_ip: client_ip.unwrap_or_default().to_owned(),
        route_id: route.id.to_string(),
        consumer_id: None,
    }
}

/// The headers of the request plugins see. With tenant plugins on the
/// route, all of the client's, the request id the upstream will get in
/// place of any the client sent; with only the built-ins, just the headers
/// they read (each header is copied into the plugin's memory).
fn plugin_request_headers(
    headers: &http::HeaderMap,
    tenant_plugins: bool,
    request_id: &str,
) -> Vec<PluginHeader> {
    if !tenant_plugins {
        return BUILTIN_HEADERS
            .iter()
            .flat_map(|name| {
                let values = headers.get_all(*name).iter();
                values.filter_map(|value| plugin_header(name, value))
            })
            .collect();
    }
    plugin_headers(headers)
        .filter(|h| h.name != "x-request-id")
        .chain(std::iter::once(PluginHeader {
            name: "x-request-id".to_owned(),
            value: request_id.to_owned(),
        }))
        .collect()
}

/// HTTP headers as plugins see them (those that are not valid text are
/// left out).
fn plugin_headers(headers: &http::HeaderMap) -> impl Iterator<Item = PluginHeader> + '_ {
    headers
        .iter()
        .filter_map(|(name, value)| plugin_header(name.as_str(), value))
}

/// One HTTP header as plugins see it (`None` when it is not valid text).
fn plugin_header(name: &str, value: &http::HeaderValue) -> Option<PluginHeader> {
    Some(PluginHeader {
        name: name.to_owned(),
        value: value.to_str().ok()?.to_owned(),
    })
}

/// The client of the request: the peer, or the client a trusted proxy
/// names in `X-Forwarded-For`.
fn client_ip(session: &Session, trusted: &TrustedProxies) -> Option<String> {
    if trusted.is_empty() {
        return peer_ip(session);
    }
    let peer = session.client_addr()?.as_inet()?.ip();
    let forwarded_for = session
        .req_header()
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    Some(trusted.client_ip(peer, forwarded_for).to_string())
}

/// The address the request came from.
fn peer_ip(session: &Session) -> Option<String> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_headers() -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("x-api-key", "ck_one"),
            ("authorization", "Bearer ck_two"),
            ("authorization", "Basic abc"),
            ("x-request-id", "from-the-client"),
            ("accept", "text/plain"),
        ] {
            headers.append(name, http::HeaderValue::from_static(value));
        }
        headers
    }

    fn pairs(headers: &[PluginHeader]) -> Vec<(&str, &str)> {
        headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect()
    }

    #[test]
    fn built_ins_alone_see_only_the_headers_they_read() {
        let headers = plugin_request_headers(&client_headers(), false, "rid");
        assert_eq!(
            pairs(&headers),
            [
                ("x-api-key", "ck_one"),
                ("authorization", "Bearer ck_two"),
                ("authorization", "Basic abc"),
            ]
        );
    }

    #[test]
    fn tenant_plugins_see_every_header_and_the_forwarded_request_id() {
        let headers = plugin_request_headers(&client_headers(), true, "rid");
        // The map's order across names is its own; a name's values keep
        // theirs.
        let mut seen = pairs(&headers);
        seen.sort_by_key(|(name, _)| *name);
        assert_eq!(
            seen,
            [
                ("accept", "text/plain"),
                ("authorization", "Bearer ck_two"),
                ("authorization", "Basic abc"),
                ("x-api-key", "ck_one"),
                ("x-request-id", "rid"),
            ]
        );
    }
}
