//! What a plugin may call, and the limits of its store. This module holds a
//! call's store data ([`HostState`]: its deadline on the plugin's own time,
//! and a memory limiter that remembers when it refused growth, so the
//! failure reads "out of memory", not just "trap") and the state all calls
//! share; each host interface of the world has a module of its own:
//! `log`, `config`, `consumers` (lookup by key or id), `counters` (and
//! rate-limit checks through the node's [`RateLimiter`]: local, or
//! fleet-wide through Redis), `kv`, `request_logs` (the `request-log`
//! built-in's batch and what it ships), and `wasi` (the empty WASI
//! context). `store` keeps each plugin's own counters and key-value
//! entries (node-local and tenant-scoped: one node serves one tenant), and
//! `v0_1` serves components built against the package's 0.1.0 release.

mod config;
mod consumers;
mod counters;
mod kv;
mod log;
mod request_logs;
pub mod store;
mod v0_1;
mod wasi;

pub use log::{MAX_LOG_LINES, MAX_LOG_MESSAGE};
pub(super) use request_logs::shipped_records;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;

use super::bindings::gatehouse::plugin::request_logs::Shipped;
use super::bindings::gatehouse::plugin::types;
use super::runtime::CallContext;
use crate::ratelimit::RateLimiter;
use crate::telemetry::RequestOutcome;
use store::PluginStore;
use wasi::Wasi;

/// State shared by every call of a node's plugins: the rate limiter, and
/// each plugin's own store (by plugin name).
#[derive(Debug, Default, Clone)]
pub struct SharedState {
    limiter: Arc<RateLimiter>,
    stores: Arc<Mutex<HashMap<Arc<str>, SharedStore>>>,
}

/// One plugin's store, as its calls share it.
type SharedStore = Arc<Mutex<PluginStore>>;

impl SharedState {
    /// Shared state deciding rate limits with `limiter`.
    pub fn new(limiter: Arc<RateLimiter>) -> Self {
        Self {
            limiter,
            ..Self::default()
        }
    }

    /// The store of the plugin named `plugin`, made on first use.
    fn store_of(&self, plugin: &str) -> SharedStore {
        let mut stores = lock(&self.stores);
        if let Some(store) = stores.get(plugin) {
            return Arc::clone(store);
        }
        let store = Arc::new(Mutex::new(PluginStore::default()));
        stores.insert(Arc::from(plugin), Arc::clone(&store));
        store
    }
}

/// One call's store data.
pub struct HostState {
    pub(super) limits: MemoryCap,
    /// The loaded component's name (see `owner`).
    plugin: String,
    /// Whether the plugin is one of the node's built-ins, whose rate buckets
    /// are not prefixed with a plugin name.
    builtin: bool,
    ctx: CallContext,
    /// The plugin's store, looked up on its first use in the call.
    store: Option<SharedStore>,
    started: Instant,
    /// Time spent waiting on host I/O (Redis), which is not the plugin's.
    host_wait: Duration,
    /// This thread's CPU time when the wall-clock deadline first ran out.
    cpu_mark: Option<Duration>,
    /// Lines written to the node's log in this call.
    log_lines: u32,
    /// The empty WASI context, built on a plugin's first WASI call.
    wasi: Option<Box<Wasi>>,
    /// The requests being logged (an `on-log` call of the request log).
    #[expect(
        clippy::vec_box,
        reason = "boxed by the hot path: unboxing copies each request"
    )]
    pub(super) finished: Vec<Box<RequestOutcome>>,
    /// What the request log shipped during the call.
    pub(super) shipped: Vec<Shipped>,
}

impl HostState {
    pub fn new(ctx: CallContext, plugin: String, builtin: bool, max_memory: usize) -> Self {
        Self {
            limits: MemoryCap {
                max: max_memory,
                refused: false,
            },
            plugin,
            builtin,
            ctx,
            store: None,
            started: Instant::now(),
            host_wait: Duration::ZERO,
            cpu_mark: None,
            log_lines: 0,
            wasi: None,
            finished: Vec::new(),
            shipped: Vec::new(),
        }
    }

    /// Readies a kept instance's state for another call: everything as a
    /// fresh store's, the plugin and its memory cap kept.
    pub fn begin_call(&mut self, ctx: CallContext) {
        let plugin = std::mem::take(&mut self.plugin);
        *self = Self::new(ctx, plugin, self.builtin, self.limits.max);
    }

    /// Whose the call is, by name: the tenant's plugin the call's context
    /// names, or (the built-ins, `describe`) the loaded component. Its
    /// store, rate buckets and log lines are that plugin's.
    fn owner(&self) -> &str {
        owner(&self.ctx, &self.plugin)
    }

    /// The plugin's own store.
    fn store(&mut self) -> std::sync::MutexGuard<'_, PluginStore> {
        let (ctx, plugin) = (&self.ctx, &self.plugin);
        lock(
            self.store
                .get_or_insert_with(|| ctx.shared.store_of(owner(ctx, plugin))),
        )
    }

    /// The node-wide rate bucket of the plugin's bucket `key`: a tenant
    /// plugin's own (`plugin:<name>:<key>`, a prefix the built-ins' keys
    /// never start with), a built-in's as it names it.
    fn bucket(&self, key: &str) -> String {
        if self.builtin {
            key.to_owned()
        } else {
            format!("plugin:{}:{key}", self.owner())
        }
    }

    /// What to do when the epoch deadline of a call with `deadline` runs
    /// out. First, wall-clock time less the host's I/O waits must reach the
    /// deadline; then — so that a busy machine preempting the thread never
    /// cuts a well-behaved plugin — the thread must also have spent the
    /// deadline in CPU time since. A plugin spinning on an idle machine is
    /// cut after about twice the deadline. Returns the time left, or `None`
    /// to interrupt.
    pub fn time_left(&mut self, deadline: Duration) -> Option<Duration> {
        let spent = self.started.elapsed().saturating_sub(self.host_wait);
        if let Some(left) = deadline.checked_sub(spent).filter(|l| !l.is_zero()) {
            return Some(left);
        }
        let cpu = thread_cpu_time();
        let mark = *self.cpu_mark.get_or_insert(cpu);
        deadline
            .checked_sub(cpu.saturating_sub(mark))
            .filter(|l| !l.is_zero())
    }
}

/// [`HostState::owner`] of a call in `ctx` of the component `plugin`.
fn owner<'a>(ctx: &'a CallContext, plugin: &'a str) -> &'a str {
    if ctx.plugin.is_empty() {
        plugin
    } else {
        &ctx.plugin
    }
}

/// CPU time this thread has used.
fn thread_cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// Caps linear memory; remembers a refusal.
pub struct MemoryCap {
    max: usize,
    pub(super) refused: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl types::Host for HostState {}

#[cfg(test)]
/// A call's state on `shared`, for the interfaces' tests.
fn test_state(shared: &SharedState) -> HostState {
    let ctx = CallContext {
        shared: shared.clone(),
        ..CallContext::default()
    };
    HostState::new(ctx, "t".into(), false, 1 << 20)
}
