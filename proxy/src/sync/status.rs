//! What a node knows about its link to the control plane (for `/metrics`
//! and `/healthz`), and why a link ended.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_tungstenite::tungstenite;

use crate::ratelimit::FleetSize;

/// The link's state, shared with the admin listener and the rate limiter.
#[derive(Debug, Default)]
pub struct SyncStatus {
    pub(super) connected: AtomicBool,
    pub(super) rejected: AtomicBool,
    pub(super) snapshots: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// The tenant's connected nodes, as the control plane's heartbeats say.
    pub(super) fleet: Arc<FleetSize>,
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

    pub(super) fn up(&self) {
        self.connected.store(true, Ordering::Relaxed);
        self.rejected.store(false, Ordering::Relaxed);
    }

    pub(super) fn failed(&self, err: &SyncError) {
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
    #[error("TLS: {0}")]
    Tls(String),
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
    pub(super) fn key_refused(&self) -> bool {
        matches!(self, Self::Rejected | Self::Rotated)
    }
}
