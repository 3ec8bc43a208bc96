//! How much of the node's own request handling runs. A node always runs
//! all of it; the cost ladder of `benches/load` (hidden flag
//! `--bench-layers`) runs less, to measure what each layer adds to a request
//! on top of pingora: the route match alone, then the request id and
//! forwarding headers, then metrics, then telemetry.

/// The layers of request handling that run, each including those before
/// it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Layers {
    /// The route match, the route's plugins and the upstream peer: no
    /// request id, forwarding headers (consumer keys are not hidden
    /// either), metrics or telemetry (nor tenant plugins' `on-log`).
    Route,
    /// Adds the request id and the forwarding headers (path prefix, Host,
    /// `X-Forwarded-*`, `X-Request-Id`, credentials hidden).
    Headers,
    /// Adds the request and upstream-latency metrics.
    Metrics,
    /// Everything: adds telemetry (aggregates, error events and, as
    /// `--request-logs` says, request logs).
    #[default]
    All,
}

impl Layers {
    /// Whether the request id and the forwarding headers are made.
    pub fn headers(self) -> bool {
        self >= Self::Headers
    }

    /// Whether requests are counted in the metrics.
    pub fn metrics(self) -> bool {
        self >= Self::Metrics
    }

    /// Whether requests are reported to telemetry.
    pub fn telemetry(self) -> bool {
        self >= Self::All
    }
}
