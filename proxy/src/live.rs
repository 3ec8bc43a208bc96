//! The config the hot path reads: an `ArcSwap` holding the compiled config
//! of the newest version. A request loads it once (lock-free) and keeps the
//! `Arc` for its whole life; sync swaps in a new one without waiting for
//! requests in flight.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use gatehouse_protocol::ConfigIdentity;

use crate::compiled::CompiledConfig;

/// Shared handle on the current compiled config (none before the first
/// snapshot arrives or is read from disk).
#[derive(Debug, Clone, Default)]
pub struct LiveConfig {
    current: Arc<ArcSwapOption<CompiledConfig>>,
}

impl LiveConfig {
    /// The config to serve this request with.
    pub fn load(&self) -> Option<Arc<CompiledConfig>> {
        self.current.load_full()
    }

    /// The version being served, if any.
    pub fn version(&self) -> Option<i64> {
        self.current.load().as_ref().map(|c| c.version)
    }

    /// Which config is being served, if any.
    pub fn identity(&self) -> Option<ConfigIdentity> {
        self.current.load().as_ref().map(|c| c.identity())
    }

    /// Serves `config` from now on; returns it as served.
    pub fn install(&self, config: CompiledConfig) -> Arc<CompiledConfig> {
        let config = Arc::new(config);
        self.current.store(Some(Arc::clone(&config)));
        config
    }
}
