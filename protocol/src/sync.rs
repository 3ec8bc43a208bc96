//! The sync protocol between a gateway node and the control plane, spoken as
//! JSON text frames over one WebSocket (`GET /api/gateway/connect`,
//! `Authorization: Bearer gk_...`).
//!
//! The node opens with [`NodeMessage::Hello`], naming the config version it
//! already has (from disk); the control plane answers with a snapshot only
//! when it has a newer one, then pushes a snapshot on every change. Both
//! sides send heartbeats; the control plane records them so any replica can
//! tell whether the tenant's gateway is online.

use serde::{Deserialize, Serialize};

use crate::config::ConfigSnapshot;
use crate::telemetry::TelemetryBatch;

/// The path of the gateway connection endpoint.
pub const CONNECT_PATH: &str = "/api/gateway/connect";
/// How often each side sends a heartbeat, in milliseconds.
pub const HEARTBEAT_INTERVAL_MS: u64 = 5_000;
/// The WebSocket close code the control plane ends a node's connection
/// with when the gateway key it connected with was rotated (the node will
/// get 401 until restarted with the new key).
pub const KEY_ROTATED_CLOSE_CODE: u16 = 4001;

/// What a node sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum NodeMessage {
    /// First frame: who the node is and which config version it holds.
    #[serde(rename_all = "camelCase")]
    Hello {
        node_name: String,
        have_version: Option<i64>,
    },
    /// The node is alive.
    Heartbeat,
    /// Logs, metrics, errors and health results; answered by an ack.
    Telemetry(TelemetryBatch),
    /// Asks for the component with this SHA-256 (one of the tenant's).
    #[serde(rename_all = "camelCase")]
    FetchPlugin { sha256: String },
}

/// What the control plane sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ControlMessage {
    /// The tenant's whole config, newer than what the node has.
    Snapshot(ConfigSnapshot),
    /// The node's version is current (answer to a Hello).
    UpToDate { version: i64 },
    /// The control plane is alive; `nodes` is how many of the tenant's
    /// nodes are connected (a node that loses Redis gives each its share
    /// of a fleet-wide rate limit).
    Heartbeat {
        #[serde(default)]
        nodes: Option<u32>,
    },
    /// The telemetry batch with this id is stored (or was already).
    #[serde(rename_all = "camelCase")]
    Ack { batch_id: String },
    /// A component the node asked for, base64; `None` when the tenant has
    /// no live plugin with that hash.
    #[serde(rename_all = "camelCase")]
    Plugin {
        sha256: String,
        wasm_base64: Option<String>,
    },
}

/// Decodes one text frame from the control plane.
pub fn decode_control(text: &str) -> Result<ControlMessage, serde_json::Error> {
    serde_json::from_str(text)
}

/// Decodes one text frame from a node.
pub fn decode_node(text: &str) -> Result<NodeMessage, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_tagged_json() {
        let hello = NodeMessage::Hello {
            node_name: "n1".into(),
            have_version: Some(3),
        };
        let text = serde_json::to_string(&hello).expect("encodes");
        assert_eq!(text, r#"{"type":"hello","nodeName":"n1","haveVersion":3}"#);
        assert_eq!(decode_node(&text).expect("decodes"), hello);
        let up = ControlMessage::UpToDate { version: 3 };
        let text = serde_json::to_string(&up).expect("encodes");
        assert_eq!(decode_control(&text).expect("decodes"), up);
        assert!(decode_control(r#"{"type":"launchMissiles"}"#).is_err());
        assert!(decode_node("not json").is_err());
    }
}
