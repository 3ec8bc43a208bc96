//! The gateway side of the control plane: nodes connect here (WebSocket,
//! authenticated by the tenant's gateway key), receive the tenant's config
//! snapshot and every change after it, and heartbeat so that
//! `gateway-status` can tell whether the tenant's gateway is online.

mod changes;
mod connection;
mod hub;
pub mod ingesting;
pub mod snapshot;

pub use changes::{ConfigWrite, NOTIFY_CHANNEL, spawn_listener};
pub use hub::ConfigHub;

use axum::Router;
use axum::routing::get;
use gatehouse_protocol::sync::CONNECT_PATH;

use crate::state::AppState;

/// The gateway connection endpoint. It speaks WebSocket, not JSON, so it is
/// documented in `docs/` rather than in the OpenAPI document.
pub fn router() -> Router<AppState> {
    Router::new().route(CONNECT_PATH, get(connection::connect))
}
