//! The built-in rate limit, as a plugin. Which limit applies: the route's
//! override if it has one (a bucket per subject and route), else the
//! consumer's tier (a bucket per consumer), else — for a request without a
//! consumer — the tenant's anonymous limit per client IP. The host keeps the
//! buckets (GCRA, on the node or in Redis); this plugin turns the decision
//! into `RateLimit-*` headers on every response, and a 429 `rate_limited`
//! with `Retry-After` when the bucket is empty.
//!
//! Config (the node writes it per route from the tenant's settings):
//! `{"override": 100 | null, "tiers": {"free": 60, "unlimited": null},
//!   "anonymous": 60 | null}`.

wit_bindgen::generate!({ world: "plugin", path: "../../wit" });

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use gatehouse::plugin::counters::{self, LimitDecision};
use gatehouse::plugin::types::{Header, Hooks, LocalResponse, RequestChanges, ResponseChanges};
use gatehouse::plugin::{config, consumers};
use serde::Deserialize;

struct RateLimit;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Settings {
    #[serde(rename = "override")]
    route_override: Option<u64>,
    tiers: BTreeMap<String, Option<u64>>,
    anonymous: Option<u64>,
}

thread_local! {
    /// The last config parsed, by its text: the node keeps this plugin's
    /// instances between calls, so a route's settings are parsed once.
    static PARSED: RefCell<Option<(String, Rc<Settings>)>> = const { RefCell::new(None) };
}

fn settings() -> Rc<Settings> {
    let json = config::get_json();
    PARSED.with(|parsed| {
        let mut parsed = parsed.borrow_mut();
        if let Some((text, settings)) = parsed.as_ref()
            && *text == json
        {
            return Rc::clone(settings);
        }
        let settings = Rc::new(serde_json::from_str(&json).unwrap_or_default());
        *parsed = Some((json, Rc::clone(&settings)));
        settings
    })
}

const REFUSED: &str =
    r#"{"error":{"code":"rate_limited","message":"too many requests; retry after the time in Retry-After"}}"#;

/// The bucket and the limit of `request`, or `None` when it is unlimited.
fn bucket(settings: &Settings, request: &Request) -> Option<(String, u64)> {
    let (subject, limit) = match &request.consumer_id {
        Some(id) => {
            let tier_limit = || {
                let tier = consumers::by_id(id)?.rate_limit_tier;
                settings.tiers.get(&tier).copied().flatten()
            };
            (format!("consumer:{id}"), settings.route_override.or_else(tier_limit))
        }
        None => (format!("ip:{}", request.client_ip), settings.route_override.or(settings.anonymous)),
    };
    let limit = limit?;
    // An override is a limit of its own on that route only.
    let key = match settings.route_override {
        Some(_) => format!("{subject}:route:{}", request.route_id),
        None => subject,
    };
    Some((key, limit))
}

fn header(name: &str, value: u64) -> Header {
    Header { name: name.into(), value: value.to_string() }
}

fn limit_headers(decision: &LimitDecision) -> Vec<Header> {
    vec![
        header("ratelimit-limit", decision.limit),
        header("ratelimit-remaining", decision.remaining),
        header("ratelimit-reset", decision.reset_seconds),
    ]
}

impl Guest for RateLimit {
    fn describe() -> PluginInfo {
        PluginInfo { name: "rate-limit".into(), version: "0.1.0".into(), hooks: Hooks::ON_REQUEST }
    }

    fn on_request(request: Request) -> RequestAction {
        let settings = settings();
        let Some((key, limit)) = bucket(&settings, &request) else {
            return RequestAction::Proceed(RequestChanges {
                set_headers: vec![],
                remove_headers: vec![],
                rewrite_path: None,
                consumer_id: None,
                response_headers: vec![],
            });
        };
        let decision = counters::check_rate(&key, limit);
        let mut headers = limit_headers(&decision);
        if decision.allowed {
            return RequestAction::Proceed(RequestChanges {
                set_headers: vec![],
                remove_headers: vec![],
                rewrite_path: None,
                consumer_id: None,
                response_headers: headers,
            });
        }
        headers.push(header("retry-after", decision.retry_after_seconds.max(1)));
        headers.push(Header { name: "content-type".into(), value: "application/json".into() });
        RequestAction::Respond(LocalResponse { status: 429, headers, body: REFUSED.as_bytes().to_vec() })
    }

    fn on_response(_request: Request, _response: Response) -> ResponseAction {
        ResponseAction::Modify(ResponseChanges { set_headers: vec![], remove_headers: vec![] })
    }

    fn on_log(_entry: LogEntry) {}
}

export!(RateLimit);
