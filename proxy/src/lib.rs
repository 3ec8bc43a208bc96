//! Gatehouse's gateway node. `node` runs it: pingora serves traffic through
//! `gateway` (which calls `admission`, `forwarding`, `respond`, `metrics`)
//! and the `admin` listener. The config it serves from is compiled
//! (`compiled`: `routing`, `keys`, `upstream`), arrives by `sync` from the
//! control plane, is kept in `state_dir`, and is read by the hot path
//! through `live` (one lock-free load per request).
//!
//! This crate never touches the database and depends on neither axum nor
//! sqlx: everything it knows arrives as a `ConfigSnapshot`.

pub mod admin;
pub mod admission;
pub mod background;
pub mod body_limit;
pub mod compiled;
pub mod drain;
pub mod flags;
pub mod forwarding;
pub mod gateway;
pub mod header_deadline;
pub mod keys;
pub mod layers;
pub mod listen;
pub mod live;
pub mod memory;
pub mod metrics;
pub mod node;
pub mod plugins;
pub mod ratelimit;
pub mod respond;
pub mod routing;
pub mod state_dir;
pub mod sync;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod upstream_failure;

pub use compiled::CompiledConfig;
pub use live::LiveConfig;
pub use node::{ProxyArgs, run, run_with_exit_hook};
