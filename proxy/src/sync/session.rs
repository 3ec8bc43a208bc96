//! One connection to the control plane: connect (`ws://`, or `wss://` over
//! rustls), say Hello with the config the node serves, then install what
//! it is sent, heartbeat with the config it serves, and ship telemetry once
//! the control plane has answered for this key, until the link fails or the
//! node shuts down (then it is closed cleanly, so the control plane marks
//! the node gone at once).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gatehouse_protocol::sync::{
    self, Assembly, CONNECT_PATH, ControlMessage, HEARTBEAT_INTERVAL_MS, NodeMessage,
};
use gatehouse_protocol::{ConfigDelta, ConfigSnapshot};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::{self, Message};

use super::Syncer;
use super::status::SyncError;
use crate::compiled::CompiledConfig;
use crate::memory;
use crate::state_dir::{StateError, TenantState};

/// Silence from the control plane for this long means the link is dead.
const SILENCE_LIMIT: Duration = Duration::from_millis(3 * HEARTBEAT_INTERVAL_MS);

/// A byte stream a WebSocket runs over: plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Socket = WebSocketStream<Box<dyn Io>>;

/// Frames as large as a plugin component (up to 32 MiB, base64 in JSON).
/// Reads of 16 KiB at most: tungstenite zeroes a read's whole room before
/// each read, 128 KiB by default, for every acknowledgement and heartbeat.
fn socket_config() -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default()
        .max_frame_size(Some(64 << 20))
        .max_message_size(Some(64 << 20))
        .read_buffer_size(16 << 10)
}

/// What one connection has seen so far.
#[derive(Default)]
struct Link {
    /// A message arriving in parts (see `sync::PART_BYTES`).
    parted: Option<Assembly>,
    /// The control plane answered the Hello: this key is its tenant's, and
    /// telemetry may go out.
    confirmed: bool,
}

impl Syncer {
    /// One connection, until it fails or `shutdown` turns true.
    pub(super) async fn session(
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
        let mut socket = tokio::select! {
            connected = self.connect(request) => connected?,
            _ = shutdown.changed() => return Ok(()),
        };
        if let Some(registry) = &self.plugins {
            // What was asked on an earlier link is asked again on this one.
            registry.forget_fetches();
        }
        let hello = NodeMessage::Hello {
            node_name: self.settings.node_name.clone(),
            // Not sent: a control plane from before identities would answer
            // up to date on the version alone; without it, it sends the config.
            have_version: None,
            have_config: self.live.identity(),
            accepts_deltas: true,
        };
        socket.send(Message::text(encode(&hello)?)).await?;
        self.status.up();
        *attempt = 0;
        tracing::info!(
            control = self.settings.control_url,
            "connected to the control plane"
        );

        let mut heartbeat = tokio::time::interval(Duration::from_millis(HEARTBEAT_INTERVAL_MS));
        let mut link = Link::default();
        loop {
            tokio::select! {
                frame = tokio::time::timeout(SILENCE_LIMIT, socket.next()) => {
                    let frame = frame.map_err(|_| SyncError::Silent)?;
                    match frame {
                        Some(Ok(Message::Text(text))) if link.parted.is_none() => {
                            self.receive(&mut socket, text, &mut link).await?;
                        }
                        Some(Ok(Message::Binary(part))) if link.parted.is_some() => {
                            let assembly = link.parted.as_mut().expect("checked");
                            let whole = assembly
                                .add(&part)
                                .map_err(|err| SyncError::Protocol(err.to_string()))?;
                            drop(part);
                            if let Some(text) = whole {
                                link.parted = None;
                                self.receive(&mut socket, text, &mut link).await?;
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
                _ = self.shipping.sealed.notified() => {
                    if link.confirmed {
                        self.ship(&mut socket).await?;
                    }
                }
                _ = heartbeat.tick() => {
                    let beat = NodeMessage::Heartbeat {
                        config: Some(self.live.identity()),
                    };
                    socket.send(Message::text(encode(&beat)?)).await?;
                }
                _ = shutdown.changed() => {
                    socket.close(None).await.ok();
                    self.status.connected.store(false, std::sync::atomic::Ordering::Relaxed);
                    return Ok(());
                }
            }
        }
    }

    /// Opens the WebSocket, over TLS for a `wss://` URL.
    async fn connect(&self, request: Request) -> Result<Socket, SyncError> {
        let uri = request.uri();
        let tls = uri.scheme_str() == Some("wss");
        let host = uri
            .host()
            .ok_or_else(|| SyncError::Url("the control URL names no host".to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|err| SyncError::Connection(tungstenite::Error::Io(err)))?;
        tcp.set_nodelay(true).ok();
        let stream: Box<dyn Io> = if tls {
            let connector = crate::tls::client_connector(self.settings.control_ca_file.as_deref())
                .ok_or_else(|| SyncError::Tls("no TLS client configuration".to_owned()))?;
            let name = ServerName::try_from(host)
                .map_err(|err| SyncError::Tls(format!("server name: {err}")))?;
            Box::new(
                connector
                    .connect(name, tcp)
                    .await
                    .map_err(|err| SyncError::Tls(err.to_string()))?,
            )
        } else {
            Box::new(tcp)
        };
        let (socket, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(socket_config()))
                .await
                .map_err(|err| match err {
                    tungstenite::Error::Http(response)
                        if response.status() == StatusCode::UNAUTHORIZED =>
                    {
                        SyncError::Rejected
                    }
                    other => SyncError::Connection(other),
                })?;
        Ok(socket)
    }

    /// Acts on one message from the control plane (`text`, dropped as soon
    /// as it is decoded: a large config's is tens of MB); a `Parts`
    /// announcement starts `link.parted`.
    async fn receive(
        &self,
        socket: &mut Socket,
        text: impl AsRef<str>,
        link: &mut Link,
    ) -> Result<(), SyncError> {
        let message = sync::decode_control(text.as_ref())
            .map_err(|err| SyncError::Protocol(err.to_string()))?;
        let large = text.as_ref().len() > sync::PART_BYTES;
        drop(text);
        if large {
            // A large config's text (17 MB for 100,000 consumers) goes back
            // before it is compiled, not after: it is not the node's peak.
            memory::release();
        }
        match message {
            ControlMessage::Snapshot(snapshot) => {
                self.apply(snapshot).await;
                // The message and the snapshot are freed (on this thread).
                memory::release();
                self.fetch_plugins(socket).await?;
                self.confirm(socket, link).await?;
            }
            ControlMessage::Delta(delta) => {
                if !self.apply_delta(delta).await {
                    socket
                        .send(Message::text(encode(&NodeMessage::Resync)?))
                        .await?;
                }
                self.fetch_plugins(socket).await?;
                self.confirm(socket, link).await?;
            }
            ControlMessage::UpToDate { .. } => {
                self.fetch_plugins(socket).await?;
                self.confirm(socket, link).await?;
            }
            ControlMessage::Plugin {
                sha256,
                wasm_base64,
            } => self.receive_plugin(sha256, wasm_base64),
            ControlMessage::Ack { batch_id } => {
                self.shipping
                    .outbox
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .ack(&batch_id);
            }
            ControlMessage::Heartbeat { nodes } => {
                if let Some(nodes) = nodes {
                    self.status.fleet.set(nodes);
                }
            }
            ControlMessage::Parts { bytes } => {
                link.parted =
                    Some(Assembly::new(bytes).map_err(|err| SyncError::Protocol(err.to_string()))?);
            }
        }
        Ok(())
    }

    /// The control plane answered the Hello: whatever a previous link did
    /// not get acked goes again, and telemetry flows from now on.
    async fn confirm(&self, socket: &mut Socket, link: &mut Link) -> Result<(), SyncError> {
        if link.confirmed {
            return Ok(());
        }
        link.confirmed = true;
        self.shipping
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .resend_all();
        self.ship(socket).await
    }

    /// Serves `snapshot` unless it is the config already served, binding
    /// the tenant's folder and saving it there.
    async fn apply(&self, snapshot: ConfigSnapshot) {
        if self.live.identity().as_ref() == Some(&snapshot.identity()) {
            return;
        }
        let tenant = self.bind_or_log(&snapshot.tenant_id);
        let version = snapshot.version;
        let started = Instant::now();
        let (snapshot, compiled) = match self
            .config_thread
            .run(move || {
                let compiled = CompiledConfig::compile(&snapshot);
                memory::release();
                (snapshot, compiled)
            })
            .await
        {
            Ok(done) => done,
            Err(err) => {
                tracing::error!(error = %err, version, "compiling the config failed");
                return;
            }
        };
        self.serve(compiled, "snapshot", started);
        let Some(tenant) = tenant else {
            return;
        };
        // Saved without a copy (a large config's snapshot is tens of MB).
        let outcome = tokio::task::spawn_blocking(move || tenant.save_snapshot(&snapshot)).await;
        if let Err(err) = saved(outcome) {
            tracing::error!(error = %err, "config not saved to the state dir");
        }
    }

    /// Serves the config `delta` leads to, patched from the one served,
    /// and saves the delta after it. `false` when the delta does not start
    /// from the config served (the control plane is then asked for the
    /// whole config).
    async fn apply_delta(&self, delta: ConfigDelta) -> bool {
        let Some(current) = self.live.load() else {
            tracing::warn!("a config delta arrived before any config; asking for the whole config");
            return false;
        };
        let line = match serde_json::to_string(&delta) {
            Ok(line) => line,
            Err(err) => {
                tracing::error!(error = %err, "a config delta that does not encode");
                return false;
            }
        };
        let base = delta.base.clone();
        let started = Instant::now();
        let patched = self.config_thread.run(move || current.patch(delta)).await;
        let compiled = match patched {
            Ok(Ok(compiled)) => compiled,
            Ok(Err(mismatch)) => {
                tracing::warn!(error = %mismatch, "config delta not applied; asking for the whole config");
                return false;
            }
            Err(err) => {
                tracing::error!(error = %err, "patching the config failed");
                return false;
            }
        };
        // The tenant's folder, now the delta is known to be of the config
        // served.
        let tenant = self.bind_or_log(&compiled.source.tenant_id);
        let compiled = self.serve(compiled, "delta", started);
        let Some(tenant) = tenant else {
            return true;
        };
        let outcome = tokio::task::spawn_blocking(move || {
            if tenant.append_delta(&line, &base)? {
                // Folded into a new snapshot, written from the served config.
                tenant.save(&compiled.source.tenant_id, &compiled.as_snapshot())?;
            }
            Ok(())
        })
        .await;
        if let Err(err) = saved(outcome) {
            tracing::error!(error = %err, "config delta not saved to the state dir");
        }
        true
    }

    /// Serves `compiled` from now on (the plugin stores of routes it no
    /// longer attaches are dropped), and returns it as served. It came
    /// from a snapshot or a delta (`from`), work on it `started` then.
    fn serve(
        &self,
        compiled: CompiledConfig,
        from: &'static str,
        started: Instant,
    ) -> Arc<CompiledConfig> {
        let source = Arc::clone(&compiled.source);
        if let Some(stores) = &self.stores {
            stores.attach(&source);
        }
        let compiled = self.install(compiled);
        if let Some(stores) = &self.stores {
            stores.keep_attached(&source);
        }
        self.status
            .snapshots
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            tenant_id = source.tenant_id,
            version = source.version,
            from,
            took_ms = started.elapsed().as_millis(),
            "config installed"
        );
        compiled
    }

    /// The tenant's folder, bound (a failure is logged: the config is then
    /// served without being saved).
    fn bind_or_log(&self, tenant_id: &str) -> Option<TenantState> {
        self.bind(tenant_id)
            .inspect_err(|err| {
                tracing::error!(error = %err, "state dir unusable; serving the config without saving it");
            })
            .ok()
    }

    /// Sends every batch not yet sent on this link.
    async fn ship(&self, socket: &mut Socket) -> Result<(), SyncError> {
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
}

/// A blocking state-dir task's outcome, its panic as an error.
fn saved(outcome: Result<Result<(), StateError>, tokio::task::JoinError>) -> Result<(), String> {
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(err) => Err(err.to_string()),
    }
}

pub(super) fn encode(message: &NodeMessage) -> Result<String, SyncError> {
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
}
