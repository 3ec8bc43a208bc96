//! What the control plane and the gateway nodes must agree on. The control
//! plane validates with the same code the proxy matches with, so a route
//! the API accepts is a route every node can serve.

pub mod route_pattern;

pub use route_pattern::{PatternError, RoutePattern, Segment};
