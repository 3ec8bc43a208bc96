//! How a key says what it is: the control plane issues keys with these
//! prefixes, and a node recognises them by the same ones (a gateway key on
//! its command line, a consumer key it must not forward).

/// Prefix of gateway keys.
pub const GATEWAY_KEY_PREFIX: &str = "gk_";
/// Prefix of consumer API keys.
pub const CONSUMER_KEY_PREFIX: &str = "ck_";
