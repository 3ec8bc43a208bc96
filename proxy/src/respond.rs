//! The proxy's own responses, in the error JSON of the REST API:
//! `{"error": {"code": "...", "message": "..."}}`.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use crate::plugins::{Header, LocalResponse};

/// A request the proxy answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
}

impl Reject {
    pub const ROUTE_NOT_FOUND: Self = Self {
        status: 404,
        code: "route_not_found",
        message: "no route matches this method and path",
    };
    pub const INVALID_API_KEY: Self = Self {
        status: 401,
        code: "invalid_api_key",
        message: "send a valid API key in X-API-Key or Authorization: Bearer",
    };
    pub const SERVICE_UNAVAILABLE: Self = Self {
        status: 503,
        code: "service_unavailable",
        message: "the route's service is not available",
    };
    pub const NOT_CONFIGURED: Self = Self {
        status: 503,
        code: "gateway_not_configured",
        message: "this gateway node has no configuration yet",
    };
    pub const UPSTREAM_UNAVAILABLE: Self = Self {
        status: 502,
        code: "upstream_unavailable",
        message: "the upstream service could not be reached",
    };
    pub const UPSTREAM_TIMEOUT: Self = Self {
        status: 504,
        code: "upstream_timeout",
        message: "the upstream service did not answer in time",
    };
    pub const PLUGIN_FAILED: Self = Self {
        status: 503,
        code: "plugin_failed",
        message: "a plugin of this route failed",
    };
    pub const PAYLOAD_TOO_LARGE: Self = Self {
        status: 413,
        code: "payload_too_large",
        message: "the request body is larger than this gateway accepts",
    };
    pub const BAD_REQUEST: Self = Self {
        status: 400,
        code: "bad_request",
        message: "the request could not be read",
    };

    /// The JSON body.
    pub fn body(&self) -> Bytes {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        Bytes::from(body.to_string())
    }
}

/// Whether the client connection stays open after a local answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    KeepAlive,
    /// pingora closes the connection after a failed proxy attempt; saying so
    /// keeps clients from sending their next request into a closed socket.
    Close,
}

/// Writes `reject` as the whole response, with `extra` headers (the
/// route's `RateLimit-*`, say) other than the node's own.
pub async fn send(
    session: &mut Session,
    reject: &Reject,
    request_id: &str,
    extra: &[Header],
    connection: Connection,
) -> Result<()> {
    let body = reject.body();
    let mut header = ResponseHeader::build(reject.status, Some(4 + extra.len()))?;
    // The node's own headers go last, so an extra header of the same name
    // never relabels the error JSON.
    add_headers(&mut header, extra);
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", body.len().to_string())?;
    header.insert_header("x-request-id", request_id)?;
    if connection == Connection::Close {
        header.insert_header("connection", "close")?;
        session.set_keepalive(None);
    }
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// Writes a plugin's local response as the whole response, with `extra`
/// headers where the plugin set none of that name.
pub async fn send_local(
    session: &mut Session,
    response: &LocalResponse,
    request_id: &str,
    extra: &[Header],
) -> Result<()> {
    let body = Bytes::from(response.body.clone());
    let header = local_header(response, request_id, extra)?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await?;
    Ok(())
}

/// The head of a plugin's local response: its status (500 when out of
/// range) and headers, `extra` headers it did not set itself, the length
/// of its body and the request id.
pub fn local_header(
    response: &LocalResponse,
    request_id: &str,
    extra: &[Header],
) -> Result<ResponseHeader> {
    let status = if (100..=599).contains(&response.status) {
        response.status
    } else {
        500
    };
    let mut header = ResponseHeader::build(status, Some(response.headers.len() + 2))?;
    for plugin_header in &response.headers {
        // A header the plugin got wrong is skipped, not fatal.
        let _ = header.append_header(plugin_header.name.clone(), plugin_header.value.as_str());
    }
    let own: Vec<Header> = extra
        .iter()
        .filter(|e| {
            !response
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(&e.name))
        })
        .cloned()
        .collect();
    add_headers(&mut header, &own);
    header.insert_header("content-length", response.body.len().to_string())?;
    header.insert_header("x-request-id", request_id)?;
    Ok(header)
}

/// Sets plugin-given headers on a response; one that is not a valid
/// header is skipped, not fatal.
pub fn add_headers(header: &mut ResponseHeader, headers: &[Header]) {
    for extra in headers {
        let _ = header.insert_header(extra.name.clone(), extra.value.as_str());
    }
}

/// The answer for a failure to proxy: timeouts are 504, everything else on
/// the upstream side 502, errors on the client side 400.
pub fn for_error(error: &Error) -> Option<Reject> {
    match error.etype() {
        &crate::body_limit::TOO_LARGE => Some(Reject::PAYLOAD_TOO_LARGE),
        ErrorType::ConnectTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout
        | ErrorType::TLSHandshakeTimedout => Some(Reject::UPSTREAM_TIMEOUT),
        _ => match error.esource() {
            ErrorSource::Upstream | ErrorSource::Internal | ErrorSource::Unset => {
                Some(Reject::UPSTREAM_UNAVAILABLE)
            }
            ErrorSource::Downstream => match error.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => None,
                _ => Some(Reject::BAD_REQUEST),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_the_error_json() {
        let body: serde_json::Value =
            serde_json::from_slice(&Reject::ROUTE_NOT_FOUND.body()).expect("json");
        assert_eq!(body["error"]["code"], "route_not_found");
        assert!(body["error"]["message"].is_string());
    }

    #[test]
    fn timeouts_are_504_and_refusals_502() {
        let timeout = Error::new(ErrorType::ReadTimedout);
        assert_eq!(for_error(&timeout).map(|r| r.status), Some(504));
        let mut refused = Error::new(ErrorType::ConnectRefused);
        refused.esource = ErrorSource::Upstream;
        assert_eq!(for_error(&refused).map(|r| r.status), Some(502));
        let mut gone = Error::new(ErrorType::ConnectionClosed);
        gone.esource = ErrorSource::Downstream;
        assert_eq!(for_error(&gone), None);
    }
}
