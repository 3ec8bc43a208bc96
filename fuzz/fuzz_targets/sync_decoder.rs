//! The sync protocol decoders, both directions: any frame decodes or is
//! refused, never a panic; a decoded message encodes and decodes back to
//! itself.
#![no_main]

use gatehouse_protocol::sync::{decode_control, decode_node};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = decode_control(text) {
        let encoded = serde_json::to_string(&message).expect("encodes");
        assert_eq!(decode_control(&encoded).expect("decodes back"), message);
    }
    if let Ok(message) = decode_node(text) {
        let encoded = serde_json::to_string(&message).expect("encodes");
        assert_eq!(decode_node(&encoded).expect("decodes back"), message);
    }
});
