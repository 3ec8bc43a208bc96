//! The built-in plugins, compiled from `plugins/` by the build script and
//! embedded in the binary: `api-key-auth` runs on every route that requires
//! a key (it fails closed); `rate-limit` runs where a limit can apply (it
//! fails open: a broken limiter must not take the API down). Being ours and
//! stateless between calls, they keep their instances from call to call
//! (a failed call's instance is dropped); tenant plugins get a fresh one.

use std::sync::Arc;

use super::engine::{LoadError, PluginEngine};
use super::host::SharedState;
use super::runtime::LoadedPlugin;
use crate::ratelimit::RateLimiter;

/// The api-key-auth component.
pub const API_KEY_AUTH: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/api_key_auth.wasm"));

/// The rate-limit component.
pub const RATE_LIMIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rate_limit.wasm"));

/// The `testbed` plugin of `plugins/` (it behaves or misbehaves as its
/// config says), for tests and as a small complete example.
pub const TESTBED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/testbed.wasm"));

/// The Rust example plugins of `plugins/examples/` (for the tests that
/// upload them like a tenant would; not embedded in the node).
pub mod examples {
    /// Sets request and response headers from its config.
    pub const ADD_HEADER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/add_header.wasm"));
    /// Signs requests for the upstream with HMAC-SHA256.
    pub const HMAC_SIGN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hmac_sign.wasm"));
}

/// The built-ins of a node, loaded once at start.
#[derive(Debug)]
pub struct Builtins {
    pub api_key_auth: LoadedPlugin,
    pub rate_limit: LoadedPlugin,
    /// The rate limiter, counters and key-value the node's plugins share.
    pub shared: SharedState,
}

impl Builtins {
    /// Compiles the embedded built-ins with `engine`; rate limits are
    /// decided by `limiter`.
    pub fn load(engine: &PluginEngine, limiter: Arc<RateLimiter>) -> Result<Self, LoadError> {
        Ok(Self {
            api_key_auth: engine
                .load("api-key-auth", API_KEY_AUTH)?
                .reusing_instances(),
            rate_limit: engine.load("rate-limit", RATE_LIMIT)?.reusing_instances(),
            shared: SharedState::new(limiter),
        })
    }
}
