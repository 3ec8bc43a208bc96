//! Calling a plugin: a fresh store and instance per call for a tenant
//! plugin (from the pooling allocator and the pre-linked component; the
//! built-ins keep theirs between calls), an epoch deadline, the memory
//! cap. A call takes only the export it runs, by an index found and
//! typechecked at link. Whatever goes wrong — a loop past the deadline,
//! growth past the cap, a trap or panic, an exhausted pool — comes back as
//! a [`PluginFailure`]; the store is dropped and the node carries on.

use std::sync::{Arc, Mutex};

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, Instance, InstancePre, Lift, Lower,
};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use futures_util::FutureExt;

use super::bindings::gatehouse::plugin::types::{
    Hooks, LogEntry, PluginInfo, Request, RequestAction, Response, ResponseAction,
};
use super::breaker::{Hook, PluginBreakers};
use super::engine::EngineSettings;
use super::host::{self, HostState, SharedState};
use super::ticker::{EPOCH_TICK, Ticker};
use crate::compiled::CompiledConfig;
use crate::keys::KeyIndex;
use crate::telemetry::{RequestOutcome, ShippedLog};

/// What went wrong first, then where: the root cause and the innermost
/// frames of the guest backtrace, at most 500 characters.
fn trap_message(err: &wasmtime::Error) -> String {
    let cause = err.root_cause().to_string();
    let frames = format!("{err:#}");
    let mut message = cause.clone();
    for line in frames
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .take(3)
    {
        message.push_str(" | ");
        message.push_str(line.trim());
    }
    if message == cause && frames != cause {
        message = frames;
    }
    message.chars().take(500).collect()
}

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
    #[error("the plugin's circuit is open after repeated failures")]
    CircuitOpen,
    #[error("the plugin returned an invalid answer: {0}")]
    InvalidOutput(String),
    /// The node cannot load the component (it does not compile or link).
    #[error("this node cannot load the plugin: {0}")]
    Refused(String),
}

impl PluginFailure {
    /// A short machine-readable reason, for metrics and error events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::OutOfMemory(_) => "out_of_memory",
            Self::Trap(_) => "trap",
            Self::Unavailable(_) => "unavailable",
            Self::CircuitOpen => "circuit_open",
            Self::InvalidOutput(_) => "invalid_output",
            Self::Refused(_) => "refused",
        }
    }

    /// What the failure says of the plugin, for its circuit breaker.
    fn verdict(&self) -> Option<bool> {
        match self {
            Self::Timeout(_) | Self::OutOfMemory(_) | Self::Trap(_) | Self::InvalidOutput(_) => {
                Some(false)
            }
            Self::Unavailable(_) | Self::CircuitOpen | Self::Refused(_) => None,
        }
    }
}

/// What one call may see: its tenant, its route config, the consumers,
/// shared state.
#[derive(Clone, Default)]
pub struct CallContext {
    pub tenant: Arc<str>,
    /// The request the call is for (empty outside a request), which the
    /// plugin's log lines are tagged with.
    pub request_id: Arc<str>,
    /// The plugin's config on this route, JSON (empty: `{}`).
    pub config_json: Arc<str>,
    /// The tenant's plugin the call is for, by name: whose store, rate
    /// buckets and log lines they are (two plugins may share a component's
    /// bytes, and the node loads those once). Empty: the loaded
    /// component's own name (the built-ins, `describe`).
    pub plugin: Arc<str>,
    pub keys: Option<Arc<KeyIndex>>,
    pub shared: SharedState,
}

impl std::fmt::Debug for CallContext {
    // The plugin's config may hold secrets (an HMAC key): never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("tenant", &self.tenant)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl CallContext {
    /// The context of `config`'s tenant: its id and consumers, and the
    /// node's shared state; no plugin config yet.
    pub fn for_tenant(config: &CompiledConfig, shared: &SharedState) -> Self {
        Self {
            tenant: Arc::clone(&config.tenant_id),
            request_id: Arc::default(),
            config_json: Arc::from(""),
            plugin: Arc::default(),
            keys: Some(Arc::clone(&config.keys)),
            shared: shared.clone(),
        }
    }

    /// This context, for the request `request_id`.
    pub fn for_request(self, request_id: &str) -> Self {
        Self {
            request_id: Arc::from(request_id),
            ..self
        }
    }

    /// This context, with `config_json` as the plugin's config.
    pub fn with_config(&self, config_json: Arc<str>) -> Self {
        Self {
            config_json,
            ..self.clone()
        }
    }

    /// This context, for the tenant's plugin `name` with `config_json` as
    /// its config on the route.
    pub fn for_plugin(&self, name: &Arc<str>, config_json: Arc<str>) -> Self {
        Self {
            config_json,
            plugin: Arc::clone(name),
            ..self.clone()
        }
    }
}

/// A compiled, linked plugin, ready to be instantiated per call.
pub struct LoadedPlugin {
    name: String,
    /// One of the node's built-ins (see `HostState::bucket`).
    builtin: bool,
    hooks: Hooks,
    breakers: PluginBreakers,
    pre: InstancePre<HostState>,
    exports: Exports,
    engine: Engine,
    settings: EngineSettings,
    /// Kept up while a call of the plugin runs (its deadline needs it).
    ticker: Arc<Ticker>,
    /// Instances kept between calls, for the built-ins only (`None`: a
    /// fresh instance per call, as every tenant plugin gets).
    idle: Option<Mutex<Vec<Kept>>>,
}

/// An instance kept for another call, with its store.
type Kept = (Instance, Store<HostState>);

/// One export of the plugin world: its name and the types it is called
/// with, which [`Exports::of`] checks the component's export against at
/// link and [`call`] calls it with.
trait Export {
    const NAME: &'static str;
    type Params<'a>: ComponentNamedList + Lower + Send + Sync;
    type Results: ComponentNamedList + Lift + Send + Sync + 'static;
    fn index(exports: &Exports) -> &ComponentExportIndex;
}

struct Describe;
struct OnRequest;
struct OnResponse;
struct OnLog;

impl Export for Describe {
    const NAME: &'static str = "describe";
    type Params<'a> = ();
    type Results = (PluginInfo,);
    fn index(exports: &Exports) -> &ComponentExportIndex {
        &exports.describe
    }
}

impl Export for OnRequest {
    const NAME: &'static str = "on-request";
    type Params<'a> = (&'a Request,);
    type Results = (RequestAction,);
    fn index(exports: &Exports) -> &ComponentExportIndex {
        &exports.on_request
    }
}

impl Export for OnResponse {
    const NAME: &'static str = "on-response";
    type Params<'a> = (&'a Request, &'a Response);
    type Results = (ResponseAction,);
    fn index(exports: &Exports) -> &ComponentExportIndex {
        &exports.on_response
    }
}

impl Export for OnLog {
    const NAME: &'static str = "on-log";
    type Params<'a> = (&'a LogEntry,);
    type Results = ();
    fn index(exports: &Exports) -> &ComponentExportIndex {
        &exports.on_log
    }
}

/// Where the plugin world's exports are in a component, found and
/// typechecked at link, so that a component of another shape is refused
/// when it loads. A call then takes the one it runs from its instance by
/// index, without looking names up.
#[derive(Debug)]
pub(super) struct Exports {
    describe: ComponentExportIndex,
    on_request: ComponentExportIndex,
    on_response: ComponentExportIndex,
    on_log: ComponentExportIndex,
}

impl Exports {
    /// The exports of `pre`'s component, each checked to be a function of
    /// its [`Export`] types (the check bindgen's generated `PluginPre::new`
    /// makes, with the same wasmtime calls, which are `#[doc(hidden)]`:
    /// recheck them on a wasmtime upgrade).
    pub(super) fn of(pre: &InstancePre<HostState>) -> wasmtime::Result<Self> {
        Ok(Self {
            describe: Self::checked::<Describe>(pre)?,
            on_request: Self::checked::<OnRequest>(pre)?,
            on_response: Self::checked::<OnResponse>(pre)?,
            on_log: Self::checked::<OnLog>(pre)?,
        })
    }

    fn checked<E: Export>(pre: &InstancePre<HostState>) -> wasmtime::Result<ComponentExportIndex> {
        let name = E::NAME;
        let (item, index) = pre
            .component()
            .get_export(None, name)
            .ok_or_else(|| wasmtime::format_err!("no export `{name}` found"))?;
        match item {
            ComponentItem::ComponentFunc(func) => func
                .typecheck::<E::Params<'static>, E::Results>(&pre.instance_type())
                .map_err(|err| err.context(format!("type-checking export func `{name}`")))?,
            _ => wasmtime::bail!("export `{name}` is not a function"),
        }
        Ok(index)
    }
}

/// Calls the export `E` of `instance` with `params`. Taking it typed checks
/// its type again, at a cost within the noise of the load bench's
/// instruction counts (skipping it with `TypedFunc::new_unchecked` was
/// measured: not worth an `unsafe`).
async fn call<E: Export>(
    instance: &Instance,
    store: &mut Store<HostState>,
    exports: &Exports,
    params: E::Params<'_>,
) -> wasmtime::Result<E::Results> {
    let func =
        instance.get_typed_func::<E::Params<'_>, E::Results>(&mut *store, E::index(exports))?;
    func.call_async(store, params).await
}

/// Idle instances a built-in keeps at most.
const MAX_IDLE: usize = 16;

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
        builtin: bool,
        pre: InstancePre<HostState>,
        exports: Exports,
        engine: Engine,
        settings: EngineSettings,
        ticker: Arc<Ticker>,
    ) -> Self {
        Self {
            name,
            builtin,
            hooks: Hooks::all(),
            breakers: PluginBreakers::new(settings.breaker),
            pre,
            exports,
            engine,
            settings,
            ticker,
            idle: None,
        }
    }

    /// Keeps instances between calls instead of instantiating per call:
    /// for the built-ins, which are ours and keep nothing between calls. An
    /// instance whose call failed is dropped, never reused.
    pub(super) fn reusing_instances(mut self) -> Self {
        self.idle = Some(Mutex::new(Vec::new()));
        self
    }

    /// Asks the plugin which hooks it implements (at load, off the hot
    /// path); the others are never called.
    pub(super) fn with_described_hooks(mut self) -> Result<Self, PluginFailure> {
        let info = self
            .describe()
            .now_or_never()
            .ok_or_else(|| PluginFailure::Trap("describe waited on I/O".to_owned()))??;
        self.hooks = info.hooks;
        Ok(self)
    }

    /// Whether the plugin implements `hook`.
    pub fn implements(&self, hook: Hooks) -> bool {
        self.hooks.contains(hook)
    }

    /// Whether the circuit breaker of `hook` of the plugin `plugin` (a
    /// tenant plugin's name; empty: the component's own calls) is refusing
    /// calls.
    pub fn circuit_open(&self, plugin: &str, hook: Hook) -> bool {
        self.breakers.of(&Arc::from(plugin)).of(hook).is_open()
    }

    /// The plugin's name as loaded.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn store(&self, ctx: &CallContext) -> Store<HostState> {
        let state = HostState::new(
            ctx.clone(),
            self.name.clone(),
            self.builtin,
            self.settings.max_memory,
        );
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
            PluginFailure::Trap(trap_message(err))
        }
    }

    /// Instantiates the plugin in a fresh store for `ctx`.
    async fn instance(&self, ctx: &CallContext) -> Result<Kept, PluginFailure> {
        if let Some(idle) = &self.idle {
            let reused = idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            if let Some((instance, mut store)) = reused {
                store.data_mut().begin_call(ctx.clone());
                store.set_epoch_deadline(ticks(self.settings.call_deadline));
                return Ok((instance, store));
            }
        }
        let mut store = self.store(ctx);
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|err| PluginFailure::Unavailable(format!("{err:#}")))?;
        Ok((instance, store))
    }

    /// The outcome of a call: a failure explained (its instance dropped),
    /// or the value, the instance kept when this plugin reuses them.
    fn finish<R>(
        &self,
        instance: Instance,
        store: Store<HostState>,
        result: wasmtime::Result<R>,
    ) -> Result<R, PluginFailure> {
        let value = result.map_err(|err| self.failure(&store, &err))?;
        if let Some(idle) = &self.idle {
            let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push((instance, store));
            }
        }
        Ok(value)
    }

    /// Calls `describe`.
    pub async fn describe(&self) -> Result<PluginInfo, PluginFailure> {
        let _running = self.ticker.call();
        let (instance, mut store) = self.instance(&CallContext::default()).await?;
        let result = call::<Describe>(&instance, &mut store, &self.exports, ()).await;
        result
            .map(|(info,)| info)
            .map_err(|err| self.failure(&store, &err))
    }

    /// Runs `call` of `hook` for the plugin `ctx` names unless its circuit
    /// is open, and tells its breaker how it went.
    async fn guarded<R>(
        &self,
        ctx: &CallContext,
        hook: Hook,
        call: impl Future<Output = Result<R, PluginFailure>>,
    ) -> Result<R, PluginFailure> {
        let breakers = self.breakers.of(&ctx.plugin);
        let admitted = breakers
            .of(hook)
            .call()
            .map_err(|_| PluginFailure::CircuitOpen)?;
        let running = self.ticker.call();
        let result = call.await;
        drop(running);
        admitted.finish(
            result
                .as_ref()
                .map_or_else(PluginFailure::verdict, |_| Some(true)),
        );
        result
    }

    /// Calls `on-request`.
    pub async fn on_request(
        &self,
        ctx: &CallContext,
        request: &Request,
    ) -> Result<RequestAction, PluginFailure> {
        self.on_request_checked(ctx, request, |_| Ok(())).await
    }

    /// Calls `on-request` and checks its answer with `check` as part of the
    /// call: an answer `check` refuses (`invalid_output`) counts against
    /// the plugin's breaker as a trap does.
    pub async fn on_request_checked(
        &self,
        ctx: &CallContext,
        request: &Request,
        check: impl FnOnce(&RequestAction) -> Result<(), PluginFailure>,
    ) -> Result<RequestAction, PluginFailure> {
        self.guarded(ctx, Hook::Request, async {
            let (instance, mut store) = self.instance(ctx).await?;
            let result = call::<OnRequest>(&instance, &mut store, &self.exports, (request,)).await;
            let (action,) = self.finish(instance, store, result)?;
            check(&action).map(|()| action)
        })
        .await
    }

    /// Calls `on-response`, its answer checked by `check` as
    /// [`LoadedPlugin::on_request_checked`] does.
    pub async fn on_response_checked(
        &self,
        ctx: &CallContext,
        request: &Request,
        response: &Response,
        check: impl FnOnce(&ResponseAction) -> Result<(), PluginFailure>,
    ) -> Result<ResponseAction, PluginFailure> {
        self.guarded(ctx, Hook::Response, async {
            let (instance, mut store) = self.instance(ctx).await?;
            let params = (request, response);
            let result = call::<OnResponse>(&instance, &mut store, &self.exports, params).await;
            let (action,) = self.finish(instance, store, result)?;
            check(&action).map(|()| action)
        })
        .await
    }

    /// Calls `on-log` of the request log with `records` as the batch of
    /// finished requests; returns the logs it shipped. `records` is emptied
    /// when the call succeeds (what was shipped as measured moves into the
    /// answer) and left as it was when it fails.
    pub async fn log_requests(
        &self,
        ctx: &CallContext,
        records: &mut Vec<Box<RequestOutcome>>,
    ) -> Result<Vec<ShippedLog>, PluginFailure> {
        // The batch is in `finished`; the entry of a single request is empty.
        let entry = LogEntry {
            request_id: String::new(),
            method: String::new(),
            path: String::new(),
            route_id: None,
            consumer_id: None,
            status: 0,
            latency_ms: 0.0,
        };
        self.guarded(ctx, Hook::Log, async {
            let (instance, mut store) = self.instance(ctx).await?;
            store.data_mut().finished = std::mem::take(records);
            let result = call::<OnLog>(&instance, &mut store, &self.exports, (&entry,)).await;
            *records = std::mem::take(&mut store.data_mut().finished);
            let shipped = std::mem::take(&mut store.data_mut().shipped);
            self.finish(instance, store, result.map(|()| shipped))
                .and_then(|shipped| host::shipped_records(shipped, records))
        })
        .await
    }

    /// Calls `on-log`.
    pub async fn on_log(&self, ctx: &CallContext, entry: &LogEntry) -> Result<(), PluginFailure> {
        self.guarded(ctx, Hook::Log, async {
            let (instance, mut store) = self.instance(ctx).await?;
            let result = call::<OnLog>(&instance, &mut store, &self.exports, (entry,)).await;
            self.finish(instance, store, result)
        })
        .await
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A component with the world's export names, each a function of no
    /// arguments and no result.
    pub(in crate::plugins) const MISTYPED_EXPORTS: &str = r#"(component
        (core module $m (func (export "f")))
        (core instance $i (instantiate $m))
        (func $f (canon lift (core func $i "f")))
        (export "describe" (func $f))
        (export "on-request" (func $f))
        (export "on-response" (func $f))
        (export "on-log" (func $f)))"#;

    #[test]
    fn each_export_is_checked_against_its_own_types() {
        let mistyped = wat::parse_str(MISTYPED_EXPORTS).expect("a component");
        let engine = Engine::default();
        let component = wasmtime::component::Component::new(&engine, mistyped).expect("compiles");
        let pre = wasmtime::component::Linker::<HostState>::new(&engine)
            .instantiate_pre(&component)
            .expect("links: it imports nothing");
        let refused = |result: wasmtime::Result<ComponentExportIndex>| {
            format!("{:#}", result.expect_err("a mistyped export"))
        };
        for (name, message) in [
            ("describe", refused(Exports::checked::<Describe>(&pre))),
            ("on-request", refused(Exports::checked::<OnRequest>(&pre))),
            ("on-response", refused(Exports::checked::<OnResponse>(&pre))),
            ("on-log", refused(Exports::checked::<OnLog>(&pre))),
        ] {
            assert!(
                message.contains(&format!("type-checking export func `{name}`")),
                "{name}: {message}"
            );
        }
    }
}
