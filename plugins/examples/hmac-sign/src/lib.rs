//! Example plugin: signs each request so the upstream can tell it came
//! through the gateway. The signature is HMAC-SHA256, keyed with the
//! route config's secret, over
//! `METHOD \n path \n query \n consumer-id \n x-request-id`, hex, sent as
//! `x-gatehouse-signature: v1=<hex>` with `x-gatehouse-key-id`. A client's
//! own signature headers are removed first. Config:
//! `{"keyId": "k1", "secret": "..."}`; without a secret the plugin answers
//! 500 rather than forward an unsigned request.

wit_bindgen::generate!({ world: "plugin", path: "../../../wit" });

use gatehouse::plugin::config;
use gatehouse::plugin::types::{Header, Hooks, LocalResponse, RequestChanges, ResponseChanges};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Settings {
    key_id: String,
    secret: String,
}

/// What is signed, one field a line.
pub fn canonical(request: &Request) -> String {
    let request_id = request.headers.iter().find(|h| h.name == "x-request-id").map_or("", |h| h.value.as_str());
    format!(
        "{}\n{}\n{}\n{}\n{}",
        request.method,
        request.path,
        request.query,
        request.consumer_id.as_deref().unwrap_or(""),
        request_id
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct HmacSign;

impl Guest for HmacSign {
    fn describe() -> PluginInfo {
        PluginInfo { name: "hmac-sign".into(), version: "0.1.0".into(), hooks: Hooks::ON_REQUEST }
    }

    fn on_request(request: Request) -> RequestAction {
        let settings: Settings = serde_json::from_str(&config::get_json()).unwrap_or_default();
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(settings.secret.as_bytes()) else {
            unreachable!("HMAC takes keys of any length")
        };
        if settings.secret.is_empty() {
            return RequestAction::Respond(LocalResponse {
                status: 500,
                headers: vec![Header { name: "content-type".into(), value: "application/json".into() }],
                body: br#"{"error":{"code":"plugin_misconfigured","message":"hmac-sign has no secret"}}"#.to_vec(),
            });
        }
        mac.update(canonical(&request).as_bytes());
        let signature = hex(&mac.finalize().into_bytes());
        RequestAction::Proceed(RequestChanges {
            set_headers: vec![
                Header { name: "x-gatehouse-signature".into(), value: format!("v1={signature}") },
                Header { name: "x-gatehouse-key-id".into(), value: settings.key_id },
            ],
            remove_headers: vec![],
            rewrite_path: None,
            consumer_id: None,
            response_headers: vec![],
        })
    }

    fn on_response(_request: Request, _response: Response) -> ResponseAction {
        ResponseAction::Modify(ResponseChanges { set_headers: vec![], remove_headers: vec![] })
    }

    fn on_log(_entry: LogEntry) {}
}

export!(HmacSign);
