//! The tenant plugins a config needs: those the node lacks are asked for
//! on the link (loading those kept on disk on the way), and each one sent
//! is compiled on a blocking thread while the link goes on (a language
//! runtime takes seconds to compile; heartbeats and telemetry must not
//! wait). A component the node cannot load is reported as a
//! `plugin_failed` error event naming the plugin, once: it is not asked
//! for again.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::SinkExt;
use gatehouse_protocol::ConfigSnapshot;
use gatehouse_protocol::sync::NodeMessage;
use gatehouse_protocol::telemetry::ErrorOccurrence;
use tokio_tungstenite::tungstenite::{self, Message};

use super::Syncer;
use super::session::encode;
use super::status::SyncError;
use crate::telemetry::Event;
use crate::telemetry::aggregator::now_ms;

impl Syncer {
    /// Asks the control plane for the plugins `snapshot` needs and the node
    /// lacks.
    pub(super) async fn fetch_plugins<S>(
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

    /// Installs a component the control plane sent.
    pub(super) fn receive_plugin(&self, sha256: String, wasm_base64: Option<String>) {
        let Some(registry) = self.plugins.clone() else {
            return;
        };
        let Some(bytes) = wasm_base64.and_then(|b| STANDARD.decode(b).ok()) else {
            tracing::warn!(sha256, "the control plane has no such plugin");
            return;
        };
        let telemetry = self.telemetry.clone();
        tokio::spawn(async move {
            let fetched = sha256.clone();
            let install = {
                let registry = Arc::clone(&registry);
                tokio::task::spawn_blocking(move || registry.install_fetched(&fetched, &bytes))
            };
            let err = match install.await {
                Ok(Ok(())) => return,
                Ok(Err(err)) => err.to_string(),
                Err(err) => err.to_string(),
            };
            let wanted = registry.wanted(&sha256);
            let (name, plugin_id) = wanted
                .map(|w| (w.name, Some(w.plugin_id)))
                .unwrap_or_else(|| (sha256.clone(), None));
            tracing::error!(plugin = name, sha256, error = %err, "tenant plugin not installed");
            if let Some(telemetry) = telemetry {
                telemetry.emit(Event::Error(ErrorOccurrence {
                    kind: "plugin_failed".to_owned(),
                    message: format!("plugin {name}: this node cannot load it: {err}"),
                    route_id: None,
                    service_id: None,
                    plugin_id,
                    status_code: None,
                    at_ms: now_ms(),
                }));
            }
        });
    }
}
