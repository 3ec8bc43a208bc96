//! One wasmtime engine per node: the component model, a pooling allocator
//! (instances recycled, memory kept resident, so a fresh instance per call
//! costs microseconds), epoch interruption driven by a ticker thread
//! (`ticker`), and the linker with Gatehouse's host interfaces and an empty
//! WASI context.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::artifacts::ArtifactCache;
use super::bindings::Plugin;
use super::breaker::BreakerSettings;
use super::host::HostState;
use super::runtime::{Exports, LoadedPlugin};
use super::ticker::Ticker;

/// Bytes of a linear memory rewritten in place when its instance goes,
/// instead of being given back to the kernel. With Linux's PAGEMAP_SCAN
/// (6.7 and later) only the pages a call wrote are rewritten: 1 MiB is all
/// a small plugin writes (a Rust one writes tens of KiB) and part of what a
/// JavaScript or Python runtime writes. Without it the lowest addresses are
/// rewritten whether written or not (for a Rust guest, the far end of its
/// stack, which it rarely touches), so the budget stays small.
fn memory_keep_resident() -> usize {
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        1 << 20
    } else {
        128 << 10
    }
}

/// Limits every plugin call runs under.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Wall-clock budget of one hook call.
    pub call_deadline: Duration,
    /// Largest linear memory a plugin may grow to, in bytes.
    pub max_memory: usize,
    /// Plugin instances that may exist at once (calls in flight).
    pub max_instances: u32,
    /// When a failing plugin's circuit opens.
    pub breaker: BreakerSettings,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            call_deadline: Duration::from_millis(10),
            max_memory: 16 << 20,
            max_instances: 256,
            breaker: BreakerSettings::default(),
        }
    }
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid component: {0}")]
    Compile(String),
    #[error("does not fit the gatehouse:plugin world: {0}")]
    World(String),
    /// Its `describe` failed at load (a trap, the deadline, no free
    /// instance): it may load another time.
    #[error("describe failed: {0}")]
    Describe(String),
}

impl LoadError {
    /// Whether loading the same bytes again would fail the same way.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Compile(_) | Self::World(_))
    }
}

/// The node's wasmtime engine and linkers.
pub struct PluginEngine {
    engine: Engine,
    /// The plugin world and WASI: what tenant plugins may import.
    linker: Linker<HostState>,
    /// The built-ins' world: the plugin world, WASI and the request log.
    builtin_linker: Linker<HostState>,
    settings: EngineSettings,
    ticker: Arc<Ticker>,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(settings: EngineSettings) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(settings.max_instances)
            .total_core_instances(settings.max_instances * 4)
            .total_memories(settings.max_instances * 2)
            .total_tables(settings.max_instances * 4)
            .max_memory_size(settings.max_memory)
            .total_stacks(settings.max_instances)
            // The pages a call wrote are rewritten (zeroed, or copied from
            // the component's data) when its instance goes, up to the
            // budget below, and stay mapped: the next call in the slot
            // takes no page faults for them; the rest are given back.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(memory_keep_resident())
            .async_stack_keep_resident(128 << 10)
            .table_keep_resident(128 << 10);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(256 << 10)
            // Calls run on fibers (async): the wasm stack plus room for
            // the host functions the plugin calls.
            .async_stack_size(1 << 20)
            .memory_reservation(
                u64::try_from(settings.max_memory)
                    .unwrap_or(u64::MAX)
                    .max(1 << 20),
            )
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        // An empty WASI context (see `host::Wasi`): language runtimes (Python,
        // JavaScript) read the environment and clocks as they start.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        let mut builtin_linker = linker.clone();
        Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut builtin_linker, |s| s)?;
        // The plugin world's host interfaces, of each release nodes link.
        macro_rules! link {
            ($($interface:ident),+) => {
                $($interface::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;)+
            };
        }
        {
            use super::bindings::gatehouse::plugin::{config, consumers, counters, kv, log, types};
            link!(types, log, config, consumers, counters, kv);
        }
        {
            // 0.1.0's, for components built against it (their exports are
            // typed as 0.2.0's).
            use super::bindings_v0_1::gatehouse::plugin::{
                config, consumers, counters, kv, log, types,
            };
            link!(types, log, config, consumers, counters, kv);
        }

        let ticker = Arc::new(Ticker::start(engine.clone())?);
        Ok(Self {
            engine,
            linker,
            builtin_linker,
            settings,
            ticker,
        })
    }

    /// The limits calls run under.
    pub fn settings(&self) -> EngineSettings {
        self.settings
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether the epoch ticker is parked (no call for a while).
    #[cfg(test)]
    pub(crate) fn ticker_parked(&self) -> bool {
        self.ticker.is_parked()
    }

    /// Compiles a component and links it against the plugin world. Slow
    /// (milliseconds to seconds): never on the hot path.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
        self.link(&self.linker, name, false, self.compile(bytes)?)
    }

    /// [`PluginEngine::load`] for one of the node's own built-ins, linked
    /// against the `builtin` world (which adds the request log).
    pub fn load_builtin(&self, name: &str, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
        self.link(&self.builtin_linker, name, true, self.compile(bytes)?)
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        Component::new(&self.engine, bytes).map_err(|err| LoadError::Compile(format!("{err:#}")))
    }

    /// [`PluginEngine::load`], reading the compiled component from `cache`
    /// when it holds one for `sha256` (and filling it otherwise).
    pub fn load_cached(
        &self,
        name: &str,
        sha256: &str,
        bytes: &[u8],
        cache: &ArtifactCache,
    ) -> Result<LoadedPlugin, LoadError> {
        let component = cache
            .component(&self.engine, sha256, bytes)
            .map_err(|err| LoadError::Compile(format!("{err:#}")))?;
        self.link(&self.linker, name, false, component)
    }

    fn link(
        &self,
        linker: &Linker<HostState>,
        name: &str,
        builtin: bool,
        component: Component,
    ) -> Result<LoadedPlugin, LoadError> {
        // Imports must be the plugin world's or WASI p2's (any 0.2.x: the
        // linker matches semver-compatible versions); anything else is
        // refused here, as the control plane refuses it at upload.
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|err| LoadError::World(format!("{err:#}")))?;
        // The exports must be the world's, with its types.
        let exports = Exports::of(&pre).map_err(|err| LoadError::World(format!("{err:#}")))?;
        LoadedPlugin::new(
            name.to_owned(),
            builtin,
            pre,
            exports,
            self.engine.clone(),
            self.settings,
            Arc::clone(&self.ticker),
        )
        .with_described_hooks()
        .map_err(|err| LoadError::Describe(err.to_string()))
    }
}
