//! The Wasm plugin host: components built against `wit/plugin.wit`, run on
//! the hot path in a sandbox. `engine` owns wasmtime (pooling allocator,
//! compilation) and `ticker` the epoch that cuts calls at their deadline;
//! `host` is what a plugin may call and the limits it runs under; `runtime`
//! instantiates a plugin for one call under a deadline and a memory cap and
//! turns every way a call can go wrong into a [`PluginFailure`], leaving the
//! node unharmed; `chain` runs a route's tenant plugins hook by hook,
//! `registry` keeps the tenant's components, `builtins` the node's own, and
//! `request_log` runs the request-log built-in over a sealed telemetry
//! batch.

mod bindings {
    // The `builtin` world: the plugin world plus the request log. Tenant
    // plugins are linked without the request log (see `engine`); their
    // exports are the same, called by `runtime` with these types. Calls
    // are async so that a host function may wait on I/O (a rate-limit
    // decision in Redis) without blocking the proxy's worker thread; that
    // one may also trap the call (past the number of checks a call may
    // make, see `host::MAX_RATE_CHECKS`).
    wasmtime::component::bindgen!({
        world: "builtin",
        path: "../wit",
        imports: { "gatehouse:plugin/counters.check-rate": async | trappable },
        exports: { default: async },
    });

    pub use Builtin as Plugin;
}

mod bindings_v0_1 {
    // The 0.1.0 release (`wit/0.1.0/`), for its host interfaces: nodes link
    // them beside 0.2.0's, so components built against it still load. Its
    // exports have the same types as 0.2.0's, which `runtime` calls them
    // with.
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit/0.1.0",
        imports: { "gatehouse:plugin/counters.check-rate": async | trappable },
        exports: { default: async },
    });
}

pub mod artifacts;
pub mod breaker;
pub mod builtins;
pub mod chain;
pub mod engine;
pub mod host;
pub mod output;
pub mod registry;
pub mod request_log;
pub mod runtime;
pub mod ticker;

#[cfg(test)]
mod tests;

pub use bindings::gatehouse::plugin::types::{
    Header, Hooks, LocalResponse, LogEntry, Request, RequestAction, RequestChanges, Response,
    ResponseAction, ResponseChanges,
};
pub use builtins::Builtins;
pub use engine::{EngineSettings, PluginEngine};
pub use registry::Registry;
pub use runtime::{CallContext, LoadedPlugin, PluginFailure};
