//! The built-in API-key check, as a plugin: the key comes from `X-API-Key`
//! or `Authorization: Bearer`; the host looks it up (by SHA-256, in the
//! node's index); a known key proceeds with its consumer, anything else is
//! answered with 401 `invalid_api_key` in the gateway's error JSON.

wit_bindgen::generate!({ world: "plugin", path: "../../wit" });

use gatehouse::plugin::consumers;
use gatehouse::plugin::types::{Header, Hooks, LocalResponse, RequestChanges, ResponseChanges};

struct ApiKeyAuth;

const UNAUTHORIZED: &str =
    r#"{"error":{"code":"invalid_api_key","message":"send a valid API key in X-API-Key or Authorization: Bearer"}}"#;

// On a route without tenant plugins the node passes the built-ins only the
// headers they read (BUILTIN_HEADERS in proxy/src/gateway.rs): a header
// read here must be listed there.
fn key(request: &Request) -> Option<&str> {
    let header = |name: &str| request.headers.iter().find(|h| h.name == name).map(|h| h.value.trim());
    header("x-api-key").filter(|k| !k.is_empty()).or_else(|| {
        // As gatehouse_protocol::key_prefix::bearer_token reads it (the node
        // strips what this accepts): any scheme case, spaces or tabs.
        let (scheme, token) = header("authorization")?.split_once([' ', '\t'])?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_matches([' ', '\t'])).filter(|t| !t.is_empty())
    })
}

impl Guest for ApiKeyAuth {
    fn describe() -> PluginInfo {
        PluginInfo { name: "api-key-auth".into(), version: "0.1.0".into(), hooks: Hooks::ON_REQUEST }
    }

    fn on_request(request: Request) -> RequestAction {
        match key(&request).and_then(consumers::by_key) {
            Some(consumer) => RequestAction::Proceed(RequestChanges {
                set_headers: vec![],
                remove_headers: vec![],
                rewrite_path: None,
                consumer_id: Some(consumer.id),
                response_headers: vec![],
            }),
            None => RequestAction::Respond(LocalResponse {
                status: 401,
                headers: vec![Header { name: "content-type".into(), value: "application/json".into() }],
                body: UNAUTHORIZED.as_bytes().to_vec(),
            }),
        }
    }

    fn on_response(_request: Request, _response: Response) -> ResponseAction {
        ResponseAction::Modify(ResponseChanges { set_headers: vec![], remove_headers: vec![] })
    }

    fn on_log(_entry: LogEntry) {}
}

export!(ApiKeyAuth);
