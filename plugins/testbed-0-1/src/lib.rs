//! A plugin built against the 0.1.0 release of the package (`wit/0.1.0/`),
//! for the host's tests: `on-request` counts its requests in the counter
//! `hits` and keeps the last path in the key `last`, as `x-legacy-hits` and
//! `x-legacy-last`; names the consumer of the `x-api-key` header in
//! `x-legacy-consumer`; echoes its config in `x-legacy-config`; and writes
//! one log line. With a config that says `rate-loop` it first checks a rate
//! 33 times (one more than a call may).

wit_bindgen::generate!({ world: "plugin", path: "../../wit/0.1.0" });

use gatehouse::plugin::types::{Header, Hooks, RequestChanges, ResponseChanges};
use gatehouse::plugin::{config, consumers, counters, kv, log};

struct Legacy;

fn header(name: &str, value: impl ToString) -> Header {
    Header { name: name.into(), value: value.to_string() }
}

impl Guest for Legacy {
    fn describe() -> PluginInfo {
        PluginInfo { name: "testbed-0-1".into(), version: "0.1.0".into(), hooks: Hooks::ON_REQUEST }
    }

    fn on_request(request: Request) -> RequestAction {
        if config::get_json().contains("rate-loop") {
            for _ in 0..33 {
                counters::check_rate("loop", 1_000_000);
            }
        }
        let hits = counters::increment("hits", 1);
        let last = kv::get("last").map_or_else(|| "-".into(), |v| String::from_utf8_lossy(&v).into_owned());
        kv::set("last", request.path.as_bytes());
        let consumer = request
            .headers
            .iter()
            .find(|h| h.name == "x-api-key")
            .and_then(|h| consumers::by_key(&h.value))
            .map_or_else(|| "-".into(), |c| c.id);
        log::write(log::Level::Info, "testbed-0-1 saw a request");
        RequestAction::Proceed(RequestChanges {
            set_headers: vec![
                header("x-legacy-hits", hits),
                header("x-legacy-last", last),
                header("x-legacy-consumer", consumer),
                header("x-legacy-config", config::get_json()),
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

export!(Legacy);
