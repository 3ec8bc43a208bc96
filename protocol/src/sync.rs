//! The sync protocol between a gateway node and the control plane, spoken as
//! JSON text frames over one WebSocket (`GET /api/gateway/connect`,
//! `Authorization: Bearer gk_...`).
//!
//! The node opens with [`NodeMessage::Hello`], naming the config it already
//! serves (from disk) by its [`ConfigIdentity`]; the control plane answers
//! [`ControlMessage::UpToDate`] only when that is exactly the tenant's
//! current config, and a snapshot otherwise (the control plane is the
//! authority: an older, newer or foreign config is replaced), then pushes
//! every change. A node that says it takes deltas is sent only what changed
//! ([`ControlMessage::Delta`]) since the config it was last sent (or, on
//! connecting and when it is behind, the one it names) whenever a delta can
//! start from that config; one that cannot apply a delta asks for the whole
//! config ([`NodeMessage::Resync`]). Both sides send heartbeats; the node's name
//! the config it serves, so a change whose notification was lost still
//! reaches it within a heartbeat. The control plane records heartbeats so
//! any replica can tell whether the tenant's gateway is online.

use serde::{Deserialize, Serialize};

use crate::config::{ConfigIdentity, ConfigSnapshot};
use crate::delta::ConfigDelta;
use crate::telemetry::TelemetryBatch;

/// The path of the gateway connection endpoint.
pub const CONNECT_PATH: &str = "/api/gateway/connect";
/// How often each side sends a heartbeat, in milliseconds.
pub const HEARTBEAT_INTERVAL_MS: u64 = 5_000;
/// The WebSocket close code the control plane ends a node's connection
/// with when the gateway key it connected with was rotated (the node will
/// get 401 until restarted with the new key).
pub const KEY_ROTATED_CLOSE_CODE: u16 = 4001;

/// A field that is there, even as `null`, is `Some` (with serde's
/// `default`, an absent one is `None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// What a node sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum NodeMessage {
    /// First frame: who the node is and which config it serves.
    #[serde(rename_all = "camelCase")]
    Hello {
        node_name: String,
        /// The version alone, as nodes before identities sent it (the
        /// control plane answers them with a snapshot).
        #[serde(default)]
        have_version: Option<i64>,
        #[serde(default)]
        have_config: Option<ConfigIdentity>,
        /// The node applies [`ControlMessage::Delta`]s (absent from nodes
        /// before deltas: they are sent snapshots).
        #[serde(default)]
        accepts_deltas: bool,
    },
    /// The node is alive, serving `config`: `Some(None)` (`"config":
    /// null`) when it serves none; `None` (no `config` field) from a node
    /// that predates config identities and says nothing of its config.
    Heartbeat {
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        config: Option<Option<ConfigIdentity>>,
    },
    /// Logs, metrics, errors and health results; answered by an ack.
    Telemetry(TelemetryBatch),
    /// Asks for the component with this SHA-256 (one of the tenant's).
    #[serde(rename_all = "camelCase")]
    FetchPlugin { sha256: String },
    /// A delta did not start from the config the node serves: send the
    /// whole config.
    Resync,
}

/// A node's telemetry batch as the frame that ships it: encodes exactly as
/// [`NodeMessage::Telemetry`] does, for a batch whose logs are any type that
/// encodes as a log record (a node writes them straight from what it
/// measured).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "telemetry")]
pub struct TelemetryFrame<'a, L: Serialize> {
    #[serde(flatten)]
    pub batch: &'a TelemetryBatch<L>,
}

/// What the control plane sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ControlMessage {
    /// The tenant's whole config, to serve instead of what the node has.
    Snapshot(ConfigSnapshot),
    /// What changed since the config the node serves (`base`); sent only
    /// to nodes whose Hello said they take deltas.
    Delta(ConfigDelta),
    /// The config the node named in its Hello is the tenant's current one.
    UpToDate {
        /// `config.version`, for nodes from before identities.
        version: i64,
        #[serde(default)]
        config: Option<ConfigIdentity>,
    },
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
    /// The next message comes in parts: binary frames of [`PART_BYTES`]
    /// (the last one shorter), each the next slice of its JSON text,
    /// `bytes` in all. Messages longer than [`PART_BYTES`] (a large
    /// config's snapshot, a big plugin) are sent so.
    Parts { bytes: u64 },
}

/// The longest message sent in one frame; longer ones go in parts of this
/// size. A WebSocket peer keeps its read buffer as large as the largest
/// frame it has read, for the connection's life: one 17 MB snapshot frame
/// (10,000 routes, 100,000 consumers) left a node holding 37 MB.
pub const PART_BYTES: usize = 1 << 20;

/// The longest message a node takes in parts.
pub const MAX_PARTED_BYTES: u64 = 1 << 30;

/// Why a message sent in parts cannot be put back together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartsError {
    #[error("a message of {0} bytes is over the {MAX_PARTED_BYTES}-byte limit")]
    TooLarge(u64),
    #[error("more parts than the {0} bytes announced")]
    Overflow(usize),
    #[error("the message is not UTF-8")]
    NotText,
}

/// A message arriving in parts, put back together.
#[derive(Debug)]
pub struct Assembly {
    text: Vec<u8>,
    expected: usize,
}

impl Assembly {
    /// Expects a message of `bytes` (announced by [`ControlMessage::Parts`]).
    pub fn new(bytes: u64) -> Result<Self, PartsError> {
        let expected = usize::try_from(bytes)
            .ok()
            .filter(|_| bytes <= MAX_PARTED_BYTES)
            .ok_or(PartsError::TooLarge(bytes))?;
        Ok(Self {
            text: Vec::with_capacity(expected),
            expected,
        })
    }

    /// Adds the next part; returns the message's text once it is whole.
    pub fn add(&mut self, part: &[u8]) -> Result<Option<String>, PartsError> {
        if self.text.len() + part.len() > self.expected {
            return Err(PartsError::Overflow(self.expected));
        }
        self.text.extend_from_slice(part);
        if self.text.len() < self.expected {
            return Ok(None);
        }
        String::from_utf8(std::mem::take(&mut self.text))
            .map(Some)
            .map_err(|_| PartsError::NotText)
    }
}

/// The slices of a message of `len` bytes to send as parts (each at most
/// [`PART_BYTES`]), `None` when it goes in one frame.
pub fn parts(len: usize) -> Option<impl Iterator<Item = std::ops::Range<usize>>> {
    (len > PART_BYTES).then(|| {
        (0..len)
            .step_by(PART_BYTES)
            .map(move |start| start..(start + PART_BYTES).min(len))
    })
}

/// Decodes one text frame from the control plane (a snapshot without
/// buffering it, see [`decode_tagged`]).
pub fn decode_control(text: &str) -> Result<ControlMessage, serde_json::Error> {
    decode_tagged(text, "snapshot", ControlMessage::Snapshot)
}

/// Decodes one text frame from a node (a telemetry batch without buffering
/// it, see [`decode_tagged`]).
pub fn decode_node(text: &str) -> Result<NodeMessage, serde_json::Error> {
    decode_tagged(text, "telemetry", NodeMessage::Telemetry)
}

/// Decodes an internally tagged message. serde's derive reads such an
/// object into a generic tree first, to find the tag, then converts the tree:
/// for a 10,000-route snapshot or a 2,000-log batch, a transient several
/// times the frame. When the first key is `type` (as serde writes it) and
/// the tag is `big`, the rest of the object is read straight into `B`; any
/// other message (small ones, keys in another order) goes through the
/// derive.
fn decode_tagged<'de, T, B>(
    text: &'de str,
    big: &'static str,
    wrap: fn(B) -> T,
) -> Result<T, serde_json::Error>
where
    T: Deserialize<'de>,
    B: Deserialize<'de>,
{
    let visitor = TagFirst {
        big,
        wrap,
        _types: std::marker::PhantomData,
    };
    match serde::Deserializer::deserialize_map(
        &mut serde_json::Deserializer::from_str(text),
        visitor,
    ) {
        Ok(Some(message)) => Ok(message),
        Ok(None) | Err(_) => serde_json::from_str(text),
    }
}

/// The visitor of [`decode_tagged`]: `Some` when it read the big message,
/// `None` (the object skipped) when the derive must read it.
struct TagFirst<T, B> {
    big: &'static str,
    wrap: fn(B) -> T,
    _types: std::marker::PhantomData<fn() -> (T, B)>,
}

impl<'de, T, B: Deserialize<'de>> serde::de::Visitor<'de> for TagFirst<T, B> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::IgnoredAny;
        use std::borrow::Cow;
        let big = match map.next_key::<Cow<'de, str>>()?.as_deref() {
            Some("type") => map.next_value::<Cow<'de, str>>()? == self.big,
            Some(_) => map.next_value::<IgnoredAny>().map(|_| false)?,
            None => false,
        };
        if big {
            let rest = serde::de::value::MapAccessDeserializer::new(map);
            return B::deserialize(rest).map(|big| Some((self.wrap)(big)));
        }
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_tagged_json() {
        let identity = ConfigIdentity {
            tenant_id: "t1".into(),
            version: 3,
            revision: "r".into(),
        };
        let hello = NodeMessage::Hello {
            node_name: "n1".into(),
            have_version: Some(3),
            have_config: Some(identity.clone()),
            accepts_deltas: true,
        };
        let text = serde_json::to_string(&hello).expect("encodes");
        assert_eq!(
            text,
            r#"{"type":"hello","nodeName":"n1","haveVersion":3,"haveConfig":{"tenantId":"t1","version":3,"revision":"r"},"acceptsDeltas":true}"#
        );
        assert_eq!(decode_node(&text).expect("decodes"), hello);
        // What nodes before identities send still reads.
        assert_eq!(
            decode_node(r#"{"type":"hello","nodeName":"n1","haveVersion":3}"#).expect("decodes"),
            NodeMessage::Hello {
                node_name: "n1".into(),
                have_version: Some(3),
                have_config: None,
                accepts_deltas: false,
            }
        );
        assert_eq!(
            decode_node(r#"{"type":"resync"}"#).expect("decodes"),
            NodeMessage::Resync
        );
        assert_eq!(
            decode_node(r#"{"type":"heartbeat"}"#).expect("decodes"),
            NodeMessage::Heartbeat { config: None }
        );
        assert_eq!(
            decode_node(r#"{"type":"heartbeat","config":null}"#).expect("decodes"),
            NodeMessage::Heartbeat { config: Some(None) }
        );
        let up = ControlMessage::UpToDate {
            version: 3,
            config: Some(identity),
        };
        let text = serde_json::to_string(&up).expect("encodes");
        assert_eq!(decode_control(&text).expect("decodes"), up);
        assert!(decode_control(r#"{"type":"launchMissiles"}"#).is_err());
        assert!(decode_node("not json").is_err());
    }

    #[test]
    fn long_messages_go_in_parts_and_come_back_whole() {
        assert!(parts(PART_BYTES).is_none());
        let text = format!("\"{}\"", "é".repeat(PART_BYTES));
        let slices: Vec<_> = parts(text.len()).expect("in parts").collect();
        assert_eq!(slices.len(), 3);
        assert!(slices.iter().all(|r| r.len() <= PART_BYTES));
        let mut assembly = Assembly::new(text.len() as u64).expect("accepted");
        let mut whole = None;
        for (i, range) in slices.iter().enumerate() {
            // Slices cut characters in two; only the whole must be UTF-8.
            let got = assembly.add(&text.as_bytes()[range.clone()]).expect("fits");
            assert_eq!(got.is_some(), i == slices.len() - 1);
            whole = whole.or(got);
        }
        assert_eq!(whole.as_deref(), Some(text.as_str()));

        assert_eq!(
            Assembly::new(MAX_PARTED_BYTES + 1).err(),
            Some(PartsError::TooLarge(MAX_PARTED_BYTES + 1))
        );
        let mut short = Assembly::new(4).expect("accepted");
        assert_eq!(short.add(b"abc").expect("fits"), None);
        assert_eq!(short.add(b"de").err(), Some(PartsError::Overflow(4)));
        let mut bad = Assembly::new(2).expect("accepted");
        assert_eq!(bad.add(&[0xff, 0xfe]).err(), Some(PartsError::NotText));
        let announce = serde_json::to_string(&ControlMessage::Parts { bytes: 7 }).expect("encodes");
        assert_eq!(announce, r#"{"type":"parts","bytes":7}"#);
    }

    #[test]
    fn a_telemetry_frame_encodes_as_the_message() {
        let batch = TelemetryBatch {
            batch_id: "b1".into(),
            node_id: "n1".into(),
            logs: vec![crate::telemetry::LogRecord {
                path: "/x".into(),
                consumer_id: Some("c1".into()),
                status_code: 200,
                latency_ms: 0.25,
                ..Default::default()
            }],
            errors: vec![crate::telemetry::ErrorOccurrence {
                kind: "upstream_error".into(),
                detail: None,
                message: "502".into(),
                route_id: None,
                service_id: None,
                plugin_id: None,
                status_code: Some(502),
                at_ms: 5,
            }],
            ..Default::default()
        };
        let frame = serde_json::to_string(&TelemetryFrame { batch: &batch }).expect("encodes");
        let message = NodeMessage::Telemetry(batch);
        assert_eq!(frame, serde_json::to_string(&message).expect("encodes"));
        assert_eq!(decode_node(&frame).expect("decodes"), message);
    }

    #[test]
    fn big_messages_decode_the_same_whatever_the_key_order() {
        let batch = NodeMessage::Telemetry(TelemetryBatch {
            batch_id: "b1".into(),
            node_id: "n1".into(),
            logs: vec![crate::telemetry::LogRecord {
                id: "l1".into(),
                path: "/x".into(),
                status_code: 200,
                ..Default::default()
            }],
            ..Default::default()
        });
        let text = serde_json::to_string(&batch).expect("encodes");
        assert!(text.starts_with(r#"{"type":"telemetry","#), "{text}");
        assert_eq!(decode_node(&text).expect("decodes"), batch);
        // The tag last, as another encoder may write it: the derive reads it.
        let mut value: serde_json::Value = serde_json::from_str(&text).expect("json");
        let tag = value.as_object_mut().expect("object").remove("type");
        value["type"] = tag.expect("tagged");
        let reordered = value.to_string();
        assert!(reordered.ends_with(r#""type":"telemetry"}"#), "{reordered}");
        assert_eq!(decode_node(&reordered).expect("decodes"), batch);

        let snapshot = ControlMessage::Snapshot(ConfigSnapshot {
            tenant_id: "t1".into(),
            version: 7,
            revision: "r7".into(),
            services: vec![],
            routes: vec![],
            consumers: vec![],
            rate_limits: crate::config::RateLimits::default(),
        });
        let text = serde_json::to_string(&snapshot).expect("encodes");
        assert_eq!(decode_control(&text).expect("decodes"), snapshot);
        // A broken big message is refused, as by the derive.
        assert!(decode_control(r#"{"type":"snapshot","version":"seven"}"#).is_err());
        assert!(decode_node(r#"{"type":"telemetry","batchId":1}"#).is_err());
        assert!(decode_node(r#"{"type":"telemetry","#).is_err());
    }
}
