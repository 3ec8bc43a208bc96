//! Forwarding an admitted request: the upstream peer (pooled by pingora,
//! keyed by the peer, so peers are built the same way every time), the path
//! with the service's prefix, and the headers the upstream is told
//! (`X-Forwarded-For`, `X-Forwarded-Proto`, `X-Request-Id`, `X-Consumer-Id`;
//! not the consumer's key).

use std::net::SocketAddr;

use gatehouse_protocol::key_prefix::{CONSUMER_KEY_PREFIX, bearer_token};
use http::HeaderValue;
use http::header::{AUTHORIZATION, HOST, HeaderName};
use pingora::http::RequestHeader;
use pingora::prelude::*;

use crate::keys::{Consumer, ID_LEN};
use crate::plugins::chain::Changes;
use crate::upstream::Upstream;

/// Longest client-chosen request id kept as is.
const MAX_REQUEST_ID: usize = 200;

// Header names made once, not parsed on every request.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The peer to send `upstream`'s requests to.
pub fn peer(upstream: &Upstream) -> Result<Box<HttpPeer>> {
    let address: SocketAddr = upstream.resolved.pick().ok_or_else(|| {
        Error::explain(
            crate::upstream_failure::UNRESOLVED,
            "upstream host did not resolve",
        )
    })?;
    let mut peer = HttpPeer::new(address, upstream.tls, upstream.host.clone());
    let options = &mut peer.options;
    options.connection_timeout = Some(upstream.timeout.min(std::time::Duration::from_secs(10)));
    options.total_connection_timeout = Some(upstream.timeout);
    options.read_timeout = Some(upstream.timeout);
    options.write_timeout = Some(upstream.timeout);
    Ok(Box::new(peer))
}

/// What the upstream request is told about the client.
#[derive(Debug)]
pub struct Forwarded<'a> {
    /// The address the request came from, appended to `X-Forwarded-For`.
    pub peer_ip: Option<&'a str>,
    /// Whether the client reached the node over TLS (`X-Forwarded-Proto:
    /// https`).
    pub tls: bool,
    pub request_id: &'a str,
    pub consumer: Option<&'a Consumer>,
}

/// Rewrites the request for `upstream`: prefixed path (query kept), Host,
/// forwarding headers. A client's own `X-Consumer-Id` never passes.
pub fn rewrite(
    request: &mut RequestHeader,
    upstream: &Upstream,
    forwarded: &Forwarded<'_>,
) -> Result<()> {
    // The target goes as the client sent it unless the prefix changes it,
    // it is not the URI's own (not UTF-8), or the URI names an authority
    // (an absolute-form target, an HTTP/2 request's `:authority`): then it
    // goes as the URI's path and query, and Host alone names the upstream.
    let path_and_query = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let target = (!upstream.path_prefix.is_empty()
        || request.uri.authority().is_some()
        || request.raw_path() != path_and_query.as_bytes())
    .then(|| upstream.forward_path(path_and_query));
    if let Some(target) = target {
        request.set_uri(target_uri(target, "forwarded path is not a valid URI")?);
    }
    request.insert_header(HOST, upstream.host_header.clone())?;
    if let Some(ip) = forwarded.peer_ip {
        let chain = match request
            .headers
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
        {
            Some(existing) if !existing.trim().is_empty() => format!("{existing}, {ip}"),
            _ => ip.to_owned(),
        };
        request.insert_header(X_FORWARDED_FOR, chain)?;
    }
    let proto = HeaderValue::from_static(if forwarded.tls { "https" } else { "http" });
    request.insert_header(X_FORWARDED_PROTO, proto)?;
    request.insert_header(X_REQUEST_ID, forwarded.request_id)?;
    request.remove_header(&X_CONSUMER_ID);
    if let Some(consumer) = forwarded.consumer {
        request.insert_header(X_CONSUMER_ID, consumer.id.as_str(&mut [0; ID_LEN]))?;
    }
    hide_credentials(request, forwarded.consumer.is_some());
    Ok(())
}

/// Removes consumer API keys before the request goes upstream, on every
/// route: the service learns who called from `X-Consumer-Id`, and keys stay
/// between the client and the gateway. `X-API-Key` goes when the request was
/// authenticated, and otherwise each of its values that is a consumer key
/// (`ck_...`). Every `Authorization` value that carries a consumer key
/// (`Bearer ck_...`, read as the auth plugin reads it: any scheme case, any
/// spacing) goes, however many the client sent; any other value is the
/// service's own and is kept, in order.
fn hide_credentials(request: &mut RequestHeader, authenticated: bool) {
    if authenticated {
        request.remove_header(&X_API_KEY);
    } else {
        remove_values(request, &X_API_KEY, |value| {
            value.as_bytes().starts_with(CONSUMER_KEY_PREFIX.as_bytes())
        });
    }
    remove_values(request, &AUTHORIZATION, is_consumer_bearer);
}

/// Removes the values of `name` that `unwanted` picks, keeping the others
/// in order.
fn remove_values(
    request: &mut RequestHeader,
    name: &HeaderName,
    unwanted: impl Fn(&http::HeaderValue) -> bool,
) {
    let values = request.headers.get_all(name);
    if !values.iter().any(&unwanted) {
        return;
    }
    let kept: Vec<_> = values.iter().filter(|v| !unwanted(v)).cloned().collect();
    request.remove_header(name);
    for value in kept {
        // Appending a value already held cannot fail.
        let _ = request.append_header(name.clone(), value);
    }
}

fn is_consumer_bearer(value: &http::HeaderValue) -> bool {
    value
        .to_str()
        .ok()
        .and_then(bearer_token)
        .is_some_and(|token| token.starts_with(CONSUMER_KEY_PREFIX))
}

/// Applies what the route's plugins changed: headers set and removed, and
/// a rewritten path (behind the service's prefix, query kept).
pub fn apply_plugin_changes(
    request: &mut RequestHeader,
    upstream: &Upstream,
    changes: &Changes,
) -> Result<()> {
    for name in &changes.remove_headers {
        request.remove_header(name.as_str());
    }
    for header in &changes.set_headers {
        request.insert_header(header.name.clone(), header.value.as_str())?;
    }
    if let Some(path) = &changes.rewrite_path {
        let query = request
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let target = upstream.forward_path(&format!("{path}{query}"));
        request.set_uri(target_uri(target, "rewritten path is not a valid URI")?);
    }
    Ok(())
}

/// `target` as the request's URI (taking the string, not copying it).
fn target_uri(target: String, invalid: &'static str) -> Result<http::Uri> {
    http::Uri::try_from(target).map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, invalid))
}

/// The request id: the client's `X-Request-Id` when it is short printable
/// ASCII, otherwise a fresh UUID.
pub fn request_id(client: Option<&str>) -> String {
    client
        .filter(|id| {
            !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(
            || {
                uuid::Uuid::new_v4()
                    .hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer())
                    .to_owned()
            },
            str::to_owned,
        )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn upstream(port: u16) -> Upstream {
        upstream_at(&format!("http://127.0.0.1:{port}/v1"), port)
    }

    fn upstream_at(target_url: &str, port: u16) -> Upstream {
        let service = gatehouse_protocol::ServiceConfig {
            id: "s".into(),
            target_url: target_url.into(),
            health_check_path: None,
            timeout_ms: 500,
        };
        Upstream::parse(&service)
            .expect("parses")
            .with_addresses(vec![SocketAddr::from(([127, 0, 0, 1], port))])
    }

    #[test]
    fn rewrites_path_host_and_forwarding_headers() {
        let mut request = RequestHeader::build("GET", b"/users/1?x=2", None).expect("request");
        request
            .insert_header("x-forwarded-for", "10.0.0.1")
            .expect("header");
        request
            .insert_header("x-consumer-id", "spoofed")
            .expect("header");
        request
            .insert_header("x-api-key", "ck_secret")
            .expect("header");
        let consumer = Consumer {
            id: "c1".into(),
            rate_limit_tier: "free".into(),
        };
        let forwarded = Forwarded {
            peer_ip: Some("127.0.0.9"),
            tls: false,
            request_id: "rid",
            consumer: Some(&consumer),
        };
        rewrite(&mut request, &upstream(8081), &forwarded).expect("rewrites");
        assert_eq!(request.uri.to_string(), "/v1/users/1?x=2");
        assert_eq!(request.headers["host"], "127.0.0.1:8081");
        assert_eq!(request.headers["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(request.headers["x-forwarded-proto"], "http");
        assert_eq!(request.headers["x-request-id"], "rid");
        assert_eq!(request.headers["x-consumer-id"], "c1");
        assert!(
            request.headers.get("x-api-key").is_none(),
            "the key stays at the gateway"
        );
        let over_tls = Forwarded {
            tls: true,
            ..forwarded
        };
        rewrite(&mut request, &upstream(8081), &over_tls).expect("rewrites");
        assert_eq!(request.headers["x-forwarded-proto"], "https");
    }

    #[test]
    fn targets_go_as_sent_unless_a_prefix_or_their_form_changes_them() {
        let forwarded = Forwarded {
            peer_ip: None,
            tls: false,
            request_id: "rid",
            consumer: None,
        };
        let no_prefix = upstream_at("http://127.0.0.1:8081", 8081);
        let wire = |target: &[u8], upstream: &Upstream| {
            let mut request = RequestHeader::build("GET", target, None).expect("request");
            rewrite(&mut request, upstream, &forwarded).expect("rewrites");
            String::from_utf8_lossy(request.raw_path()).into_owned()
        };
        assert_eq!(wire(b"/a%20b?x=1&y", &no_prefix), "/a%20b?x=1&y");
        assert_eq!(wire(b"http://example.com/x?y=1", &no_prefix), "/x?y=1");
        assert_eq!(wire(b"/a%20b?x=1", &upstream(8081)), "/v1/a%20b?x=1");
        assert_eq!(wire(b"http://example.com/x", &upstream(8081)), "/v1/x");
    }

    #[test]
    fn an_authority_in_the_uri_is_dropped_for_the_upstreams_host() {
        // As an HTTP/2 request arrives: the URI is absolute (`:scheme`,
        // `:authority`, `:path`), and the target is the URI's own.
        let parts = http::Request::get("https://client.example/x?y=1")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        let mut request = RequestHeader::from(parts);
        assert_eq!(request.raw_path(), b"/x?y=1");
        let forwarded = Forwarded {
            peer_ip: None,
            tls: true,
            request_id: "rid",
            consumer: None,
        };
        let no_prefix = upstream_at("http://127.0.0.1:8081", 8081);
        rewrite(&mut request, &no_prefix, &forwarded).expect("rewrites");
        assert_eq!(request.uri.authority(), None);
        assert_eq!(request.uri.to_string(), "/x?y=1");
        assert_eq!(request.headers["host"], "127.0.0.1:8081");
    }

    #[test]
    fn the_host_of_an_ipv6_upstream_is_bracketed() {
        let mut request = RequestHeader::build("GET", b"/", None).expect("request");
        let forwarded = Forwarded {
            peer_ip: None,
            tls: false,
            request_id: "rid",
            consumer: None,
        };
        rewrite(
            &mut request,
            &upstream_at("http://[::1]:8081", 8081),
            &forwarded,
        )
        .expect("rewrites");
        assert_eq!(request.headers["host"], "[::1]:8081");
    }

    #[test]
    fn only_consumer_keys_are_hidden() {
        let mut request = RequestHeader::build("GET", b"/", None).expect("request");
        request
            .insert_header("authorization", "Bearer ck_abc")
            .expect("header");
        hide_credentials(&mut request, true);
        assert!(request.headers.get("authorization").is_none());
        for spelled in ["bearer ck_abc", "BEARER   ck_abc", "Bearer\tck_abc "] {
            request
                .insert_header("authorization", spelled)
                .expect("header");
            hide_credentials(&mut request, true);
            assert!(
                request.headers.get("authorization").is_none(),
                "{spelled:?} reached the upstream"
            );
        }
        request
            .insert_header("authorization", "Bearer eyJ.service.token")
            .expect("header");
        request
            .insert_header("x-api-key", "ck_abc")
            .expect("header");
        hide_credentials(&mut request, true);
        assert_eq!(request.headers["authorization"], "Bearer eyJ.service.token");
        assert!(request.headers.get("x-api-key").is_none());
    }

    #[test]
    fn consumer_keys_are_hidden_on_open_routes_too() {
        let mut request = RequestHeader::build("GET", b"/", None).expect("request");
        for (name, value) in [
            ("x-api-key", "ck_leaked"),
            ("x-api-key", "service-key"),
            ("authorization", "BEARER ck_leaked"),
        ] {
            request.append_header(name, value).expect("header");
        }
        hide_credentials(&mut request, false);
        let kept: Vec<_> = request.headers.get_all("x-api-key").iter().collect();
        assert_eq!(kept, ["service-key"]);
        assert!(request.headers.get("authorization").is_none());
    }

    #[test]
    fn every_consumer_key_is_hidden_when_several_are_sent() {
        let mut request = RequestHeader::build("GET", b"/", None).expect("request");
        for value in ["Basic dXNlcjpwdw==", "bearer ck_first", "Bearer ck_second"] {
            request
                .append_header("authorization", value)
                .expect("header");
        }
        hide_credentials(&mut request, true);
        let left: Vec<_> = request.headers.get_all("authorization").iter().collect();
        assert_eq!(left, ["Basic dXNlcjpwdw=="]);
    }

    #[test]
    fn request_ids_are_kept_when_sane() {
        assert_eq!(request_id(Some("abc-123")), "abc-123");
        assert_ne!(request_id(Some("has space")), "has space");
        assert_eq!(request_id(None).len(), 36);
        assert_eq!(request_id(Some(&"x".repeat(201))).len(), 36);
    }

    #[test]
    fn peers_carry_the_service_timeout() {
        let peer = peer(&upstream(9)).expect("peer");
        assert_eq!(peer.options.read_timeout, Some(Duration::from_millis(500)));
        let unresolved = upstream(9).with_addresses(vec![]);
        assert!(super::peer(&unresolved).is_err());
    }
}
