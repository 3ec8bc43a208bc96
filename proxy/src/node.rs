//! `gatehouse proxy`: its flags, and running a node: restore the saved
//! config, start the background thread (sync, telemetry, health checks),
//! serve traffic and the admin listener with pingora on the calling thread
//! until SIGTERM or SIGINT, then drain and stop the background in order.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use clap::Parser;
use gatehouse_protocol::key_prefix::GATEWAY_KEY_PREFIX;
use pingora::apps::HttpServerOptions;
use pingora::apps::http_app::HttpServer;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use std::time::Duration;

use std::sync::Mutex;

use tokio::sync::Notify;

use crate::admin::Admin;
use crate::background::{Background, BackgroundParts};
use crate::body_limit::BodyLimit;
use crate::drain::{self, ExitHook, InFlight};
use crate::gateway::Gateway;
use crate::header_deadline::HeaderDeadline;
use crate::live::LiveConfig;
use crate::metrics::Metrics;
use crate::plugins::{Builtins, EngineSettings, PluginEngine, Registry};
use crate::ratelimit::{Fleet, RateLimiter};
use crate::state_dir::StateDir;
use crate::sync::{Shipping, SyncSettings, Syncer};
use crate::telemetry::Telemetry;
use crate::telemetry::aggregator::Aggregator;
use crate::telemetry::health::HealthSettings;
use crate::telemetry::outbox::{Outbox, OutboxLimits};
use crate::telemetry::request_log::RequestLog;
use crate::tls;

/// Buffers of a client connection: pingora reads through a 64 KiB buffer
/// per connection by default, which made 10,000 open connections cost a
/// node about 1 GB; 16 KiB holds a whole request head (and a TLS record),
/// and bodies stream through it.
pub const CLIENT_BUFFERS: L4BufferSettings = L4BufferSettings {
    read: Some(16 * 1024),
    write: None,
};

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
}

/// A flag whose value cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--{flag}: {reason}")]
pub struct NodeError {
    pub flag: &'static str,
    pub reason: String,
}

impl ProxyArgs {
    fn validate(&self) -> Result<(), NodeError> {
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
        tls::check_files(self).map_err(|(flag, reason)| NodeError { flag, reason })?;
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

/// SIGTERM and SIGINT both drain gracefully: pingora stops accepting, and
/// the node exits as soon as its in-flight requests are done.
struct TerminateOnSignal {
    in_flight: InFlight,
    grace: Duration,
    exit: ExitHook,
}

#[async_trait]
impl ShutdownSignalWatch for TerminateOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
        tracing::info!(
            in_flight = self.in_flight.count(),
            "shutting down: draining in-flight requests"
        );
        drain::exit_when_drained(self.in_flight.clone(), self.grace, self.exit.clone());
        ShutdownSignal::GracefulTerminate
    }
}

/// Runs a node until SIGTERM or SIGINT. Blocks the calling thread, which
/// must not be inside a tokio runtime.
pub fn run(args: ProxyArgs) -> anyhow::Result<()> {
    run_with_exit_hook(args, || {})
}

/// [`run`], with `on_exit` run after the node stopped (also when it exits
/// early because its last request finished before the grace period ended).
pub fn run_with_exit_hook(
    args: ProxyArgs,
    on_exit: impl FnOnce() + Send + 'static,
) -> anyhow::Result<()> {
    args.validate()?;
    let live = LiveConfig::default();
    let state = StateDir::open(&args.state_dir)?;
    let node_name = format!("{}-{}", hostname(), std::process::id());
    let outbox = Outbox::open(
        state.path().join("outbox"),
        OutboxLimits {
            memory_records: args.telemetry_memory_records,
            spill_bytes: args.telemetry_spill_mb.saturating_mul(1024 * 1024),
        },
    )?;
    let shipping = Shipping {
        outbox: Arc::new(Mutex::new(outbox)),
        sealed: Arc::new(Notify::new()),
    };
    let metrics = Arc::new(Metrics::new()?);
    let (telemetry, events) = Telemetry::new();
    let engine = Arc::new(PluginEngine::new(EngineSettings {
        call_deadline: Duration::from_millis(args.plugin_deadline_ms),
        max_memory: args.plugin_memory_mb << 20,
        ..EngineSettings::default()
    })?);
    let registry = Arc::new(Registry::new(
        Arc::clone(&engine),
        args.state_dir.join("plugins"),
    )?);
    let syncer = Syncer::new(
        SyncSettings {
            control_url: args.control_url.clone(),
            gateway_key: args.gateway_key.clone(),
            node_name: node_name.clone(),
        },
        live.clone(),
        state,
        shipping.clone(),
    )
    .with_plugins(Arc::clone(&registry));
    let fleet = match &args.redis_url {
        Some(url) => Some(Arc::new(Fleet::new(
            url,
            Duration::from_millis(args.redis_timeout_ms),
            telemetry.clone(),
            Arc::clone(&metrics),
        )?)),
        None => None,
    };
    let limiter = match &fleet {
        Some(fleet) => RateLimiter::shared(Arc::clone(fleet), syncer.status().fleet_size()),
        None => RateLimiter::local(),
    };
    let builtins = Arc::new(Builtins::load(
        &engine,
        Arc::new(limiter),
        args.request_logs,
    )?);
    match syncer.restore() {
        Ok(Some(version)) => tracing::info!(version, "restored the saved config"),
        Ok(None) => tracing::info!("no saved config; waiting for the control plane"),
        Err(err) => {
            tracing::warn!(error = %err, "saved config unusable; waiting for the control plane")
        }
    }
    let sync_status = syncer.status();
    let request_log = RequestLog::of(&builtins, &metrics);
    let background = Background::start(BackgroundParts {
        syncer,
        shipping: shipping.clone(),
        aggregator: Aggregator::new(node_name, request_log.is_some()),
        request_log,
        events,
        dropped: telemetry.dropped_counter(),
        live: live.clone(),
        health: HealthSettings {
            interval: Duration::from_millis(args.health_interval_ms),
            timeout: Duration::from_millis(args.health_timeout_ms),
            upstream_ca_file: args.upstream_ca_file.clone(),
        },
        telemetry: telemetry.clone(),
        metrics: Arc::clone(&metrics),
        fleet,
    })?;
    let exit = ExitHook::new(move || {
        background.stop();
        on_exit();
    });

    let in_flight = InFlight::default();
    let conf = ServerConf {
        threads: args.threads,
        // One single-threaded runtime per worker thread, each accepted
        // connection given to one of them at random (as nginx's workers
        // share a listener), instead of one work-stealing runtime: a
        // request's tasks then never cross threads, and pingora alone
        // serves ~5 % more requests a second on one core (the bare_pingora
        // example, benches/load).
        work_stealing: false,
        ca_file: args
            .upstream_ca_file
            .as_ref()
            .map(|path| path.display().to_string()),
        // The upper bound: the drain thread ends the process sooner.
        grace_period_seconds: Some(args.shutdown_grace),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let gateway = Gateway::new(
        live.clone(),
        Arc::clone(&metrics),
        in_flight.clone(),
        telemetry.clone(),
        builtins,
        registry,
        BodyLimit::from_mb(args.max_body_mb),
    );
    let mut app = pingora::proxy::http_proxy(&server.configuration, gateway);
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    app.server_options = Some(options);
    let app = HeaderDeadline::new(
        app,
        Duration::from_millis(args.header_timeout_ms),
        Arc::clone(&metrics),
    );
    let mut proxy = Service::new("gatehouse proxy".to_owned(), app);
    proxy.add_listener(ListenerConfig::tcp(&args.listen).l4_buffer(CLIENT_BUFFERS));
    if let Some(listener) = tls::listener(&args)? {
        proxy.add_listener(
            ListenerConfig::tcp(&listener.address)
                .tls(listener.settings)
                .l4_buffer(CLIENT_BUFFERS),
        );
    }
    let admin = Admin {
        live,
        metrics,
        sync: sync_status,
        telemetry,
        outbox: shipping.outbox,
    };
    let mut admin = Service::new("gatehouse admin".to_owned(), HttpServer::new_app(admin));
    admin.add_tcp(&args.admin_listen);
    server.add_service(proxy);
    server.add_service(admin);
    tracing::info!(
        listen = args.listen,
        tls_listen = args.tls_listen,
        admin = args.admin_listen,
        "gateway node starting"
    );
    let grace = Duration::from_secs(args.shutdown_grace);
    server.run(RunArgs {
        shutdown_signal: Box::new(TerminateOnSignal {
            in_flight,
            grace,
            exit: exit.clone(),
        }),
    });
    // The grace period ran out with requests still in flight.
    exit.run();
    tracing::info!("gateway node stopped");
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map_or_else(|_| "node".to_owned(), |h| h.trim().to_owned())
}
