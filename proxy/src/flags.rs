//! `gatehouse proxy`'s flags and their checks at start-up: each wrong value
//! is one clear error naming its flag.

use std::path::PathBuf;

use clap::Parser;
use gatehouse_protocol::key_prefix::GATEWAY_KEY_PREFIX;

use gatehouse_protocol::trusted_proxies::TrustedProxies;

use crate::layers::Layers;
use crate::tls;

/// A gateway node's configuration.
#[derive(Debug, Clone, Parser)]
#[command(name = "proxy")]
pub struct ProxyArgs {
    /// The control plane to follow.
    #[arg(
        long,
        env = "GATEHOUSE_CONTROL_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    pub control_url: String,

    /// The tenant's gateway key (gk_...).
    #[arg(long, env = "GATEHOUSE_GATEWAY_KEY", hide_env_values = true)]
    pub gateway_key: String,

    /// Address the proxy serves traffic on (HTTP/1.1 and h2c).
    #[arg(long, env = "GATEHOUSE_PROXY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Address the proxy also serves HTTPS on (HTTP/1.1 and h2 by ALPN),
    /// with `--tls-cert` and `--tls-key`.
    #[arg(long, env = "GATEHOUSE_PROXY_TLS_LISTEN", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<String>,

    /// PEM certificate chain of the HTTPS listener.
    #[arg(long, env = "GATEHOUSE_PROXY_TLS_CERT", requires = "tls_listen")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of the HTTPS listener.
    #[arg(long, env = "GATEHOUSE_PROXY_TLS_KEY", requires = "tls_listen")]
    pub tls_key: Option<PathBuf>,

    /// PEM bundle of the CAs trusted for https services, instead of the
    /// system's roots (for services behind a private CA).
    #[arg(long, env = "GATEHOUSE_UPSTREAM_CA_FILE")]
    pub upstream_ca_file: Option<PathBuf>,

    /// PEM bundle of the CAs a `https://` control plane is verified
    /// against, instead of the system's roots.
    #[arg(long, env = "GATEHOUSE_CONTROL_CA_FILE")]
    pub control_ca_file: Option<PathBuf>,

    /// Comma-separated CIDRs of proxies in front of the node (load
    /// balancers) whose `X-Forwarded-For` names the client, for logs,
    /// plugins and anonymous rate limits. None by default: the peer is the
    /// client.
    #[arg(long, env = "GATEHOUSE_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: TrustedProxies,

    /// Address of /healthz and /metrics.
    #[arg(long, env = "GATEHOUSE_ADMIN_LISTEN", default_value = "127.0.0.1:9080")]
    pub admin_listen: String,

    /// Where the node keeps its last config snapshot.
    #[arg(
        long,
        env = "GATEHOUSE_STATE_DIR",
        default_value = "gatehouse-data/proxy/"
    )]
    pub state_dir: PathBuf,

    /// Redis shared by the tenant's nodes, for rate limits that hold across
    /// the fleet (`redis://host:6379/0`). Without it, limits are per node.
    #[arg(long, env = "GATEHOUSE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// How long a rate-limit decision may wait for Redis before the node
    /// decides locally (with its share of the limit), in ms.
    #[arg(long, env = "GATEHOUSE_REDIS_TIMEOUT_MS", default_value_t = 50)]
    pub redis_timeout_ms: u64,

    /// Worker threads for traffic.
    #[arg(long, env = "GATEHOUSE_PROXY_THREADS", default_value_t = 2)]
    pub threads: usize,

    /// Ship a log record of every request (`false`: metrics and error
    /// events only).
    #[arg(long, env = "GATEHOUSE_REQUEST_LOGS", default_value_t = true, action = clap::ArgAction::Set)]
    pub request_logs: bool,

    /// How often services with a healthCheckPath are checked, in ms.
    #[arg(long, env = "GATEHOUSE_HEALTH_INTERVAL_MS", default_value_t = 10_000)]
    pub health_interval_ms: u64,

    /// How long a health check may take, in ms.
    #[arg(long, env = "GATEHOUSE_HEALTH_TIMEOUT_MS", default_value_t = 2_000)]
    pub health_timeout_ms: u64,

    /// Telemetry log records kept in memory while the control plane is
    /// unreachable or behind, before spilling to the state dir (20,000 are
    /// about 7 MB of JSON, a second of logs at 20,000 requests/s).
    #[arg(
        long,
        env = "GATEHOUSE_TELEMETRY_MEMORY_RECORDS",
        default_value_t = 20_000
    )]
    pub telemetry_memory_records: usize,

    /// Megabytes of telemetry spilled to the state dir before the oldest is
    /// dropped (and counted).
    #[arg(long, env = "GATEHOUSE_TELEMETRY_SPILL_MB", default_value_t = 256)]
    pub telemetry_spill_mb: u64,

    /// Time a plugin hook may take, in ms (its own time: host I/O waits
    /// excluded, CPU time confirmed before a call is cut).
    #[arg(long, env = "GATEHOUSE_PLUGIN_DEADLINE_MS", default_value_t = 10)]
    pub plugin_deadline_ms: u64,

    /// Linear memory a plugin may grow to, in MiB.
    #[arg(long, env = "GATEHOUSE_PLUGIN_MEMORY_MB", default_value_t = 16)]
    pub plugin_memory_mb: usize,

    /// Largest request body forwarded, in MiB (0: no limit); a larger one is
    /// answered 413.
    #[arg(long, env = "GATEHOUSE_MAX_BODY_MB", default_value_t = 100)]
    pub max_body_mb: u64,

    /// Time a connection gets to send a request's headers, counted from its
    /// accept or its previous response, in ms; then it is closed (slow or
    /// idle clients).
    #[arg(long, env = "GATEHOUSE_HEADER_TIMEOUT_MS", default_value_t = 15_000)]
    pub header_timeout_ms: u64,

    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(long, env = "GATEHOUSE_SHUTDOWN_GRACE", default_value_t = 5)]
    pub shutdown_grace: u64,

    /// For the cost ladder of `benches/load` only: run the request handling
    /// up to this layer (`route`, `headers`, `metrics`; `all`, the default,
    /// is what a node is).
    #[arg(long, hide = true, value_enum, default_value_t = Layers::All)]
    pub bench_layers: Layers,
}

/// A flag whose value cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--{flag}: {reason}")]
pub struct NodeError {
    pub flag: &'static str,
    pub reason: String,
}

impl ProxyArgs {
    pub fn validate(&self) -> Result<(), NodeError> {
        if !self.gateway_key.starts_with(GATEWAY_KEY_PREFIX) {
            return Err(NodeError {
                flag: "gateway-key",
                reason: "must be a gateway key (gk_...)".into(),
            });
        }
        crate::sync::connect_url(&self.control_url).map_err(|err| NodeError {
            flag: "control-url",
            reason: err.to_string(),
        })?;
        for (flag, addr) in [
            ("listen", Some(&self.listen)),
            ("admin-listen", Some(&self.admin_listen)),
            ("tls-listen", self.tls_listen.as_ref()),
        ] {
            let Some(addr) = addr else { continue };
            addr.parse::<std::net::SocketAddr>()
                .map_err(|_| NodeError {
                    flag,
                    reason: format!("`{addr}` is not host:port"),
                })?;
        }
        tls::check_files(tls::Files {
            cert: self.tls_cert.as_deref(),
            key: self.tls_key.as_deref(),
            upstream_ca: self.upstream_ca_file.as_deref(),
            control_ca: self.control_ca_file.as_deref(),
        })
        .map_err(|(flag, reason)| NodeError { flag, reason })?;
        if self.health_interval_ms == 0 || self.health_timeout_ms == 0 {
            return Err(NodeError {
                flag: "health-interval-ms",
                reason: "health check interval and timeout must be positive".into(),
            });
        }
        if let Some(url) = &self.redis_url {
            redis::Client::open(url.as_str()).map_err(|err| NodeError {
                flag: "redis-url",
                reason: err.to_string(),
            })?;
        }
        if self.redis_timeout_ms == 0 {
            return Err(NodeError {
                flag: "redis-timeout-ms",
                reason: "must be positive".into(),
            });
        }
        if self.header_timeout_ms == 0 {
            return Err(NodeError {
                flag: "header-timeout-ms",
                reason: "must be positive".into(),
            });
        }
        if self.plugin_deadline_ms == 0 {
            return Err(NodeError {
                flag: "plugin-deadline-ms",
                reason: "must be positive".into(),
            });
        }
        if !(1..=4096).contains(&self.plugin_memory_mb) {
            return Err(NodeError {
                flag: "plugin-memory-mb",
                reason: "must be between 1 and 4096".into(),
            });
        }
        if self.threads == 0 {
            return Err(NodeError {
                flag: "threads",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}
