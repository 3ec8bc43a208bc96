//! Latency histograms as nodes ship them and the control plane merges them:
//! hdrhistogram (microseconds, 3 significant digits), serialized as V2 and
//! base64 on the wire.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

/// The largest latency tracked: one hour, in microseconds.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A new, empty latency histogram.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// Why a shipped histogram was refused.
#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error("not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("not an hdrhistogram V2: {0:?}")]
    Format(hdrhistogram::serialization::DeserializeError),
}

/// The histogram as raw V2 bytes (what the database stores).
pub fn to_bytes(histogram: &Histogram<u64>) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Serializing into a Vec cannot fail for a valid histogram.
    let _ = V2Serializer::new().serialize(histogram, &mut bytes);
    bytes
}

/// A histogram from raw V2 bytes.
pub fn from_bytes(bytes: &[u8]) -> Result<Histogram<u64>, HistogramError> {
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(HistogramError::Format)
}

/// The histogram for the wire.
pub fn encode(histogram: &Histogram<u64>) -> String {
    STANDARD.encode(to_bytes(histogram))
}

/// The raw V2 bytes of a shipped histogram, checked to be one.
pub fn decode_to_bytes(text: &str) -> Result<Vec<u8>, HistogramError> {
    let bytes = STANDARD.decode(text)?;
    from_bytes(&bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let mut h = new_histogram();
        for v in [100, 200, 300, 10_000] {
            h.record(v).expect("in range");
        }
        let bytes = decode_to_bytes(&encode(&h)).expect("decodes");
        let back = from_bytes(&bytes).expect("parses");
        assert_eq!(back.len(), 4);
        assert_eq!(back.max(), h.max());
        assert!(decode_to_bytes("not base64!").is_err());
        assert!(decode_to_bytes(&STANDARD.encode(b"garbage")).is_err());
    }
}
