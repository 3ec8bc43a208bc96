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

pub use counters::MAX_RATE_CHECKS;
pub use log::{MAX_LOG_LINES, MAX_LOG_MESSAGE};
pub(super) use request_logs::shipped_records;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_protocol::ConfigSnapshot;
use sha2::{Digest, Sha256};
use wasmtime::ResourceLimiter;

use super::bindings::gatehouse::plugin::request_logs::Shipped;
use super::bindings::gatehouse::plugin::types;
use super::runtime::CallContext;
use crate::ratelimit::RateLimiter;
use crate::telemetry::RequestOutcome;
use store::PluginStore;
use wasi::Wasi;

/// State shared by every call of a node's plugins: the rate limiter, and
/// each plugin's own store.
#[derive(Debug, Default, Clone)]
pub struct SharedState {
    limiter: Arc<RateLimiter>,
    stores: PluginStores,
}

/// The longest rate-bucket key kept as it is (see `HostState::bucket`).
pub const MAX_BUCKET_KEY: usize = 256;

impl SharedState {
    /// Shared state deciding rate limits with `limiter`.
    pub fn new(limiter: Arc<RateLimiter>) -> Self {
        Self {
            limiter,
            ..Self::default()
        }
    }

    /// The plugins' stores, which the node prunes as its config changes.
    pub fn stores(&self) -> PluginStores {
        self.stores.clone()
    }
}

/// Every plugin's store on the node, by plugin name. A store is made on
/// the plugin's first use of it and lasts while a route of the node's
/// config has a plugin of that name attached, so the node holds at most
/// one store's limits per attached plugin.
#[derive(Debug, Default, Clone)]
pub struct PluginStores(Arc<Mutex<Stores>>);

#[derive(Debug, Default)]
struct Stores {
    by_name: HashMap<Arc<str>, SharedStore>,
    /// The built-ins' stores, which no config prunes.
    builtins: HashMap<Arc<str>, SharedStore>,
    /// The plugins the node's config attaches (`None` until a config says).
    attached: Option<HashSet<Arc<str>>>,
}

/// One plugin's store, as its calls share it.
type SharedStore = Arc<Mutex<PluginStore>>;

impl PluginStores {
    /// The store of the plugin named `plugin`, made on first use. A tenant
    /// plugin the config no longer attaches (a call still running on the
    /// config before) gets an empty store of its own, kept by nobody: what
    /// it writes there is gone with the call. A built-in's store (`builtin`)
    /// is always kept.
    fn of(&self, plugin: &str, builtin: bool) -> SharedStore {
        let mut stores = lock(&self.0);
        let Stores {
            by_name,
            builtins,
            attached,
        } = &mut *stores;
        let (map, kept) = if builtin {
            (builtins, true)
        } else {
            let kept = attached
                .as_ref()
                .is_none_or(|attached| attached.contains(plugin));
            (by_name, kept)
        };
        if let Some(store) = map.get(plugin) {
            return Arc::clone(store);
        }
        let store = Arc::new(Mutex::new(PluginStore::default()));
        if kept {
            map.insert(Arc::from(plugin), Arc::clone(&store));
        }
        store
    }

    /// Keeps the stores of the plugins `snapshot` attaches from now on, as
    /// well as those kept so far: called before the config goes live, so
    /// a call on the new config never writes to a store nobody keeps.
    pub fn attach(&self, snapshot: &ConfigSnapshot) {
        let mut stores = lock(&self.0);
        if let Some(attached) = stores.attached.as_mut() {
            attached.extend(attached_names(snapshot));
        }
    }

    /// Drops the stores of the plugins no route of `snapshot` (enabled or
    /// not) has attached, and keeps none for them from now on: called once
    /// the config is live.
    pub fn keep_attached(&self, snapshot: &ConfigSnapshot) {
        let attached: HashSet<Arc<str>> = attached_names(snapshot).collect();
        let dropped: Vec<(Arc<str>, SharedStore)> = {
            let mut stores = lock(&self.0);
            let dropped = stores
                .by_name
                .extract_if(|name, _| !attached.contains(name))
                .collect();
            stores.attached = Some(attached);
            dropped
        };
        // Freed outside the lock: a store may hold megabytes.
        drop(dropped);
    }

    /// The plugins the node keeps a store for, by name.
    pub fn held(&self) -> Vec<Arc<str>> {
        lock(&self.0).by_name.keys().cloned().collect()
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
    /// `check-rate` calls made in this call.
    rate_checks: u32,
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
            rate_checks: 0,
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
        lock(self.store.get_or_insert_with(|| {
            ctx.shared
                .stores
                .of(owner(ctx, plugin), ctx.plugin.is_empty())
        }))
    }

    /// The node-wide rate bucket of the plugin's bucket `key`: a tenant
    /// plugin's own (`plugin:<name>:<key>`, a prefix the built-ins' keys
    /// never start with), a built-in's as it names it. A key longer than
    /// [`MAX_BUCKET_KEY`] is named by its SHA-256 (`sha256:<hex>`), so a
    /// bucket costs the node and Redis a bounded size whatever key a plugin
    /// passes.
    fn bucket(&self, key: &str) -> String {
        let digest;
        let key = if key.len() > MAX_BUCKET_KEY {
            digest = format!("sha256:{:x}", Sha256::digest(key.as_bytes()));
            &digest
        } else {
            key
        };
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

/// The plugin names the routes of `snapshot` attach (enabled or not).
fn attached_names(snapshot: &ConfigSnapshot) -> impl Iterator<Item = Arc<str>> + '_ {
    snapshot
        .routes
        .iter()
        .flat_map(|route| route.plugins.iter().map(|plugin| Arc::clone(&plugin.name)))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A config whose routes attach the plugins `names`, one route each.
    fn attaching(names: &[&str]) -> ConfigSnapshot {
        let routes: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(n, name)| {
                serde_json::json!({
                    "id": format!("r{n}"), "method": "GET", "pathPattern": format!("/{n}"),
                    "serviceId": "s", "authRequired": false, "rateLimitOverride": null,
                    "enabled": n % 2 == 0,
                    "plugins": [{ "pluginId": "p", "name": name, "sha256": "00",
                                  "configJson": "{}", "failurePolicy": "closed" }],
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "tenantId": "t", "version": 1, "revision": "r", "services": [],
            "routes": routes, "consumers": [],
        }))
        .expect("a snapshot")
    }

    fn write(stores: &PluginStores, plugin: &str, key: &str) {
        let store = stores.of(plugin, false);
        lock(&store)
            .kv
            .insert(key.to_owned(), b"v".to_vec(), 1, None, Instant::now())
            .expect("stored");
    }

    fn holds(stores: &PluginStores, plugin: &str, key: &str) -> bool {
        lock(&stores.of(plugin, false))
            .kv
            .get(key, Instant::now())
            .is_some()
    }

    #[test]
    fn stores_last_while_a_route_attaches_their_plugin() {
        let stores = PluginStores::default();
        for plugin in ["kept", "on-a-disabled-route", "detached"] {
            write(&stores, plugin, "k");
        }
        stores.keep_attached(&attaching(&["kept", "on-a-disabled-route"]));
        let mut held = stores.held();
        held.sort();
        assert_eq!(held, [Arc::from("kept"), Arc::from("on-a-disabled-route")]);
        assert!(holds(&stores, "kept", "k") && holds(&stores, "on-a-disabled-route", "k"));
        // A call of the detached plugin still running writes to a store
        // that nobody keeps.
        write(&stores, "detached", "late");
        assert!(!holds(&stores, "detached", "late"));
        assert!(!stores.held().contains(&Arc::from("detached")));
        // Attached again, it starts empty and is kept.
        stores.keep_attached(&attaching(&["kept", "detached"]));
        assert!(!holds(&stores, "detached", "k"));
        write(&stores, "detached", "k");
        assert!(holds(&stores, "detached", "k"));
        assert!(!stores.held().contains(&Arc::from("on-a-disabled-route")));
    }

    #[test]
    fn a_plugin_newly_attached_is_kept_from_before_its_config_is_live() {
        let stores = PluginStores::default();
        stores.keep_attached(&attaching(&["old"]));
        let next = attaching(&["new"]);
        stores.attach(&next);
        // A call on the new config, installed but not yet pruned for.
        write(&stores, "new", "k");
        write(&stores, "old", "k");
        stores.keep_attached(&next);
        assert!(holds(&stores, "new", "k"));
        assert!(!holds(&stores, "old", "k"));
    }

    #[test]
    fn a_builtins_store_is_never_pruned() {
        let stores = PluginStores::default();
        stores.keep_attached(&attaching(&["tenant"]));
        lock(&stores.of("rate-limit", true))
            .kv
            .insert("k".to_owned(), b"v".to_vec(), 1, None, Instant::now())
            .expect("stored");
        stores.keep_attached(&attaching(&[]));
        assert!(
            lock(&stores.of("rate-limit", true))
                .kv
                .get("k", Instant::now())
                .is_some()
        );
    }
}
