//! The pingora proxy: each phase of a request calls one module. Load the
//! config once per request (lock-free) and keep it in the context; decide
//! with `admission`; forward with `forwarding`; answer failures with
//! `respond`; count with `metrics`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::admission::{self, Admitted, RequestFacts};
use crate::drain::{InFlight, InFlightGuard};
use crate::forwarding::{self, Forwarded};
use crate::live::LiveConfig;
use crate::metrics::Metrics;
use crate::respond::{self, Connection, Reject};

/// The gateway's request handling.
pub struct Gateway {
    live: LiveConfig,
    metrics: Arc<Metrics>,
    in_flight: InFlight,
}

impl Gateway {
    pub fn new(live: LiveConfig, metrics: Arc<Metrics>, in_flight: InFlight) -> Self {
        Self {
            live,
            metrics,
            in_flight,
        }
    }
}

/// What one request carries from phase to phase.
#[derive(Debug, Default)]
pub struct RequestCtx {
    request_id: String,
    admitted: Option<Admitted>,
    /// The route of a request answered locally (401/503), for metrics.
    rejected_route: Option<String>,
    upstream_sent: Option<Instant>,
    _in_flight: Option<InFlightGuard>,
}

impl RequestCtx {
    fn route_id(&self) -> Option<&str> {
        self.admitted
            .as_ref()
            .map(|a| a.route.id.as_str())
            .or(self.rejected_route.as_deref())
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            _in_flight: Some(self.in_flight.enter()),
            ..RequestCtx::default()
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let header = session.req_header();
        ctx.request_id = forwarding::request_id(
            header
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
        );
        let Some(config) = self.live.load() else {
            respond::send(
                session,
                &Reject::NOT_CONFIGURED,
                &ctx.request_id,
                Connection::KeepAlive,
            )
            .await?;
            return Ok(true);
        };
        let facts = RequestFacts {
            method: header.method.as_str(),
            path: header.uri.path(),
            x_api_key: header
                .headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok()),
            authorization: header
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
        };
        match admission::admit(&config, facts) {
            Ok(admitted) => {
                ctx.admitted = Some(admitted);
                Ok(false)
            }
            Err((reject, route)) => {
                ctx.rejected_route = route.map(|r| r.id.clone());
                respond::send(session, &reject, &ctx.request_id, Connection::KeepAlive).await?;
                Ok(true)
            }
        }
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
        forwarding::peer(&admitted.upstream)
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
        let forwarded = Forwarded {
            client_ip: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip().to_string()),
            request_id: &ctx.request_id,
            consumer: admitted.consumer.as_deref(),
        };
        forwarding::rewrite(upstream_request, &admitted.upstream, &forwarded)?;
        ctx.upstream_sent = Some(Instant::now());
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let (Some(sent), Some(route)) = (ctx.upstream_sent, ctx.admitted.as_ref()) {
            self.metrics
                .upstream_latency(&route.route.id, sent.elapsed().as_secs_f64());
        }
        upstream_response.insert_header("x-request-id", ctx.request_id.as_str())?;
        Ok(())
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
        if let Err(err) = respond::send(session, &reject, &ctx.request_id, Connection::Close).await
        {
            tracing::debug!(error = %err, "error response not sent");
        }
        FailToProxy {
            error_code: reject.status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Self::CTX) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        self.metrics.request(ctx.route_id(), status);
    }
}
