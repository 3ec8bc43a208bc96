//! Example plugin: adds headers from its route config. Request headers go
//! upstream (`on-request`); response headers go to the client
//! (`on-response`). Config:
//! `{"request": {"x-team": "payments"}, "response": {"x-served-by": "gatehouse"}}`.

wit_bindgen::generate!({ world: "plugin", path: "../../../wit" });

use std::collections::BTreeMap;

use gatehouse::plugin::config;
use gatehouse::plugin::types::{Header, Hooks, RequestChanges, ResponseChanges};
use serde::Deserialize;

#[derive(Default, Deserialize)]
#[serde(default)]
struct Settings {
    request: BTreeMap<String, String>,
    response: BTreeMap<String, String>,
}

fn settings() -> Settings {
    serde_json::from_str(&config::get_json()).unwrap_or_default()
}

fn headers(map: BTreeMap<String, String>) -> Vec<Header> {
    map.into_iter().map(|(name, value)| Header { name, value }).collect()
}

struct AddHeader;

impl Guest for AddHeader {
    fn describe() -> PluginInfo {
        PluginInfo { name: "add-header".into(), version: "0.1.0".into(), hooks: Hooks::ON_REQUEST | Hooks::ON_RESPONSE }
    }

    fn on_request(_request: Request) -> RequestAction {
        RequestAction::Proceed(RequestChanges {
            set_headers: headers(settings().request),
            remove_headers: vec![],
            rewrite_path: None,
            consumer_id: None,
            response_headers: vec![],
        })
    }

    fn on_response(_request: Request, _response: Response) -> ResponseAction {
        ResponseAction::Modify(ResponseChanges { set_headers: headers(settings().response), remove_headers: vec![] })
    }

    fn on_log(_entry: LogEntry) {}
}

export!(AddHeader);
