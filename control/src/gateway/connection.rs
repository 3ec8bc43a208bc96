//! One gateway node's connection: authenticate its gateway key, record the
//! connection, answer its Hello, push the config (what changed, to a node
//! that takes deltas) whenever the tenant's config identity differs from
//! what the node was sent or says it serves
//! (woken by the hub, and re-checked at every heartbeat so a lost
//! announcement costs at most one), store its telemetry (see `ingesting`)
//! and record heartbeats until it goes away.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_protocol::ConfigIdentity;
use gatehouse_protocol::sync::{self, ControlMessage, HEARTBEAT_INTERVAL_MS, NodeMessage};

use crate::auth::tenant::bearer_token;
use crate::error::{ApiError, Result};
use crate::instruments::Counted;
use crate::secrets::{GATEWAY_KEY_PREFIX, sha256_hex};
use crate::state::AppState;
use crate::store::Timestamp;
use crate::telemetry::IngestError;
use crate::{gateway_key, gateway_status};

use super::ingesting::{Ingesting, Stored};
use super::snapshot;

/// How long a node may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /api/gateway/connect`: 401 unless `Authorization: Bearer gk_...`
/// names a tenant's current gateway key; then the WebSocket.
pub async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    let key = bearer_token(&headers)
        .filter(|key| key.starts_with(GATEWAY_KEY_PREFIX))
        .ok_or(ApiError::Unauthorized(
            "invalid_gateway_key",
            "send the tenant's gateway key in Authorization: Bearer gk_...",
        ))?;
    // Looked up by hash: the key itself is never compared or stored.
    let key_hash = sha256_hex(key);
    let tenant_id = gateway_key::tenant_of(state.store(), &key_hash)
        .await?
        .ok_or(ApiError::Unauthorized(
            "invalid_gateway_key",
            "the gateway key is unknown or was rotated",
        ))?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::bad_request(
            "websocket_required",
            format!("expected a WebSocket upgrade: {rejection}"),
        )
    })?;
    // Reads of 16 KiB at most: tungstenite zeroes a read's whole room
    // before each read, 128 KiB by default, for every batch of telemetry
    // and every heartbeat a node sends.
    let upgrade = upgrade.read_buffer_size(16 << 10);
    Ok(upgrade.on_upgrade(move |socket| async move {
        if let Err(err) = serve(socket, state, tenant_id.clone(), key_hash).await {
            tracing::info!(tenant_id, error = %err, "gateway connection ended");
        }
    }))
}

#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("socket: {0}")]
    Socket(#[from] axum::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("its gateway key was rotated")]
    KeyRotated,
}

async fn serve(
    mut socket: WebSocket,
    state: AppState,
    tenant_id: String,
    key_hash: String,
) -> Result<(), ConnectionError> {
    let (node_name, have) = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => match sync::decode_node(&text) {
            Ok(NodeMessage::Hello {
                node_name,
                have_config,
                accepts_deltas,
                ..
            }) => (node_name, (have_config, accepts_deltas)),
            Ok(other) => {
                return Err(ConnectionError::Protocol(format!(
                    "expected hello, got {other:?}"
                )));
            }
            Err(err) => return Err(ConnectionError::Protocol(format!("bad hello: {err}"))),
        },
        _ => return Err(ConnectionError::Protocol("no hello".to_owned())),
    };
    let node_name: String = node_name.chars().take(200).collect();
    let store = state.store();
    let connection_id =
        gateway_status::connect(store, &tenant_id, &node_name, state.replica_id()).await?;
    tracing::info!(tenant_id, node = node_name, "gateway node connected");
    let outcome = stream(
        &mut socket,
        &state,
        &tenant_id,
        &connection_id,
        &key_hash,
        have,
    )
    .await;
    gateway_status::disconnect(store, &connection_id).await?;
    state.hub().prune();
    tracing::info!(tenant_id, node = node_name, "gateway node disconnected");
    outcome
}

/// What this connection has sent the node.
struct Delivery {
    /// What was sent last (its tenant is the connection's).
    sent: ConfigIdentity,
    sent_at: Instant,
    /// The node applies deltas (its Hello said so).
    deltas: bool,
    /// When the node last asked for the whole config.
    resynced_at: Option<Instant>,
}

impl Delivery {
    /// Sends the tenant's config when `current` is not what was sent last,
    /// as what changed since then when the node takes deltas.
    async fn push_if_changed(
        &mut self,
        socket: &mut WebSocket,
        state: &AppState,
        current: &ConfigIdentity,
    ) -> Result<(), ConnectionError> {
        if *current != self.sent {
            let sent = self.sent.clone();
            self.push(socket, state, Some(&sent)).await?;
        }
        Ok(())
    }

    /// Sends the whole config to a node that could not apply a delta, once
    /// a heartbeat at most (a whole config is the dearest read there is; a
    /// node asking more often is repaired by the heartbeat check instead).
    async fn resync(
        &mut self,
        socket: &mut WebSocket,
        state: &AppState,
    ) -> Result<(), ConnectionError> {
        let interval = Duration::from_millis(HEARTBEAT_INTERVAL_MS);
        if self.resynced_at.is_some_and(|at| at.elapsed() < interval) {
            tracing::warn!(
                tenant_id = self.sent.tenant_id,
                "node asks for the whole config again; not yet"
            );
            return Ok(());
        }
        tracing::info!(
            tenant_id = self.sent.tenant_id,
            "node could not apply a delta; sending the whole config"
        );
        self.push(socket, state, None).await?;
        self.resynced_at = Some(Instant::now());
        Ok(())
    }

    /// Sends the tenant's config as it is now: what changed since `base`
    /// (the config the node serves) when the node takes deltas and one can
    /// start from `base`, the whole config otherwise.
    async fn push(
        &mut self,
        socket: &mut WebSocket,
        state: &AppState,
        base: Option<&ConfigIdentity>,
    ) -> Result<(), ConnectionError> {
        let started = Instant::now();
        let delta = match base.filter(|_| self.deltas) {
            Some(base) => snapshot::delta(state.store(), &self.sent.tenant_id, base).await?,
            None => None,
        };
        let (message, kind, routes, consumers) = match delta {
            Some(delta) => {
                self.sent = delta.identity();
                state.instruments().deltas_sent.inc();
                let (routes, consumers) = (
                    delta.routes.upserted.len() + delta.routes.removed.len(),
                    delta.consumers.upserted.len() + delta.consumers.removed.len(),
                );
                (ControlMessage::Delta(delta), "delta", routes, consumers)
            }
            None => {
                let snapshot = snapshot::build(state.store(), &self.sent.tenant_id).await?;
                self.sent = snapshot.identity();
                state.instruments().snapshots_sent.inc();
                let (routes, consumers) = (snapshot.routes.len(), snapshot.consumers.len());
                (
                    ControlMessage::Snapshot(snapshot),
                    "snapshot",
                    routes,
                    consumers,
                )
            }
        };
        let built = started.elapsed();
        self.sent_at = Instant::now();
        send(socket, &message).await?;
        // Where a change's time to the node goes, on this side.
        tracing::debug!(
            tenant_id = self.sent.tenant_id,
            version = self.sent.version,
            kind,
            routes,
            consumers,
            built_ms = built.as_millis(),
            sent_ms = (started.elapsed() - built).as_millis(),
            "config pushed"
        );
        Ok(())
    }
}

async fn stream(
    socket: &mut WebSocket,
    state: &AppState,
    tenant_id: &str,
    connection_id: &str,
    key_hash: &str,
    (have_config, accepts_deltas): (Option<ConfigIdentity>, bool),
) -> Result<(), ConnectionError> {
    // Subscribed before the first read: a change committed from here on
    // wakes this connection.
    let mut changes = state.hub().subscribe(tenant_id);
    let _connected = Counted::new(&state.instruments().gateway_connections);
    let current = snapshot::current(state.store(), tenant_id).await?;
    let mut delivery = Delivery {
        sent: current.clone(),
        sent_at: Instant::now(),
        deltas: accepts_deltas,
        resynced_at: None,
    };
    // Only the exact config is up to date: another tenant's, an older or a
    // newer version (a database restored from a backup), or the same
    // version of another revision, is replaced (by what changed since, when
    // this database's history names the node's config).
    if have_config.as_ref() == Some(&current) {
        send(
            socket,
            &ControlMessage::UpToDate {
                version: current.version,
                config: Some(current),
            },
        )
        .await?;
    } else {
        delivery.push(socket, state, have_config.as_ref()).await?;
    }
    let mut heartbeat = tokio::time::interval(Duration::from_millis(HEARTBEAT_INTERVAL_MS));
    let mut closing = state.closing();
    let mut ingesting = Ingesting::new(
        state.store().clone(),
        state.instruments().clone(),
        tenant_id,
    );
    loop {
        tokio::select! {
            _ = closing.changed() => {
                // The node reconnects (to another replica, or to this one
                // once it is back) and keeps serving meanwhile.
                socket.send(Message::Close(None)).await.ok();
                return Ok(());
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => match sync::decode_node(&text) {
                    Ok(NodeMessage::Heartbeat { config }) => {
                        let answered = node_beat(socket, state, connection_id, config, &mut delivery).await;
                        skip_if_database_away(tenant_id, answered)?;
                    }
                    Ok(NodeMessage::Telemetry(batch)) => {
                        if ingesting.is_full() {
                            let stored = ingesting.next().await;
                            acknowledge(socket, tenant_id, stored).await?;
                        }
                        ingesting.start(batch);
                    }
                    Ok(NodeMessage::FetchPlugin { sha256 }) => {
                        let wasm: Option<(Vec<u8>,)> = sqlx::query_as(
                            "SELECT wasm FROM plugins WHERE tenant_id = $1 AND sha256 = $2 \
                             AND deleted_at IS NULL LIMIT 1",
                        )
                        .bind(tenant_id)
                        .bind(&sha256)
                        .fetch_optional(state.store().pool())
                        .await?;
                        let wasm_base64 = wasm.map(|(bytes,)| STANDARD.encode(bytes));
                        send(socket, &ControlMessage::Plugin { sha256, wasm_base64 }).await?;
                    }
                    Ok(NodeMessage::Resync) => {
                        let resynced = delivery.resync(socket, state).await;
                        skip_if_database_away(tenant_id, resynced)?;
                    }
                    Ok(NodeMessage::Hello { .. }) => {
                        return Err(ConnectionError::Protocol("second hello".to_owned()));
                    }
                    Err(err) => return Err(ConnectionError::Protocol(format!("bad frame: {err}"))),
                },
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err.into()),
            },
            stored = ingesting.next() => acknowledge(socket, tenant_id, stored).await?,
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                changes.borrow_and_update();
                // A rotated key changes the config too: its nodes are cut
                // off here instead of being sent the new config.
                let checked = beat(socket, state, tenant_id, key_hash, &mut delivery).await;
                skip_if_database_away(tenant_id, checked)?;
            }
            _ = heartbeat.tick() => {
                let checked = beat(socket, state, tenant_id, key_hash, &mut delivery).await;
                let database_up = !matches!(checked, Err(ConnectionError::Database(_)));
                skip_if_database_away(tenant_id, checked)?;
                // Sent whatever the checks found, so the node knows the link
                // is alive while the database is away (without a fleet
                // size then: it keeps the last one).
                let nodes = if database_up {
                    gateway_status::status(state.store(), tenant_id, Timestamp::now())
                        .await
                        .ok()
                        .and_then(|fleet| u32::try_from(fleet.connected_nodes).ok())
                        .filter(|n| *n > 0)
                } else {
                    None
                };
                send(socket, &ControlMessage::Heartbeat { nodes }).await?;
            }
        }
    }
}

/// A database error ends nothing: the link stays up (the node keeps
/// serving) and the next heartbeat checks again. Any other error ends the
/// connection.
fn skip_if_database_away(
    tenant_id: &str,
    outcome: Result<(), ConnectionError>,
) -> Result<(), ConnectionError> {
    match outcome {
        Err(ConnectionError::Database(err)) => {
            tracing::warn!(tenant_id, error = %err, "heartbeat check skipped: database away");
            Ok(())
        }
        other => other,
    }
}

/// What a wake-up and every heartbeat checks: cut the node off if its key
/// was rotated (at a heartbeat: a node that connected during a rotation
/// missed its wake-up), and push the config when it changed (at a
/// heartbeat: a change whose announcement was lost, found at most a
/// heartbeat after its commit).
async fn beat(
    socket: &mut WebSocket,
    state: &AppState,
    tenant_id: &str,
    key_hash: &str,
    delivery: &mut Delivery,
) -> Result<(), ConnectionError> {
    cut_off_if_rotated(socket, state, tenant_id, key_hash).await?;
    let current = snapshot::current(state.store(), tenant_id).await?;
    delivery.push_if_changed(socket, state, &current).await
}

/// A node's heartbeat: recorded for gateway-status, and a node that still
/// names another config, or none, a whole heartbeat after it was sent one
/// (it was lost, or did not install) is sent it again.
async fn node_beat(
    socket: &mut WebSocket,
    state: &AppState,
    connection_id: &str,
    serving: Option<Option<ConfigIdentity>>,
    delivery: &mut Delivery,
) -> Result<(), ConnectionError> {
    gateway_status::heartbeat(state.store(), connection_id, Timestamp::now()).await?;
    // A node that does not report its config (it predates identities) is
    // not second-guessed.
    let Some(serving) = serving else {
        return Ok(());
    };
    if serving.as_ref() != Some(&delivery.sent)
        && delivery.sent_at.elapsed() >= Duration::from_millis(HEARTBEAT_INTERVAL_MS)
    {
        tracing::info!(
            tenant_id = delivery.sent.tenant_id,
            serving = serving.as_ref().map(|s| s.version),
            sent = delivery.sent.version,
            "node behind; sending the config again"
        );
        delivery.push(socket, state, serving.as_ref()).await?;
    }
    Ok(())
}

/// Acknowledges a stored batch (or one that can never be stored, which is
/// dropped). A batch the database failed to store is not acknowledged: the
/// connection ends and the node sends it again.
async fn acknowledge(
    socket: &mut WebSocket,
    tenant_id: &str,
    (batch_id, outcome): Stored,
) -> Result<(), ConnectionError> {
    match outcome {
        Ok(_) => {}
        Err(IngestError::Invalid(reason)) => {
            tracing::warn!(
                tenant_id,
                batch = batch_id,
                reason,
                "telemetry batch dropped"
            );
        }
        Err(IngestError::Database(err)) => return Err(err.into()),
    }
    send(socket, &ControlMessage::Ack { batch_id }).await
}

/// Closes the connection with [`gateway_key::KEY_ROTATED_CLOSE_CODE`] when
/// the key it was opened with is no longer `tenant_id`'s.
async fn cut_off_if_rotated(
    socket: &mut WebSocket,
    state: &AppState,
    tenant_id: &str,
    key_hash: &str,
) -> Result<(), ConnectionError> {
    if gateway_key::tenant_of(state.store(), key_hash)
        .await?
        .as_deref()
        == Some(tenant_id)
    {
        return Ok(());
    }
    let frame = CloseFrame {
        code: gateway_key::KEY_ROTATED_CLOSE_CODE,
        reason: "gateway key rotated".into(),
    };
    socket.send(Message::Close(Some(frame))).await.ok();
    Err(ConnectionError::KeyRotated)
}

/// Sends `message` in one text frame, or announced and in parts when it is
/// long (see [`sync::PART_BYTES`]).
async fn send(socket: &mut WebSocket, message: &ControlMessage) -> Result<(), ConnectionError> {
    let encode = |message: &ControlMessage| {
        serde_json::to_string(message)
            .map_err(|err| ConnectionError::Protocol(format!("encoding: {err}")))
    };
    let text = encode(message)?;
    let Some(slices) = sync::parts(text.len()) else {
        socket.send(Message::text(text)).await?;
        return Ok(());
    };
    let announce = ControlMessage::Parts {
        bytes: text.len() as u64,
    };
    socket.send(Message::text(encode(&announce)?)).await?;
    let text = axum::body::Bytes::from(text);
    for range in slices {
        socket.send(Message::Binary(text.slice(range))).await?;
    }
    Ok(())
}
