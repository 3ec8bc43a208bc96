//! The admin listener: `GET /healthz` (200 once a config is loaded, 503
//! before) and `GET /metrics` (Prometheus text).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::live::LiveConfig;
use crate::metrics::Metrics;
use crate::sync::SyncStatus;
use crate::telemetry::outbox::Outbox;
use crate::telemetry::{self, Telemetry};

/// The admin endpoints.
pub struct Admin {
    pub live: LiveConfig,
    pub metrics: Arc<Metrics>,
    pub sync: Arc<SyncStatus>,
    pub telemetry: Telemetry,
    pub outbox: Arc<Mutex<Outbox>>,
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        let (status, content_type, body) = match path.as_str() {
            "/healthz" => {
                let version = self.live.version();
                let status = if version.is_some() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                let body = serde_json::json!({
                    "status": if version.is_some() { "ok" } else { "no_config" },
                    "configVersion": version,
                    "syncConnected": self.sync.connected(),
                    "syncError": self.sync.last_error(),
                });
                (status, "application/json", body.to_string().into_bytes())
            }
            "/metrics" => (
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics.render(self.live.version(), &self.sync, telemetry::gauges(&self.telemetry, &self.outbox)).into_bytes(),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                "application/json",
                br#"{"error":{"code":"not_found","message":"admin endpoints: /healthz, /metrics"}}"#.to_vec(),
            ),
        };
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("content-length", body.len())
            .body(body)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}
