//! An upstream failure said for a person: "could not connect to
//! 127.0.0.1:9 (connection refused)" where pingora says `Upstream
//! ConnectRefused context: Fail to connect to ... (os error 111)`. The
//! sentence is the error event's message and the node log line's; pingora's
//! own text stays beside it as the cause, for operators.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use pingora::{Error, ErrorType};

use crate::upstream::Upstream;

/// The error a request fails with when its service's host resolved to no
/// address (answered 502 `upstream_unavailable`).
pub const UNRESOLVED: ErrorType = ErrorType::Custom("upstream_unresolved");

/// Whether `error` is the upstream's (or reaching it failed), which
/// [`describe`] says in words; the node's own errors keep their text.
pub fn is_upstreams(error: &Error) -> bool {
    *error.esource() == pingora::ErrorSource::Upstream || error.etype() == &UNRESOLVED
}

/// What the request to `upstream` (at `address`, when one was picked)
/// failed with, in a sentence.
pub fn describe(error: &Error, upstream: &Upstream, address: Option<SocketAddr>) -> String {
    let target = address.map_or_else(
        || format!("{}:{}", upstream.host, upstream.port),
        |address| address.to_string(),
    );
    let within = human_duration(upstream.timeout);
    let io = io_kind(error);
    match error.etype() {
        &UNRESOLVED => format!("could not resolve {} (no address)", upstream.host),
        ErrorType::ConnectRefused => format!("could not connect to {target} (connection refused)"),
        ErrorType::ConnectTimedout => format!("could not connect to {target} (timed out)"),
        ErrorType::ConnectNoRoute => format!("could not connect to {target} (no route to host)"),
        ErrorType::ConnectError | ErrorType::SocketError | ErrorType::BindError => {
            format!("could not connect to {target} ({})", io_words(io))
        }
        ErrorType::TLSHandshakeTimedout => {
            format!("TLS handshake with {} at {target} timed out", upstream.host)
        }
        ErrorType::InvalidCert => format!(
            "TLS handshake with {} at {target} failed: its certificate is not valid ({})",
            upstream.host,
            error.root_cause()
        ),
        ErrorType::TLSHandshakeFailure | ErrorType::TLSWantX509Lookup => format!(
            "TLS handshake with {} at {target} failed ({})",
            upstream.host,
            error.root_cause()
        ),
        ErrorType::ReadTimedout => format!("{target} did not answer within {within}"),
        ErrorType::WriteTimedout => {
            format!("could not send the request to {target} within {within}")
        }
        ErrorType::ConnectionClosed => {
            format!("{target} closed the connection before answering")
        }
        ErrorType::ReadError | ErrorType::WriteError if io == Some(ErrorKind::ConnectionReset) => {
            format!("{target} reset the connection")
        }
        ErrorType::ReadError => format!("reading the answer of {target} failed ({})", io_words(io)),
        ErrorType::WriteError => {
            format!("sending the request to {target} failed ({})", io_words(io))
        }
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::H2Error => {
            format!("{target} answered with something that is not valid HTTP")
        }
        other => format!("the request to {target} failed ({})", other.as_str()),
    }
}

/// The kind of the I/O error at the bottom of `error`, if it is one.
fn io_kind(error: &Error) -> Option<ErrorKind> {
    error
        .root_cause()
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
}

/// An I/O error kind in a few words.
fn io_words(kind: Option<ErrorKind>) -> String {
    match kind {
        Some(ErrorKind::ConnectionRefused) => "connection refused".to_owned(),
        Some(ErrorKind::ConnectionReset) => "connection reset".to_owned(),
        Some(ErrorKind::ConnectionAborted) => "connection aborted".to_owned(),
        Some(ErrorKind::BrokenPipe) => "the connection was closed".to_owned(),
        Some(ErrorKind::TimedOut) => "timed out".to_owned(),
        Some(ErrorKind::AddrNotAvailable) => "address not available".to_owned(),
        Some(kind) => kind.to_string(),
        None => "unknown cause".to_owned(),
    }
}

/// `30s`, `1.5s` or `250ms`.
fn human_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_protocol::ServiceConfig;

    fn upstream(timeout_ms: i64) -> Upstream {
        let service = ServiceConfig {
            id: "svc".to_owned(),
            target_url: "http://echo.internal:9000".to_owned(),
            health_check_path: None,
            timeout_ms,
        };
        Upstream::parse(&service).expect("parses")
    }

    fn failed(etype: ErrorType, cause: Option<std::io::Error>) -> Box<Error> {
        let mut error = Error::new(etype);
        error.esource = pingora::ErrorSource::Upstream;
        error.context = Some("Fail to connect to addr: 10.0.0.7:9000".into());
        error.cause = cause.map(|c| Box::new(c) as _);
        error
    }

    #[test]
    fn each_failure_is_said_in_words() {
        let up = upstream(1500);
        let at = Some("10.0.0.7:9000".parse().expect("addr"));
        let refused = std::io::Error::from(ErrorKind::ConnectionRefused);
        let cases = [
            (
                failed(ErrorType::ConnectRefused, Some(refused)),
                "could not connect to 10.0.0.7:9000 (connection refused)",
            ),
            (
                failed(ErrorType::ConnectTimedout, None),
                "could not connect to 10.0.0.7:9000 (timed out)",
            ),
            (
                failed(ErrorType::ReadTimedout, None),
                "10.0.0.7:9000 did not answer within 1.5s",
            ),
            (
                failed(
                    ErrorType::ReadError,
                    Some(std::io::Error::from(ErrorKind::ConnectionReset)),
                ),
                "10.0.0.7:9000 reset the connection",
            ),
            (
                failed(ErrorType::ConnectionClosed, None),
                "10.0.0.7:9000 closed the connection before answering",
            ),
            (
                failed(ErrorType::InvalidHTTPHeader, None),
                "10.0.0.7:9000 answered with something that is not valid HTTP",
            ),
        ];
        for (error, said) in cases {
            assert_eq!(describe(&error, &up, at), said, "{error}");
        }
    }

    #[test]
    fn without_an_address_the_host_is_named() {
        let up = upstream(30_000);
        let unresolved = Error::explain(UNRESOLVED, "no address");
        assert_eq!(
            describe(&unresolved, &up, None),
            "could not resolve echo.internal (no address)"
        );
        let tls = failed(ErrorType::TLSHandshakeFailure, None);
        assert!(
            describe(&tls, &up, None)
                .starts_with("TLS handshake with echo.internal at echo.internal:9000 failed"),
            "{}",
            describe(&tls, &up, None)
        );
        assert_eq!(human_duration(Duration::from_secs(30)), "30s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
    }
}
