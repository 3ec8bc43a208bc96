//! Running a node (its flags are `flags`): restore the saved config, start the background thread (sync, telemetry, health checks),
//! serve traffic and the admin listener with pingora on the calling thread
//! until SIGTERM or SIGINT, then drain and stop the background in order.

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_protocol::telemetry::ErrorOccurrence;
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
pub use crate::flags::{NodeError, ProxyArgs};
use crate::gateway::Gateway;
use crate::header_deadline::HeaderDeadline;
use crate::listen::Listen;
use crate::live::LiveConfig;
use crate::metrics::Metrics;
use crate::plugins::registry::Refused;
use crate::plugins::request_log::RequestLog;
use crate::plugins::{Builtins, EngineSettings, PluginEngine, Registry};
use crate::ratelimit::{Fleet, RateLimiter};
use crate::state_dir::StateDir;
use crate::sync::{Shipping, SyncSettings, Syncer};
use crate::telemetry::aggregator::{Aggregator, now_ms};
use crate::telemetry::health::HealthSettings;
use crate::telemetry::outbox::{Outbox, OutboxLimits};
use crate::telemetry::{Event, Telemetry};
use crate::tls;

/// Buffers of a client connection: pingora reads through a 64 KiB buffer
/// per connection by default, which made 10,000 open connections cost a
/// node about 1 GB; 16 KiB holds a whole request head (and a TLS record),
/// and bodies stream through it.
pub const CLIENT_BUFFERS: L4BufferSettings = L4BufferSettings {
    read: Some(16 * 1024),
    write: None,
};

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
    // Bound to the tenant's folder once the syncer knows the tenant.
    let outbox = Outbox::unbound(OutboxLimits {
        memory_records: args.telemetry_memory_records,
        spill_bytes: args.telemetry_spill_mb.saturating_mul(1024 * 1024),
    });
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
    let reporter = telemetry.clone();
    let registry = Arc::new(
        Registry::new(Arc::clone(&engine), args.state_dir.join("plugins"))?
            .on_refusal(move |refused| reporter.emit(plugin_refused(refused))),
    );
    let syncer = Syncer::new(
        SyncSettings {
            control_url: args.control_url.clone(),
            gateway_key: args.gateway_key.clone(),
            node_name: node_name.clone(),
            control_ca_file: args.control_ca_file.clone(),
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
    let syncer = syncer.with_plugin_stores(builtins.shared.stores());
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
    if args.bench_layers != crate::layers::Layers::All {
        tracing::warn!(
            layers = ?args.bench_layers,
            "--bench-layers: part of the request handling is off (for benchmarks only)"
        );
    }
    let gateway = Gateway::new(
        live.clone(),
        Arc::clone(&metrics),
        in_flight.clone(),
        telemetry.clone(),
        builtins,
        registry,
        BodyLimit::from_mb(args.max_body_mb),
    )
    .with_trusted_proxies(args.trusted_proxies.clone())
    .with_layers(args.bench_layers);
    let mut app = pingora::proxy::http_proxy(&server.configuration, gateway);
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    app.server_options = Some(options);
    let app = HeaderDeadline::new(
        app,
        Duration::from_millis(args.header_timeout_ms),
        Arc::clone(&metrics),
    );
    // Held until the node stops: they keep picked ports ours.
    let listen = Listen::resolve(&args.listen).map_err(|err| bind_error("listen", err))?;
    let admin_listen =
        Listen::resolve(&args.admin_listen).map_err(|err| bind_error("admin-listen", err))?;
    let tls_listen = args
        .tls_listen
        .as_deref()
        .map(Listen::resolve)
        .transpose()
        .map_err(|err| bind_error("tls-listen", err))?;
    let mut proxy = Service::new("gatehouse proxy".to_owned(), app);
    proxy.add_listener(listener_config(&listen).l4_buffer(CLIENT_BUFFERS));
    if let (Some(tls_listen), Some(settings)) = (
        &tls_listen,
        tls::listener_settings(args.tls_cert.as_deref(), args.tls_key.as_deref())?,
    ) {
        proxy.add_listener(
            listener_config(tls_listen)
                .tls(settings)
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
    admin.add_listener(listener_config(&admin_listen));
    server.add_service(proxy);
    server.add_service(admin);
    tracing::info!(
        listen = listen.address,
        tls_listen = tls_listen.as_ref().map(|l| l.address.as_str()),
        admin = admin_listen.address,
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

/// pingora's listener for `listen`, sharing its reserved port if it has one.
fn listener_config(listen: &Listen) -> ListenerConfig {
    let config = ListenerConfig::tcp(&listen.address);
    match listen.socket_options() {
        Some(options) => config.tcp_socket_options(options),
        None => config,
    }
}

fn bind_error(flag: &'static str, err: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!("--{flag}: cannot reserve a port: {err}")
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map_or_else(|_| "node".to_owned(), |h| h.trim().to_owned())
}

/// The error event of a component the node cannot load: a `plugin_failed`
/// naming the plugin, on no route.
fn plugin_refused(refused: Refused) -> Event {
    let (name, plugin_id) = match refused.wanted {
        Some(wanted) => (wanted.name, Some(wanted.plugin_id)),
        None => (refused.sha256, None),
    };
    Event::Error(ErrorOccurrence {
        kind: "plugin_failed".to_owned(),
        detail: None,
        message: format!(
            "plugin {name}: this node cannot load it: {}",
            refused.reason
        ),
        route_id: None,
        service_id: None,
        plugin_id,
        status_code: None,
        at_ms: now_ms(),
    })
}
