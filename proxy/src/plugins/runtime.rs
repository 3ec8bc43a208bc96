//! Calling a plugin: a fresh store and instance per call (from the pooling
//! allocator and the pre-linked component), an epoch deadline, the memory
//! cap. Whatever goes wrong — a loop past the deadline, growth past the cap,
//! a trap or panic, an exhausted pool — comes back as a [`PluginFailure`];
//! the store is dropped and the node carries on.

use std::sync::Arc;

use wasmtime::{Engine, Store, Trap};

use super::bindings::gatehouse::plugin::types::{
    PluginInfo, Request, RequestAction, Response, ResponseAction,
};
use super::bindings::{Plugin, PluginPre};
use super::engine::{EPOCH_TICK, EngineSettings, Ticker};
use super::host::{HostState, SharedState};
use crate::keys::KeyIndex;

/// How a call went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFailure {
    #[error("the plugin ran past its {0} ms deadline")]
    Timeout(u128),
    #[error("the plugin tried to use more than {0} bytes of memory")]
    OutOfMemory(usize),
    #[error("the plugin trapped: {0}")]
    Trap(String),
    #[error("no plugin instance available: {0}")]
    Unavailable(String),
}

impl PluginFailure {
    /// A short machine-readable reason, for metrics and error events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::OutOfMemory(_) => "out_of_memory",
            Self::Trap(_) => "trap",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

/// What one call may see: its route config, the consumers, shared state.
#[derive(Clone, Default)]
pub struct CallContext {
    pub config_json: String,
    pub keys: Option<Arc<KeyIndex>>,
    pub shared: SharedState,
}

/// A compiled, linked plugin, ready to be instantiated per call.
pub struct LoadedPlugin {
    name: String,
    pre: PluginPre<HostState>,
    engine: Engine,
    settings: EngineSettings,
    _ticker: Arc<Ticker>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    pub(super) fn new(
        name: String,
        pre: PluginPre<HostState>,
        engine: Engine,
        settings: EngineSettings,
        ticker: Arc<Ticker>,
    ) -> Self {
        Self {
            name,
            pre,
            engine,
            settings,
            _ticker: ticker,
        }
    }

    /// The plugin's name as loaded.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn store(&self, ctx: &CallContext) -> Store<HostState> {
        let state = HostState::new(
            self.name.clone(),
            if ctx.config_json.is_empty() {
                "{}".to_owned()
            } else {
                ctx.config_json.clone()
            },
            ctx.keys.clone(),
            ctx.shared.clone(),
            self.settings.max_memory,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        let ticks =
            (self.settings.call_deadline.as_micros() / EPOCH_TICK.as_micros().max(1)).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        store
    }

    fn failure(&self, store: &Store<HostState>, err: &wasmtime::Error) -> PluginFailure {
        if store.data().limits.refused {
            PluginFailure::OutOfMemory(self.settings.max_memory)
        } else if matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            PluginFailure::Timeout(self.settings.call_deadline.as_millis())
        } else {
            PluginFailure::Trap(format!("{err:#}").chars().take(500).collect())
        }
    }

    /// Instantiates the plugin in a fresh store for `ctx` and runs `call`
    /// on it; every way it can fail becomes a [`PluginFailure`].
    fn call<R>(
        &self,
        ctx: &CallContext,
        call: impl FnOnce(&Plugin, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginFailure> {
        let mut store = self.store(ctx);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|err| PluginFailure::Unavailable(format!("{err:#}")))?;
        call(&instance, &mut store).map_err(|err| self.failure(&store, &err))
    }

    /// Calls `describe`.
    pub fn describe(&self) -> Result<PluginInfo, PluginFailure> {
        self.call(&CallContext::default(), |plugin, store| {
            plugin.call_describe(store)
        })
    }

    /// Calls `on-request`.
    pub fn on_request(
        &self,
        ctx: &CallContext,
        request: &Request,
    ) -> Result<RequestAction, PluginFailure> {
        self.call(ctx, |plugin, store| plugin.call_on_request(store, request))
    }

    /// Calls `on-response`.
    pub fn on_response(
        &self,
        ctx: &CallContext,
        request: &Request,
        response: &Response,
    ) -> Result<ResponseAction, PluginFailure> {
        self.call(ctx, |plugin, store| {
            plugin.call_on_response(store, request, response)
        })
    }
}
