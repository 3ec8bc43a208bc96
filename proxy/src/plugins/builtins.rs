//! The built-in plugins, compiled from `plugins/` by the build script and
//! embedded in the binary: `api-key-auth` runs on every route that requires
//! a key (it fails closed).

use super::engine::{LoadError, PluginEngine};
use super::host::SharedState;
use super::runtime::LoadedPlugin;

/// The api-key-auth component.
pub const API_KEY_AUTH: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/api_key_auth.wasm"));

/// The `testbed` plugin of `plugins/` (it behaves or misbehaves as its
/// config says), for tests and as a small complete example.
pub const TESTBED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/testbed.wasm"));

/// The built-ins of a node, loaded once at start.
#[derive(Debug)]
pub struct Builtins {
    pub api_key_auth: LoadedPlugin,
    /// Counters and key-value the node's plugins share.
    pub shared: SharedState,
}

impl Builtins {
    /// Compiles the embedded built-ins with `engine`.
    pub fn load(engine: &PluginEngine) -> Result<Self, LoadError> {
        Ok(Self {
            api_key_auth: engine.load("api-key-auth", API_KEY_AUTH)?,
            shared: SharedState::default(),
        })
    }
}
