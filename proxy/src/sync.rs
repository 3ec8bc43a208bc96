//! Following the control plane: one WebSocket to `/api/gateway/connect`,
//! authenticated by the tenant's gateway key. The node says which version it
//! holds, installs every snapshot it is sent (compiled off the hot path),
//! saves it to the state dir, heartbeats, and ships telemetry batches from
//! the outbox (resending what was not acked when a link drops). When the connection fails it
//! reconnects with exponential backoff and full jitter; a rejected key is
//! reported clearly and retried the same way (the key may be fixed by a
//! restart with the right one, or the control plane may come back).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gatehouse_protocol::ConfigSnapshot;
use gatehouse_protocol::sync::{
    self, Assembly, CONNECT_PATH, ControlMessage, HEARTBEAT_INTERVAL_MS, NodeMessage,
};
use rand::Rng;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::compiled::CompiledConfig;
use crate::live::LiveConfig;
use crate::memory;
use crate::plugins::Registry;
use crate::ratelimit::FleetSize;
use crate::state_dir::StateDir;
use crate::telemetry::outbox::Outbox;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The first reconnect delay's upper bound.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// The largest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Silence from the control plane for this long means the link is dead.
const SILENCE_LIMIT: Duration = Duration::from_millis(3 * HEARTBEAT_INTERVAL_MS);

/// Where and who the node is.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// `http://host:port` of the control plane.
    pub control_url: String,
    /// The tenant's `gk_...` key.
    pub gateway_key: String,
    /// How this node names itself to the control plane.
    pub node_name: String,
}

/// What the node knows about its link, for `/metrics` and `/healthz`.
#[derive(Debug, Default)]
pub struct SyncStatus {
    connected: AtomicBool,
    rejected: AtomicBool,
    snapshots: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// The tenant's connected nodes, as the control plane's heartbeats say.
    fleet: Arc<FleetSize>,
}

impl SyncStatus {
    /// The tenant's connected nodes as last reported (shared with the rate
    /// limiter, which gives each node its share when Redis is away).
    pub fn fleet_size(&self) -> Arc<FleetSize> {
        Arc::clone(&self.fleet)
    }

    /// Whether a WebSocket to the control plane is open.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Whether the control plane refused the gateway key last time.
    pub fn rejected(&self) -> bool {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Snapshots installed since start (from the control plane).
    pub fn snapshots(&self) -> u64 {
        self.snapshots.load(Ordering::Relaxed)
    }

    /// Why the last connection failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn failed(&self, err: &SyncError) {
        self.connected.store(false, Ordering::Relaxed);
        self.rejected.store(err.key_refused(), Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(err.to_string());
    }
}

/// Why a session with the control plane ended.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the control plane rejected the gateway key (401): check --gateway-key")]
    Rejected,
    #[error(
        "the gateway key was rotated: restart the node with the new key (it serves its last config meanwhile)"
    )]
    Rotated,
    #[error("control URL: {0}")]
    Url(String),
    #[error("connection: {0}")]
    Connection(#[from] tungstenite::Error),
    #[error("the control plane went silent")]
    Silent,
    #[error("the control plane closed the connection")]
    Closed,
    #[error("protocol: {0}")]
    Protocol(String),
}

impl SyncError {
    /// Whether the control plane refused the node's gateway key (unknown,
    /// or rotated while connected): retrying cannot help until the key is.
    fn key_refused(&self) -> bool {
        matches!(self, Self::Rejected | Self::Rotated)
    }
}

/// Keeps a node's config in step with the control plane.
#[derive(Debug, Clone)]
pub struct Syncer {
    settings: SyncSettings,
    live: LiveConfig,
    state: StateDir,
    status: Arc<SyncStatus>,
    shipping: Shipping,
    plugins: Option<Arc<Registry>>,
}

/// Frames as large as a plugin component (up to 32 MiB, base64 in JSON).
fn socket_config() -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default()
        .max_frame_size(Some(64 << 20))
        .max_message_size(Some(64 << 20))
}

/// Telemetry waiting to go out on the link: the outbox, and the signal that
/// a batch was sealed.
#[derive(Debug, Clone)]
pub struct Shipping {
    pub outbox: Arc<Mutex<Outbox>>,
    pub sealed: Arc<Notify>,
}

impl Syncer {
    pub fn new(
        settings: SyncSettings,
        live: LiveConfig,
        state: StateDir,
        shipping: Shipping,
    ) -> Self {
        Self {
            settings,
            live,
            state,
            status: Arc::default(),
            shipping,
            plugins: None,
        }
    }

    /// Also keeps the tenant plugins the config refers to in `registry`.
    pub fn with_plugins(mut self, registry: Arc<Registry>) -> Self {
        self.plugins = Some(registry);
        self
    }

    /// Asks the control plane for the plugins `snapshot` needs and the node
    /// lacks (loading those kept on disk on the way).
    async fn fetch_plugins<S>(
        &self,
        socket: &mut S,
        snapshot: ConfigSnapshot,
    ) -> Result<(), SyncError>
    where
        S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let Some(registry) = self.plugins.clone() else {
            return Ok(());
        };
        let missing = tokio::task::spawn_blocking(move || registry.missing(&snapshot))
            .await
            .unwrap_or_default();
        for sha256 in missing {
            socket
                .send(Message::text(encode(&NodeMessage::FetchPlugin { sha256 })?))
                .await?;
        }
        Ok(())
    }

    /// Installs a component the control plane sent, compiling it on a
    /// blocking thread while the link goes on (a language runtime takes
    /// seconds to compile; heartbeats and telemetry must not wait).
    async fn receive_plugin(&self, sha256: String, wasm_base64: Option<String>) {
        let Some(registry) = self.plugins.clone() else {
            return;
        };
        let Some(bytes) = wasm_base64.and_then(|b| STANDARD.decode(b).ok()) else {
            tracing::warn!(sha256, "the control plane has no such plugin");
            return;
        };
        let install =
            tokio::task::spawn_blocking(move || registry.install_fetched(&sha256, &bytes));
        tokio::spawn(async move {
            match install.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::error!(error = %err, "tenant plugin not installed"),
                Err(err) => tracing::error!(error = %err, "tenant plugin not installed"),
            }
        });
    }

    /// Sends every batch not yet sent on this link.
    async fn ship<S>(&self, socket: &mut S) -> Result<(), SyncError>
    where
        S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let batches = self
            .shipping
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take_unsent();
        for (_, frame) in batches {
            let text = tungstenite::Utf8Bytes::try_from(frame)
                .map_err(|err| SyncError::Protocol(format!("telemetry frame: {err}")))?;
            socket.send(Message::Text(text)).await?;
        }
        Ok(())
    }

    /// The link's status.
    pub fn status(&self) -> Arc<SyncStatus> {
        Arc::clone(&self.status)
    }

    /// Serves the snapshot saved in the state dir, if there is one. Returns
    /// its version.
    pub fn restore(&self) -> Result<Option<i64>, crate::state_dir::StateError> {
        let Some(snapshot) = self.state.load_snapshot()? else {
            return Ok(None);
        };
        self.live.install(CompiledConfig::compile(&snapshot));
        if let Some(registry) = &self.plugins {
            // Plugins kept on disk load now; the others are fetched once connected.
            let _ = registry.missing(&snapshot);
        }
        tracing::info!(
            version = snapshot.version,
            "serving the config saved in the state dir"
        );
        Ok(Some(snapshot.version))
    }

    /// Follows the control plane until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut attempt: u32 = 0;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let outcome = self.session(&mut attempt, &mut shutdown).await;
            if *shutdown.borrow() {
                return;
            }
            if let Err(err) = outcome {
                self.status.failed(&err);
                if err.key_refused() {
                    tracing::error!("{err}; retrying");
                } else {
                    tracing::warn!(error = %err, "control plane link down; reconnecting");
                }
            }
            let delay = backoff(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One connection, until it fails or `shutdown` turns true (then it is
    /// closed cleanly, so the control plane marks the node gone at once).
    async fn session(
        &self,
        attempt: &mut u32,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), SyncError> {
        let url = connect_url(&self.settings.control_url)?;
        let mut request = url.into_client_request()?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", self.settings.gateway_key))
            .map_err(|_| {
                SyncError::Url("the gateway key is not a valid header value".to_owned())
            })?;
        request.headers_mut().insert("authorization", bearer);
        let (mut socket, _) = tokio::select! {
            connected = tokio_tungstenite::connect_async_with_config(request, Some(socket_config()), true) => connected.map_err(|err| match err {
                tungstenite::Error::Http(response) if response.status() == StatusCode::UNAUTHORIZED => {
                    SyncError::Rejected
                }
                other => SyncError::Connection(other),
            })?,
            _ = shutdown.changed() => return Ok(()),
        };
        let hello = NodeMessage::Hello {
            node_name: self.settings.node_name.clone(),
            have_version: self.live.version(),
        };
        socket.send(Message::text(encode(&hello)?)).await?;
        self.status.connected.store(true, Ordering::Relaxed);
        self.status.rejected.store(false, Ordering::Relaxed);
        *attempt = 0;
        // Whatever a previous link did not get acked goes again.
        self.shipping
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .resend_all();
        self.ship(&mut socket).await?;
        tracing::info!(
            control = self.settings.control_url,
            "connected to the control plane"
        );

        let mut heartbeat = tokio::time::interval(Duration::from_millis(HEARTBEAT_INTERVAL_MS));
        // A message arriving in parts (see `sync::PART_BYTES`).
        let mut parted: Option<Assembly> = None;
        loop {
            tokio::select! {
                frame = tokio::time::timeout(SILENCE_LIMIT, socket.next()) => {
                    let frame = frame.map_err(|_| SyncError::Silent)?;
                    match frame {
                        Some(Ok(Message::Text(text))) if parted.is_none() => {
                            self.receive(&mut socket, text, &mut parted).await?;
                        }
                        Some(Ok(Message::Binary(part))) if parted.is_some() => {
                            let assembly = parted.as_mut().expect("checked");
                            let whole = assembly
                                .add(&part)
                                .map_err(|err| SyncError::Protocol(err.to_string()))?;
                            drop(part);
                            if let Some(text) = whole {
                                parted = None;
                                self.receive(&mut socket, text, &mut parted).await?;
                            }
                        }
                        Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                            return Err(SyncError::Protocol(
                                "a frame out of place around a message in parts".to_owned(),
                            ));
                        }
                        Some(Ok(Message::Close(Some(frame))))
                            if u16::from(frame.code) == sync::KEY_ROTATED_CLOSE_CODE =>
                        {
                            return Err(SyncError::Rotated);
                        }
                        Some(Ok(Message::Close(_))) | None => return Err(SyncError::Closed),
                        Some(Ok(_)) => {}
                        Some(Err(err)) => return Err(err.into()),
                    }
                }
                _ = self.shipping.sealed.notified() => self.ship(&mut socket).await?,
                _ = heartbeat.tick() => {
                    socket.send(Message::text(encode(&NodeMessage::Heartbeat)?)).await?;
                }
                _ = shutdown.changed() => {
                    socket.close(None).await.ok();
                    self.status.connected.store(false, Ordering::Relaxed);
                    return Ok(());
                }
            }
        }
    }

    /// Acts on one message from the control plane (`text`, dropped as soon
    /// as it is decoded: a large config's is tens of MB); a `Parts`
    /// announcement starts `parted`.
    async fn receive<S>(
        &self,
        socket: &mut S,
        text: impl AsRef<str>,
        parted: &mut Option<Assembly>,
    ) -> Result<(), SyncError>
    where
        S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let message = sync::decode_control(text.as_ref())
            .map_err(|err| SyncError::Protocol(err.to_string()))?;
        drop(text);
        match message {
            ControlMessage::Snapshot(snapshot) => {
                if let Some(snapshot) = self.apply(snapshot).await {
                    self.fetch_plugins(socket, snapshot).await?;
                }
                // The message, the snapshot and the old config are freed.
                memory::release();
            }
            ControlMessage::Plugin {
                sha256,
                wasm_base64,
            } => {
                self.receive_plugin(sha256, wasm_base64).await;
            }
            ControlMessage::Ack { batch_id } => {
                self.shipping
                    .outbox
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .ack(&batch_id);
            }
            ControlMessage::UpToDate { .. } => {
                if let Ok(Some(snapshot)) = self.state.load_snapshot() {
                    self.fetch_plugins(socket, snapshot).await?;
                }
            }
            ControlMessage::Heartbeat { nodes } => {
                if let Some(nodes) = nodes {
                    self.status.fleet.set(nodes);
                }
            }
            ControlMessage::Parts { bytes } => {
                *parted =
                    Some(Assembly::new(bytes).map_err(|err| SyncError::Protocol(err.to_string()))?);
            }
        }
        Ok(())
    }

    /// Compiles and installs a snapshot, then saves it.
    /// Returns the snapshot when it was installed.
    async fn apply(&self, snapshot: ConfigSnapshot) -> Option<ConfigSnapshot> {
        let version = snapshot.version;
        if self
            .live
            .version()
            .is_some_and(|current| current >= version)
        {
            return None;
        }
        let (snapshot, compiled) = match tokio::task::spawn_blocking(move || {
            let compiled = CompiledConfig::compile(&snapshot);
            memory::release();
            (snapshot, compiled)
        })
        .await
        {
            Ok(done) => done,
            Err(err) => {
                tracing::error!(error = %err, version, "compiling the config failed");
                return None;
            }
        };
        self.live.install(compiled);
        self.status.snapshots.fetch_add(1, Ordering::Relaxed);
        tracing::info!(version, "config installed");
        // Saved without a copy (a large config's snapshot is tens of MB):
        // the blocking task hands it back.
        let state = self.state.clone();
        let saving = tokio::task::spawn_blocking(move || {
            let saved = state.save_snapshot(&snapshot);
            (snapshot, saved)
        });
        match saving.await {
            Ok((snapshot, saved)) => {
                if let Err(err) = saved {
                    tracing::error!(error = %err, "config not saved to the state dir");
                }
                Some(snapshot)
            }
            Err(err) => {
                tracing::error!(error = %err, "config not saved to the state dir");
                None
            }
        }
    }
}

fn encode(message: &NodeMessage) -> Result<String, SyncError> {
    serde_json::to_string(message).map_err(|err| SyncError::Protocol(err.to_string()))
}

/// `http(s)://host:port[/]` → `ws(s)://host:port/api/gateway/connect`.
pub fn connect_url(control_url: &str) -> Result<String, SyncError> {
    let base = control_url.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        return Err(SyncError::Url(format!(
            "`{control_url}` must start with http:// or https://"
        )));
    };
    Ok(format!("{ws}{CONNECT_PATH}"))
}

/// The delay before reconnect attempt `attempt`: uniformly random up to an
/// exponentially growing bound (full jitter), so a fleet does not reconnect
/// in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let bound = BACKOFF_BASE
        .saturating_mul(2_u32.saturating_pow(attempt.min(16)))
        .min(BACKOFF_MAX);
    let millis = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(rand::rng().random_range(millis / 10..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_urls_become_websocket_urls() {
        assert_eq!(
            connect_url("http://127.0.0.1:3000").ok().as_deref(),
            Some("ws://127.0.0.1:3000/api/gateway/connect")
        );
        assert_eq!(
            connect_url("https://cp.example/").ok().as_deref(),
            Some("wss://cp.example/api/gateway/connect")
        );
        assert!(connect_url("ftp://x").is_err());
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        for attempt in 0..40 {
            let delay = backoff(attempt);
            let bound = BACKOFF_BASE
                .saturating_mul(2_u32.saturating_pow(attempt.min(16)))
                .min(BACKOFF_MAX);
            assert!(delay <= bound, "{attempt}: {delay:?} > {bound:?}");
        }
        assert!(backoff(40) <= BACKOFF_MAX);
        let spread: std::collections::HashSet<_> = (0..50).map(|_| backoff(5)).collect();
        assert!(spread.len() > 1, "jittered");
    }
}
