//! What the control plane and the gateway nodes must agree on: route
//! patterns (the control plane validates with the same code the proxy
//! matches with), the config snapshot a node serves from and the
//! deltas between two of them, the sync protocol that carries them, the telemetry nodes ship back, what makes an
//! uploaded plugin loadable (checked by the control plane at upload), and
//! the prefixes that tell keys apart.

pub mod config;
pub mod delta;
pub mod histogram;
pub mod key_prefix;
pub mod plugin_check;
pub mod route_pattern;
pub mod sync;
pub mod telemetry;
pub mod trusted_proxies;

pub use config::{
    ConfigIdentity, ConfigSnapshot, ConsumerConfig, PluginPhase, RateLimits, RouteConfig,
    RoutePluginConfig, ServiceConfig,
};
pub use delta::{BaseMismatch, Changes, ConfigDelta};
pub use route_pattern::{PatternError, RoutePattern, Segment};

/// The highest rate limit a bucket can have, per minute: one request a
/// microsecond, the resolution of the clock the fleet's limit script
/// counts in. The control plane accepts no higher tier or override, and a
/// node takes a higher limit a plugin asks for as this one.
pub const MAX_REQUESTS_PER_MINUTE: u32 = 60_000_000;
