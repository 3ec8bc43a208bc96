//! Starting and stopping the control plane: open the store, build the state,
//! bind, serve until told to stop, drain.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::{JwtKeys, Throttle, jwt};
use crate::config::ControlArgs;
use crate::instruments::{self, Instruments};
use crate::mail::Mailer;
use crate::state::{AppState, AuthThrottles};
use crate::store::{Dialect, Store};
use crate::telemetry::{self, Retention};
use crate::{gateway, http};

/// Failed logins allowed per email in [`THROTTLE_WINDOW`].
pub const LOGIN_FAILURES_PER_EMAIL: u32 = 5;
/// Failed logins allowed per client IP in [`THROTTLE_WINDOW`].
pub const LOGIN_FAILURES_PER_IP: u32 = 20;
/// The window of the login throttles.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// A running control plane.
#[derive(Debug)]
pub struct Control {
    /// Where it listens (useful with port 0).
    pub addr: SocketAddr,
    /// Where `/metrics` is served (`--metrics-listen`), if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    /// Background tasks: retention, and the relay of other replicas'
    /// config changes (PostgreSQL only).
    background: Vec<JoinHandle<()>>,
}

/// Builds the application state from the flags: store (migrated), keys,
/// mailer. `bound` is where the API listens (the public URL's default).
pub async fn build_state(args: &ControlArgs, bound: SocketAddr) -> anyhow::Result<AppState> {
    let secret = args.resolve_jwt_secret()?;
    let public_url = args.public_url(bound)?;
    let mail_from = args.mail_from()?;
    let mailer = match &args.smtp_url {
        Some(url) => Mailer::smtp(url, mail_from).context("--smtp-url")?,
        None => Mailer::outbox(args.mail_outbox.clone(), mail_from).context("--mail-outbox")?,
    };
    let store = Store::open(&args.database_url)
        .await
        .context("--database-url")?;
    let instruments = Instruments::new(&store).context("the control plane's metrics")?;
    let throttles = AuthThrottles {
        per_email: Throttle::new("email", LOGIN_FAILURES_PER_EMAIL, THROTTLE_WINDOW),
        per_ip: Throttle::new("ip", LOGIN_FAILURES_PER_IP, THROTTLE_WINDOW),
    };
    Ok(AppState::new(
        store,
        JwtKeys::new(&secret, jwt::DEFAULT_TTL),
        mailer,
        throttles,
        args.trusted_proxies.clone(),
        public_url,
        instruments,
    ))
}

impl Control {
    /// Opens everything and starts serving on `args.listen`.
    pub async fn start(args: &ControlArgs) -> anyhow::Result<Self> {
        let socket = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("--listen: cannot bind {}", args.listen))?;
        let metrics_socket = match args.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("--metrics-listen: cannot bind {addr}"))?,
            ),
            None => None,
        };
        let state = build_state(args, socket.local_addr()?).await?;
        let mut control = Self::serve(socket, state)?;
        if let Some(socket) = metrics_socket {
            let (addr, task) = instruments::serve(socket, control.state.clone())?;
            control.metrics_addr = Some(addr);
            control.background.push(task);
        }
        control.background.push(telemetry::spawn_retention(
            control.state.store().clone(),
            Retention {
                log_days: args.log_retention_days,
                metrics_days: args.metrics_retention_days,
            },
        ));
        if control.state.store().dialect() == Dialect::Postgres {
            control.background.push(gateway::spawn_listener(
                args.database_url.clone(),
                control.state.hub().clone(),
            ));
        }
        Ok(control)
    }

    /// Serves `state` on an already bound listener.
    pub fn serve(listener: TcpListener, state: AppState) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = http::app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%addr, dialect = ?state.store().dialect(), "control plane listening");
        Ok(Self {
            addr,
            metrics_addr: None,
            state,
            stop,
            task,
            background: Vec::new(),
        })
    }

    /// Stops accepting, lets in-flight requests finish (at most 10 s), and
    /// closes the database pool.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.state.begin_closing();
        for task in &self.background {
            task.abort();
        }
        match tokio::time::timeout(Duration::from_secs(10), self.task).await {
            Ok(joined) => joined??,
            Err(_) => tracing::warn!("in-flight requests did not finish in 10 s"),
        }
        self.state.store().close().await;
        Ok(())
    }
}

/// Runs the control plane until SIGINT or SIGTERM.
pub async fn run(args: ControlArgs) -> anyhow::Result<()> {
    let control = Control::start(&args).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    control.stop().await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
