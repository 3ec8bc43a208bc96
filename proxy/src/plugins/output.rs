//! What a tenant plugin may hand back. Its answers are checked before they
//! touch a request or a response: header names and values must be valid
//! HTTP, a rewritten path must be a path, a local answer's status must be
//! one, and the headers that frame a message or carry what the gateway
//! vouches for (`Host`, `Content-Length`, `Transfer-Encoding`, hop-by-hop
//! headers, `X-Consumer-Id`, `X-Forwarded-*`, `X-Request-Id`) are not the
//! plugin's to set or remove. An answer that breaks a rule is the plugin
//! failing ([`PluginFailure::InvalidOutput`]): its failure policy decides.

use http::{HeaderName, HeaderValue};

use super::runtime::PluginFailure;
use super::{Header, LocalResponse, RequestAction, ResponseAction};

/// Headers a plugin may not set or remove.
const RESERVED: [&str; 14] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "x-consumer-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// Checks an `on-request` answer.
pub fn check_request(action: &RequestAction) -> Result<(), PluginFailure> {
    match action {
        RequestAction::Proceed(changes) => {
            headers(&changes.set_headers)?;
            headers(&changes.response_headers)?;
            names(&changes.remove_headers)?;
            if let Some(path) = &changes.rewrite_path {
                let valid = path.starts_with('/')
                    && path.parse::<http::uri::PathAndQuery>().is_ok()
                    && !path.contains('?');
                if !valid {
                    return Err(invalid(format!(
                        "rewrite-path `{}` is not a path",
                        shorten(path)
                    )));
                }
            }
            Ok(())
        }
        RequestAction::Respond(response) => local(response),
    }
}

/// Checks an `on-response` answer.
pub fn check_response(action: &ResponseAction) -> Result<(), PluginFailure> {
    match action {
        ResponseAction::Modify(changes) => {
            headers(&changes.set_headers)?;
            names(&changes.remove_headers)
        }
        ResponseAction::Replace(response) => local(response),
    }
}

fn local(response: &LocalResponse) -> Result<(), PluginFailure> {
    if !(100..=599).contains(&response.status) {
        return Err(invalid(format!(
            "status {} is not an HTTP status",
            response.status
        )));
    }
    headers(&response.headers)
}

fn headers(headers: &[Header]) -> Result<(), PluginFailure> {
    for header in headers {
        name(&header.name)?;
        if HeaderValue::from_str(&header.value).is_err() {
            return Err(invalid(format!(
                "the value of header `{}` is not a valid header value",
                header.name
            )));
        }
    }
    Ok(())
}

fn names(names: &[String]) -> Result<(), PluginFailure> {
    names.iter().try_for_each(|n| name(n))
}

fn name(name: &str) -> Result<(), PluginFailure> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| invalid(format!("`{}` is not a header name", shorten(name))))?;
    if RESERVED.contains(&parsed.as_str()) {
        return Err(invalid(format!(
            "header `{parsed}` is the gateway's, not a plugin's"
        )));
    }
    Ok(())
}

fn invalid(reason: String) -> PluginFailure {
    PluginFailure::InvalidOutput(reason)
}

/// At most 64 characters of what a plugin returned, for messages.
fn shorten(text: &str) -> String {
    text.chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{RequestChanges, ResponseChanges};

    fn header(name: &str, value: &str) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    fn proceed(changes: RequestChanges) -> RequestAction {
        RequestAction::Proceed(changes)
    }

    fn changes() -> RequestChanges {
        RequestChanges {
            set_headers: vec![],
            remove_headers: vec![],
            rewrite_path: None,
            consumer_id: None,
            response_headers: vec![],
        }
    }

    #[test]
    fn sane_answers_pass() {
        let mut ok = changes();
        ok.set_headers.push(header("X-Team", "blue"));
        ok.remove_headers.push("cookie".into());
        ok.rewrite_path = Some("/v2/users".into());
        ok.response_headers
            .push(header("access-control-allow-origin", "*"));
        assert!(check_request(&proceed(ok)).is_ok());
        let respond = RequestAction::Respond(LocalResponse {
            status: 403,
            headers: vec![header("content-type", "text/plain")],
            body: b"no".to_vec(),
        });
        assert!(check_request(&respond).is_ok());
    }

    #[test]
    fn garbage_is_a_failure() {
        type Spoil = Box<dyn Fn(&mut RequestChanges)>;
        let bad_changes: Vec<Spoil> = vec![
            Box::new(|c| c.set_headers.push(header("bad name", "v"))),
            Box::new(|c| c.set_headers.push(header("x-ok", "line\r\ninjected: 1"))),
            Box::new(|c| c.set_headers.push(header("", "v"))),
            Box::new(|c| c.set_headers.push(header("Transfer-Encoding", "chunked"))),
            Box::new(|c| c.set_headers.push(header("x-consumer-id", "someone-else"))),
            Box::new(|c| c.remove_headers.push("x-request-id".into())),
            Box::new(|c| c.remove_headers.push("\0".into())),
            Box::new(|c| c.response_headers.push(header("content-length", "0"))),
            Box::new(|c| c.rewrite_path = Some("no-slash".into())),
            Box::new(|c| c.rewrite_path = Some("/a b".into())),
            Box::new(|c| c.rewrite_path = Some("/a?smuggled=query".into())),
        ];
        for spoil in bad_changes {
            let mut c = changes();
            spoil(&mut c);
            let failure = check_request(&proceed(c.clone())).expect_err(&format!("{c:?}"));
            assert_eq!(failure.reason(), "invalid_output");
        }
        for status in [0, 99, 600, u16::MAX] {
            let respond = RequestAction::Respond(LocalResponse {
                status,
                headers: vec![],
                body: vec![],
            });
            assert!(check_request(&respond).is_err(), "{status}");
        }
        let modify = ResponseAction::Modify(ResponseChanges {
            set_headers: vec![header("connection", "close")],
            remove_headers: vec![],
        });
        assert!(check_response(&modify).is_err());
    }
}
