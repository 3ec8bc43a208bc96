//! {{name}}: a Gatehouse plugin. `on-request` sets one request header from
//! the plugin's config on the route, `{"header": "x-hello", "value":
//! "world"}` (those are the defaults), before the request goes upstream.
//! `wit/plugin.wit` is the contract: what each hook may answer and each
//! host call does.

wit_bindgen::generate!({ world: "plugin", path: "wit" });

use gatehouse::plugin::config;
use gatehouse::plugin::types::{Header, Hooks, RequestChanges, ResponseChanges};

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo { name: "{{name}}".into(), version: "0.1.0".into(), hooks: Hooks::ON_REQUEST }
    }

    fn on_request(_request: Request) -> RequestAction {
        let config: serde_json::Value = serde_json::from_str(&config::get_json()).unwrap_or_default();
        let field = |name: &str, default: &str| config[name].as_str().unwrap_or(default).to_owned();
        RequestAction::Proceed(RequestChanges {
            set_headers: vec![Header { name: field("header", "x-hello"), value: field("value", "world") }],
            remove_headers: vec![],
            rewrite_path: None,
            consumer_id: None,
            response_headers: vec![],
        })
    }

    // Not declared in `describe`: the node never calls these two.
    fn on_response(_request: Request, _response: Response) -> ResponseAction {
        ResponseAction::Modify(ResponseChanges { set_headers: vec![], remove_headers: vec![] })
    }

    fn on_log(_entry: LogEntry) {}
}

export!(Plugin);
