//! The built-in plugins, compiled from `plugins/` by the build script and
//! embedded in the binary: `api-key-auth` runs on every route that requires
//! a key (it fails closed); `rate-limit` runs where a limit can apply (it
//! fails open: a broken limiter must not take the API down); `request-log`
//! writes every request's log record when the node ships request logs (it
//! fails open: the node then ships the record it measured). Being ours and
//! stateless between calls, they keep their instances from call to call
//! (a failed call's instance is dropped); tenant plugins get a fresh one.

use std::sync::Arc;

use super::engine::{LoadError, PluginEngine};
use super::host::SharedState;
use super::runtime::{CallContext, LoadedPlugin};
use crate::ratelimit::RateLimiter;

/// The api-key-auth component.
pub const API_KEY_AUTH: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/api_key_auth.wasm"));

/// The rate-limit component.
pub const RATE_LIMIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rate_limit.wasm"));

/// The request-log component (built against the `builtin` world).
pub const REQUEST_LOG: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/request_log.wasm"));

/// The `testbed` plugin of `plugins/` (it behaves or misbehaves as its
/// config says), for tests and as a small complete example.
pub const TESTBED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/testbed.wasm"));

/// The `testbed-0-1` plugin of `plugins/`, built against the package's
/// 0.1.0 release (`wit/0.1.0/`), for the tests that show such components
/// keep working.
pub const TESTBED_0_1: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/testbed_0_1.wasm"));

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
    /// The request log, when the node ships request logs.
    pub request_log: Option<Arc<LoadedPlugin>>,
    /// The rate limiter the node's plugins share, and each plugin's store.
    pub shared: SharedState,
    /// What the request log's calls see (it reads nothing of the tenant's:
    /// the record is handed to it).
    pub log_context: CallContext,
}

impl Builtins {
    /// Compiles the embedded built-ins with `engine`; rate limits are
    /// decided by `limiter`; the request log runs when `request_logs`.
    pub fn load(
        engine: &PluginEngine,
        limiter: Arc<RateLimiter>,
        request_logs: bool,
    ) -> Result<Self, LoadError> {
        let shared = SharedState::new(limiter);
        let load = |name, bytes| {
            engine
                .load_builtin(name, bytes)
                .map(LoadedPlugin::reusing_instances)
        };
        Ok(Self {
            api_key_auth: load("api-key-auth", API_KEY_AUTH)?,
            rate_limit: load("rate-limit", RATE_LIMIT)?,
            request_log: request_logs
                .then(|| load("request-log", REQUEST_LOG).map(Arc::new))
                .transpose()?,
            log_context: CallContext {
                shared: shared.clone(),
                ..CallContext::default()
            },
            shared,
        })
    }
}
