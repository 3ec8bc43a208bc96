//! What the control plane and the gateway nodes must agree on: route
//! patterns (the control plane validates with the same code the proxy
//! matches with), the config snapshot a node serves from, and the sync
//! protocol that carries it.

pub mod config;
pub mod route_pattern;
pub mod sync;

pub use config::{ConfigSnapshot, ConsumerConfig, RouteConfig, ServiceConfig};
pub use route_pattern::{PatternError, RoutePattern, Segment};
