//! Gatehouse's gateway node, apart from the HTTP server itself: the compiled
//! config it serves from (`routing`, `keys`, `upstream`), how it gets there
//! (`sync` from the control plane, `state_dir` on disk) and how the hot
//! path reads it (`live`, one lock-free load per request).
//!
//! This crate never touches the database and depends on neither axum nor
//! sqlx: everything it knows arrives as a `ConfigSnapshot`.

pub mod compiled;
pub mod keys;
pub mod live;
pub mod routing;
pub mod state_dir;
pub mod sync;
pub mod upstream;

pub use compiled::CompiledConfig;
pub use live::LiveConfig;
