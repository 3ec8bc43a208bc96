//! Active health checks: every interval, each service with a
//! `healthCheckPath` gets `GET <target path><health path>` (HTTP or HTTPS)
//! within a timeout. 2xx and 3xx are up; anything else, a timeout or a
//! connection error is down. A result is reported when the status changes
//! and at least every [`REPORT_EVERY`]; the proxy's metrics show it at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_protocol::telemetry::HealthResult;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::aggregator::now_ms;
use super::{Event, Telemetry};
use crate::live::LiveConfig;
use crate::metrics::Metrics;
use crate::upstream::Upstream;

/// An unchanged status is reported again after this long.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

/// How often and how patiently services are checked.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    pub interval: Duration,
    pub timeout: Duration,
    /// The CAs trusted for https services (`--upstream-ca-file`), else the
    /// system's roots: the same trust as the proxy's own connections.
    pub upstream_ca_file: Option<PathBuf>,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    pub up: bool,
    pub http_status: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
}

/// Checks the services of the live config until `shutdown`.
pub async fn run(
    live: LiveConfig,
    settings: HealthSettings,
    telemetry: Telemetry,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = crate::tls::client_connector(settings.upstream_ca_file.as_deref());
    let mut last: HashMap<String, (bool, Instant)> = HashMap::new();
    let mut tick = tokio::time::interval(settings.interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let Some(config) = live.load() else { continue };
        let targets: Vec<Arc<Upstream>> = config
            .upstreams
            .values()
            .filter(|u| u.health_check_path.is_some())
            .cloned()
            .collect();
        let checks = targets.iter().map(|upstream| {
            let tls = tls.clone();
            async move {
                (
                    upstream,
                    check(upstream, settings.timeout, tls.as_ref()).await,
                )
            }
        });
        for (upstream, outcome) in futures_util::future::join_all(checks).await {
            metrics.upstream_up(&upstream.id, outcome.up);
            let due = match last.get(&upstream.id) {
                Some((was_up, at)) => *was_up != outcome.up || at.elapsed() >= REPORT_EVERY,
                None => true,
            };
            if due {
                if last
                    .get(&upstream.id)
                    .is_some_and(|(was_up, _)| *was_up != outcome.up)
                {
                    tracing::info!(
                        service = upstream.id,
                        up = outcome.up,
                        "service health changed"
                    );
                }
                last.insert(upstream.id.clone(), (outcome.up, Instant::now()));
                telemetry.emit(Event::Health(HealthResult {
                    service_id: upstream.id.clone(),
                    up: outcome.up,
                    http_status: outcome.http_status.map(i64::from),
                    latency_ms: Some(outcome.latency.as_secs_f64() * 1000.0),
                    error: outcome.error,
                    at_ms: now_ms(),
                }));
            }
        }
        // Services that left the config leave the bookkeeping.
        last.retain(|id, _| config.upstreams.contains_key(id));
    }
}

/// Checks one service.
pub async fn check(
    upstream: &Upstream,
    timeout: Duration,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> CheckOutcome {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, probe(upstream, tls)).await;
    let latency = started.elapsed();
    match result {
        Ok(Ok(status)) => CheckOutcome {
            up: (200..400).contains(&status),
            http_status: Some(status),
            latency,
            error: (!(200..400).contains(&status))
                .then(|| format!("health check answered {status}")),
        },
        Ok(Err(err)) => CheckOutcome {
            up: false,
            http_status: None,
            latency,
            error: Some(err),
        },
        Err(_) => CheckOutcome {
            up: false,
            http_status: None,
            latency,
            error: Some(format!("no answer within {} ms", timeout.as_millis())),
        },
    }
}

async fn probe(
    upstream: &Upstream,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> Result<u16, String> {
    let address = upstream
        .resolved
        .pick()
        .ok_or("the host does not resolve")?;
    let stream = TcpStream::connect(address)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    let path = upstream.forward_path(upstream.health_check_path.as_deref().unwrap_or("/"));
    // The Host requests are forwarded with (printable ASCII by
    // construction).
    let host = upstream.host_header.to_str().unwrap_or(&upstream.host);
    if upstream.tls {
        let tls = tls.ok_or("TLS is unavailable on this node")?;
        let name = ServerName::try_from(upstream.host.clone())
            .map_err(|err| format!("tls name: {err}"))?;
        let stream = tls
            .connect(name, stream)
            .await
            .map_err(|err| format!("tls: {err}"))?;
        request_status(stream, host, &path).await
    } else {
        request_status(stream, host, &path).await
    }
}

async fn request_status<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    path: &str,
) -> Result<u16, String> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: gatehouse-health-check\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| format!("write: {err}"))?;
    let mut head = [0u8; 32];
    let mut read = 0;
    while read < 12 {
        let n = stream
            .read(&mut head[read..])
            .await
            .map_err(|err| format!("read: {err}"))?;
        if n == 0 {
            return Err("closed before answering".to_owned());
        }
        read += n;
    }
    parse_status(&head[..read]).ok_or_else(|| "not an HTTP response".to_owned())
}

/// The status code of an HTTP/1.x status line.
fn parse_status(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.")?;
    rest.get(2..5)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_probe_names_the_upstream_as_forwarded_requests_do() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let service = gatehouse_protocol::ServiceConfig {
            id: "s".into(),
            target_url: format!("http://{address}/v1"),
            health_check_path: Some("/healthz".into()),
            timeout_ms: 500,
        };
        let upstream = Upstream::parse(&service)
            .expect("parses")
            .with_addresses(vec![address]);
        let answer = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut head = Vec::new();
            let mut buf = [0u8; 512];
            while !head.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.expect("read");
                assert!(n > 0, "the probe hung up mid-request");
                head.extend_from_slice(&buf[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .expect("write");
            String::from_utf8(head).expect("ASCII")
        });
        let probed = tokio::time::timeout(Duration::from_secs(10), probe(&upstream, None));
        assert_eq!(probed.await.expect("the probe finished"), Ok(204));
        let head = answer.await.expect("the upstream answered");
        assert!(head.starts_with("GET /v1/healthz HTTP/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", address.port())),
            "the Host carries the port: {head}"
        );
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Service"), Some(503));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH"), None);
    }
}
