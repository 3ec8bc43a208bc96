//! The tenant plugins a config needs: those the node lacks are asked for
//! on the link (loading those kept on disk on the way), and each one sent
//! is compiled on a blocking thread while the link goes on (a language
//! runtime takes seconds to compile; heartbeats and telemetry must not
//! wait). What the node cannot load the registry logs and reports, once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::SinkExt;
use gatehouse_protocol::sync::NodeMessage;
use tokio_tungstenite::tungstenite::{self, Message};

use super::Syncer;
use super::session::encode;
use super::status::SyncError;

impl Syncer {
    /// Asks the control plane for the plugins the served config needs and
    /// the node lacks.
    pub(super) async fn fetch_plugins<S>(&self, socket: &mut S) -> Result<(), SyncError>
    where
        S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let (Some(registry), Some(config)) = (self.plugins.clone(), self.live.load()) else {
            return Ok(());
        };
        let missing = tokio::task::spawn_blocking(move || registry.missing(&config.source))
            .await
            .unwrap_or_default();
        for sha256 in missing {
            socket
                .send(Message::text(encode(&NodeMessage::FetchPlugin { sha256 })?))
                .await?;
        }
        Ok(())
    }

    /// Installs a component the control plane sent.
    pub(super) fn receive_plugin(&self, sha256: String, wasm_base64: Option<String>) {
        let Some(registry) = self.plugins.clone() else {
            return;
        };
        let Some(bytes) = wasm_base64.and_then(|b| STANDARD.decode(b).ok()) else {
            tracing::warn!(sha256, "the control plane has no such plugin");
            registry.fetched(&sha256);
            return;
        };
        // Failures are logged and reported by the registry.
        tokio::task::spawn_blocking(move || registry.install_fetched(&sha256, &bytes));
    }
}
