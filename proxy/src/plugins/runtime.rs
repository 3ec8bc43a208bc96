//! Calling a plugin: a fresh store and instance per call (from the pooling
//! allocator and the pre-linked component), an epoch deadline, the memory
//! cap. Whatever goes wrong — a loop past the deadline, growth past the cap,
//! a trap or panic, an exhausted pool — comes back as a [`PluginFailure`];
//! the store is dropped and the node carries on.

use std::sync::Arc;

use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::bindings::gatehouse::plugin::types::{
    PluginInfo, Request, RequestAction, Response, ResponseAction,
};
use super::bindings::{Plugin, PluginPre};
use super::engine::{EPOCH_TICK, EngineSettings, Ticker};
use super::host::{HostState, SharedState};
use crate::keys::KeyIndex;

/// Epoch ticks in `duration` (at least one).
fn ticks(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros() / EPOCH_TICK.as_micros().max(1))
        .unwrap_or(u64::MAX)
        .max(1)
}

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

/// What one call may see: its tenant, its route config, the consumers,
/// shared state.
#[derive(Clone, Default)]
pub struct CallContext {
    pub tenant: Arc<str>,
    /// The plugin's config on this route, JSON (empty: `{}`).
    pub config_json: Arc<str>,
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
        let state = HostState::new(ctx.clone(), self.name.clone(), self.settings.max_memory);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        // The deadline is on the plugin's own time: host I/O waits and the
        // thread being preempted do not count (see `HostState::time_left`).
        let deadline = self.settings.call_deadline;
        store.set_epoch_deadline(ticks(deadline));
        store.epoch_deadline_callback(move |mut store| {
            Ok(match store.data_mut().time_left(deadline) {
                Some(left) => UpdateDeadline::Continue(ticks(left)),
                None => UpdateDeadline::Interrupt,
            })
        });
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

    /// Instantiates the plugin in a fresh store for `ctx`.
    async fn instance(
        &self,
        ctx: &CallContext,
    ) -> Result<(Plugin, Store<HostState>), PluginFailure> {
        let mut store = self.store(ctx);
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|err| PluginFailure::Unavailable(format!("{err:#}")))?;
        Ok((instance, store))
    }

    /// Calls `describe`.
    pub async fn describe(&self) -> Result<PluginInfo, PluginFailure> {
        let (plugin, mut store) = self.instance(&CallContext::default()).await?;
        let result = plugin.call_describe(&mut store).await;
        result.map_err(|err| self.failure(&store, &err))
    }

    /// Calls `on-request`.
    pub async fn on_request(
        &self,
        ctx: &CallContext,
        request: &Request,
    ) -> Result<RequestAction, PluginFailure> {
        let (plugin, mut store) = self.instance(ctx).await?;
        let result = plugin.call_on_request(&mut store, request).await;
        result.map_err(|err| self.failure(&store, &err))
    }

    /// Calls `on-response`.
    pub async fn on_response(
        &self,
        ctx: &CallContext,
        request: &Request,
        response: &Response,
    ) -> Result<ResponseAction, PluginFailure> {
        let (plugin, mut store) = self.instance(ctx).await?;
        let result = plugin.call_on_response(&mut store, request, response).await;
        result.map_err(|err| self.failure(&store, &err))
    }
}
