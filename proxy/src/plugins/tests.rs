//! The host against real components: the `testbed` plugin of `plugins/`,
//! built by the build script, behaving and misbehaving on purpose.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_protocol::ConsumerConfig;
use gatehouse_protocol::telemetry::LogRecord;
use sha2::{Digest, Sha256};

use super::breaker::Hook;
use super::*;
use crate::keys::KeyIndex;
use crate::telemetry::{RequestOutcome, ShippedLog};

const TESTBED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/testbed.wasm"));

fn engine() -> PluginEngine {
    engine_with_deadline(Duration::from_millis(20))
}

fn engine_with_deadline(call_deadline: Duration) -> PluginEngine {
    PluginEngine::new(EngineSettings {
        call_deadline,
        max_memory: 8 << 20,
        max_instances: 16,
        breaker: breaker::BreakerSettings {
            failures: 3,
            cooldown: Duration::from_millis(200),
        },
    })
    .expect("engine")
}

fn request() -> Request {
    Request {
        method: "GET".into(),
        path: "/users/1".into(),
        query: String::new(),
        headers: vec![Header {
            name: "x-api-key".into(),
            value: "ck_good".into(),
        }],
        client_ip: "127.0.0.1".into(),
        route_id: "r1".into(),
        consumer_id: None,
    }
}

fn log_entry() -> LogEntry {
    LogEntry {
        request_id: "req-1".into(),
        method: "GET".into(),
        path: "/users/1".into(),
        route_id: Some("r1".into()),
        consumer_id: None,
        status: 200,
        latency_ms: 1.0,
    }
}

fn mode(mode: &str) -> CallContext {
    CallContext {
        config_json: format!(r#"{{"mode": "{mode}"}}"#).into(),
        ..CallContext::default()
    }
}

#[tokio::test]
async fn a_well_behaved_plugin_changes_the_request() {
    let engine = engine();
    let plugin = engine.load("testbed", TESTBED).expect("loads");
    let info = plugin.describe().await.expect("describes");
    assert_eq!(info.name, "testbed");
    match plugin
        .on_request(&mode("header"), &request())
        .await
        .expect("runs")
    {
        RequestAction::Proceed(changes) => {
            assert_eq!(changes.set_headers[0].name, "x-testbed");
            assert_eq!(changes.set_headers[0].value, "GET /users/1");
        }
        other => panic!("expected proceed, got {other:?}"),
    }
    match plugin
        .on_request(&mode("deny"), &request())
        .await
        .expect("runs")
    {
        RequestAction::Respond(response) => assert_eq!(response.status, 403),
        other => panic!("expected a local response, got {other:?}"),
    }
}

/// The value of header `name` a proceeding answer sets.
fn set_header(action: &RequestAction, name: &str) -> Option<String> {
    let RequestAction::Proceed(changes) = action else {
        return None;
    };
    let header = changes.set_headers.iter().find(|h| h.name == name)?;
    Some(header.value.clone())
}

/// A component built against the 0.1.0 release loads and runs on a node
/// linking 0.2.0, with its counters and key-value its own: the 0.2.0
/// testbed's of the same names are another plugin's.
#[tokio::test]
async fn a_component_of_the_earlier_release_loads_and_keeps_its_own_state() {
    let engine = engine();
    let legacy = engine
        .load("testbed-0-1", builtins::TESTBED_0_1)
        .expect("a 0.1.0 component loads");
    let testbed = engine.load("testbed", TESTBED).expect("loads");
    let ctx = mode("state");
    for round in 1..=2 {
        let old = legacy.on_request(&ctx, &request()).await.expect("runs");
        let new = testbed.on_request(&ctx, &request()).await.expect("runs");
        assert_eq!(set_header(&old, "x-legacy-hits"), Some(round.to_string()));
        assert_eq!(set_header(&new, "x-hits"), Some(round.to_string()));
    }
}

/// Two of the tenant's plugins uploaded from the same bytes run as one
/// loaded component, but each call is its plugin's: their stores are apart.
#[tokio::test]
async fn plugins_sharing_a_component_keep_their_own_state() {
    let engine = engine();
    let testbed = engine.load("testbed", TESTBED).expect("loads");
    let base = mode("state");
    let (one, other) = (
        base.for_plugin(&Arc::from("one"), Arc::clone(&base.config_json)),
        base.for_plugin(&Arc::from("other"), Arc::clone(&base.config_json)),
    );
    for round in 1..=2 {
        for ctx in [&one, &other] {
            let action = testbed.on_request(ctx, &request()).await.expect("runs");
            assert_eq!(set_header(&action, "x-hits"), Some(round.to_string()));
        }
    }
}

#[tokio::test]
async fn plugins_look_consumers_up_through_the_host() {
    let engine = engine();
    let plugin = engine.load("testbed", TESTBED).expect("loads");
    let keys = KeyIndex::build(&[ConsumerConfig {
        id: "c1".into(),
        api_key_hash: Sha256::digest(b"ck_good")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        rate_limit_tier: "pro".into(),
    }]);
    let ctx = CallContext {
        keys: Some(Arc::new(keys)),
        ..mode("consumer")
    };
    match plugin.on_request(&ctx, &request()).await.expect("runs") {
        RequestAction::Proceed(changes) => assert_eq!(changes.consumer_id.as_deref(), Some("c1")),
        other => panic!("expected proceed, got {other:?}"),
    }
}

#[tokio::test]
async fn loops_are_cut_at_the_deadline() {
    let engine = engine();
    let plugin = engine.load("testbed", TESTBED).expect("loads");
    assert_loop_is_cut(&plugin).await;
    // The engine is unharmed: the next call works.
    assert!(plugin.on_request(&mode("header"), &request()).await.is_ok());
}

/// The epoch ticker parks while no call runs; a call that loops after it
/// parked is still cut at its deadline (the call wakes it).
#[tokio::test]
async fn a_loop_is_cut_when_the_ticker_was_parked() {
    let engine = engine();
    let plugin = engine.load("testbed", TESTBED).expect("loads");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !engine.ticker_parked() {
        assert!(Instant::now() < deadline, "the idle ticker never parked");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_loop_is_cut(&plugin).await;
}

/// Calls the testbed's endless loop: it ends as a timeout, cut short, not
/// run to completion.
async fn assert_loop_is_cut(plugin: &LoadedPlugin) {
    let started = Instant::now();
    let failure = plugin
        .on_request(&mode("loop"), &request())
        .await
        .expect_err("times out");
    assert_eq!(failure.reason(), "timeout", "{failure}");
    assert!(started.elapsed() < Duration::from_secs(2), "cut late");
}

#[tokio::test]
async fn runaway_allocation_hits_the_memory_cap() {
    // Time enough to reach the cap: growing to 8 MB in a debug build with
    // the other tests running took more than the usual 20 ms at times,
    // and the call ended as a timeout instead.
    let engine = engine_with_deadline(Duration::from_secs(5));
    let plugin = engine.load("testbed", TESTBED).expect("loads");
    let failure = plugin
        .on_request(&mode("hog"), &request())
        .await
        .expect_err("out of memory");
    assert_eq!(failure.reason(), "out_of_memory", "{failure}");
    assert!(plugin.on_request(&mode("header"), &request()).await.is_ok());
}

#[tokio::test]
async fn panics_are_traps_not_crashes() {
    let engine = engine();
    let plugin = engine.load("testbed", TESTBED).expect("loads");
    let failure = plugin
        .on_request(&mode("panic"), &request())
        .await
        .expect_err("traps");
    assert_eq!(failure.reason(), "trap", "{failure}");
    for _ in 0..50 {
        assert!(
            plugin.on_request(&mode("header"), &request()).await.is_ok(),
            "instances are recycled cleanly"
        );
    }
}

#[test]
fn bad_bytes_and_other_worlds_are_refused_at_load() {
    let engine = engine();
    assert!(matches!(
        engine.load("junk", b"not wasm at all"),
        Err(engine::LoadError::Compile(_))
    ));
    // A core module is not a component.
    let core_module = b"\0asm\x01\0\0\0";
    assert!(engine.load("core", core_module).is_err());
    // A component of another world: no gatehouse exports.
    let empty_component = b"\0asm\x0d\0\x01\0";
    assert!(matches!(
        engine.load("empty", empty_component),
        Err(engine::LoadError::World(_))
    ));
}

#[test]
fn exports_of_the_wrong_type_are_refused_at_load() {
    let mistyped = wat::parse_str(runtime::tests::MISTYPED_EXPORTS).expect("a component");
    let refused = engine().load("mistyped", &mistyped);
    assert!(
        matches!(&refused, Err(engine::LoadError::World(m)) if m.contains("type-checking export func `describe`")),
        "{refused:?}"
    );
}

fn finished_request(path: &str) -> Box<RequestOutcome> {
    Box::new(RequestOutcome::example(path))
}

fn records(logs: &[ShippedLog]) -> Vec<LogRecord> {
    logs.iter().map(ShippedLog::record).collect()
}

#[tokio::test]
async fn the_request_log_ships_a_batch_with_client_fields_cut_to_size() {
    let engine = engine();
    let log = engine
        .load_builtin("request-log", builtins::REQUEST_LOG)
        .expect("loads")
        .reusing_instances();
    assert!(log.implements(Hooks::ON_LOG));
    assert!(!log.implements(Hooks::ON_REQUEST));
    for _ in 0..2 {
        let measured = vec![finished_request("/users/1"), finished_request("/users/2")];
        let mut finished = measured.clone();
        let shipped = log
            .log_requests(&CallContext::default(), &mut finished)
            .await
            .expect("runs");
        assert!(finished.is_empty(), "moved into the answer");
        assert!(
            shipped
                .iter()
                .all(|log| matches!(log, ShippedLog::Measured(_))),
            "shipped as measured, nothing copied"
        );
        let as_measured: Vec<_> = measured.into_iter().map(ShippedLog::Measured).collect();
        assert_eq!(records(&shipped), records(&as_measured), "in order");
    }
    // A client's 10 KB path of two-byte characters and a long method: cut
    // at a character boundary, marked; the short record beside them kept.
    let mut long = finished_request(&format!("/{}", "é".repeat(5000)));
    long.method = http::Method::from_bytes("M".repeat(100).as_bytes()).expect("a method");
    let mut finished = vec![long.clone(), finished_request("/short")];
    let shipped = records(
        &log.log_requests(&CallContext::default(), &mut finished)
            .await
            .expect("runs"),
    );
    assert_eq!(shipped.len(), 2);
    assert!(shipped[0].path.len() <= 2048, "{}", shipped[0].path.len());
    assert!(shipped[0].path.len() > 2000);
    assert!(shipped[0].path.ends_with('…'));
    assert!(shipped[0].method.len() <= 32 && shipped[0].method.ends_with('…'));
    assert_eq!(
        shipped[1],
        records(&[ShippedLog::Measured(finished_request("/short"))])[0]
    );
    assert_eq!(
        shipped[0],
        LogRecord {
            path: shipped[0].path.clone(),
            method: shipped[0].method.clone(),
            ..records(&[ShippedLog::Measured(long)])[0].clone()
        },
        "only what a client controls is cut"
    );
    // An empty batch ships nothing.
    let shipped = log
        .log_requests(&CallContext::default(), &mut Vec::new())
        .await
        .expect("runs");
    assert!(shipped.is_empty());
}

#[test]
fn the_request_log_is_not_for_tenant_plugins() {
    // Linked as a tenant plugin, the request log's import is unknown.
    let refused = engine().load("request-log", builtins::REQUEST_LOG);
    assert!(
        matches!(&refused, Err(engine::LoadError::World(m)) if m.contains("request-logs")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_plugin_that_keeps_failing_is_tripped_then_tried_again() {
    let engine = engine();
    let plugin = engine.load("testbed", TESTBED).expect("loads");
    for _ in 0..3 {
        let failure = plugin
            .on_request(&mode("panic"), &request())
            .await
            .expect_err("traps");
        assert_eq!(failure.reason(), "trap");
        // Another hook's successes do not reset this hook's breaker.
        assert!(plugin.on_log(&mode("panic"), &log_entry()).await.is_ok());
    }
    assert!(plugin.circuit_open("", Hook::Request));
    assert!(!plugin.circuit_open("", Hook::Log));
    // Open: even a good call is refused at once, without running.
    let refused = plugin
        .on_request(&mode("header"), &request())
        .await
        .expect_err("circuit open");
    assert_eq!(refused.reason(), "circuit_open");
    // After the cooldown one trial goes through and closes it.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(plugin.on_request(&mode("header"), &request()).await.is_ok());
    assert!(!plugin.circuit_open("", Hook::Request));
}

/// An answer the chain refuses is a failure of the call for the breaker,
/// which is the plugin's own: another plugin loaded from the same bytes
/// keeps its circuit closed.
#[tokio::test]
async fn invalid_answers_trip_the_breaker_of_their_plugin_alone() {
    let engine = engine();
    let plugin = engine.load("testbed", TESTBED).expect("loads");
    let of = |name: &str, mode_name: &str| {
        mode(mode_name).for_plugin(&Arc::from(name), mode(mode_name).config_json)
    };
    let checked = output::check_request;
    for _ in 0..3 {
        let failure = plugin
            .on_request_checked(&of("one", "garbage"), &request(), checked)
            .await
            .expect_err("an invalid answer");
        assert_eq!(failure.reason(), "invalid_output");
    }
    assert!(plugin.circuit_open("one", Hook::Request));
    let refused = plugin
        .on_request_checked(&of("one", "header"), &request(), checked)
        .await
        .expect_err("circuit open");
    assert_eq!(refused.reason(), "circuit_open");
    assert!(!plugin.circuit_open("other", Hook::Request));
    plugin
        .on_request_checked(&of("other", "header"), &request(), checked)
        .await
        .expect("another plugin's circuit is closed");
}

/// A call checks rates at most 32 times: the 33rd check traps it.
#[tokio::test]
async fn a_plugin_checking_rates_in_a_loop_traps() {
    let engine = engine_with_deadline(Duration::from_secs(2));
    let plugin = engine.load("testbed", TESTBED).expect("loads");
    let failure = plugin
        .on_request(&mode("rate-loop"), &request())
        .await
        .expect_err("traps");
    assert_eq!(failure.reason(), "trap");
    assert!(
        failure
            .to_string()
            .contains("more than 32 check-rate calls"),
        "{failure}"
    );
    let within = plugin
        .on_request(&mode("rate-32"), &request())
        .await
        .expect("32 checks are allowed");
    assert!(matches!(within, RequestAction::Proceed(_)));
    // A 0.1.0 component is held to the same cap.
    let legacy = engine
        .load("testbed-0-1", builtins::TESTBED_0_1)
        .expect("loads");
    let failure = legacy
        .on_request(&mode("rate-loop"), &request())
        .await
        .expect_err("traps");
    assert!(
        failure
            .to_string()
            .contains("more than 32 check-rate calls"),
        "{failure}"
    );
}

#[tokio::test]
async fn only_the_hooks_a_plugin_declares_are_called() {
    let engine = engine();
    let testbed = engine.load("testbed", TESTBED).expect("loads");
    assert!(testbed.implements(Hooks::ON_REQUEST | Hooks::ON_RESPONSE | Hooks::ON_LOG));
    let auth = engine
        .load("api-key-auth", builtins::API_KEY_AUTH)
        .expect("loads");
    assert!(!auth.implements(Hooks::ON_RESPONSE));
    assert!(!auth.implements(Hooks::ON_LOG));
}

#[test]
fn an_exhausted_pool_is_back_pressure_not_a_crash() {
    let engine = std::sync::Arc::new(
        PluginEngine::new(EngineSettings {
            call_deadline: Duration::from_millis(300),
            max_memory: 8 << 20,
            max_instances: 2,
            breaker: breaker::BreakerSettings::default(),
        })
        .expect("engine"),
    );
    let plugin = std::sync::Arc::new(engine.load("testbed", TESTBED).expect("loads"));
    // Two calls loop on two threads, holding both instances of the pool.
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let plugin = std::sync::Arc::clone(&plugin);
            std::thread::spawn(move || {
                futures_util::FutureExt::now_or_never(plugin.on_request(&mode("loop"), &request()))
                    .expect("no I/O")
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let refused =
        futures_util::FutureExt::now_or_never(plugin.on_request(&mode("header"), &request()))
            .expect("no I/O")
            .expect_err("no instance free");
    assert_eq!(refused.reason(), "unavailable", "{refused}");
    for call in busy {
        let failure = call
            .join()
            .expect("thread")
            .expect_err("cut at the deadline");
        assert_eq!(failure.reason(), "timeout");
    }
    // The pool is free again and the breaker did not count the refusal.
    assert!(
        futures_util::FutureExt::now_or_never(plugin.on_request(&mode("header"), &request()))
            .expect("no I/O")
            .is_ok()
    );
}

#[tokio::test]
async fn kept_instances_serve_again_and_a_failed_one_is_dropped() {
    let engine = engine();
    let plugin = engine
        .load("testbed", TESTBED)
        .expect("loads")
        .reusing_instances();
    for _ in 0..20 {
        assert!(plugin.on_request(&mode("header"), &request()).await.is_ok());
    }
    // A trap poisons its instance: it is not kept, and the next call gets
    // a healthy one.
    let failure = plugin
        .on_request(&mode("panic"), &request())
        .await
        .expect_err("traps");
    assert_eq!(failure.reason(), "trap");
    match plugin
        .on_request(&mode("header"), &request())
        .await
        .expect("runs")
    {
        RequestAction::Proceed(changes) => assert_eq!(changes.set_headers[0].name, "x-testbed"),
        other => panic!("expected proceed, got {other:?}"),
    }
    // Each call sees its own config, not the previous call's.
    assert!(matches!(
        plugin.on_request(&mode("deny"), &request()).await,
        Ok(RequestAction::Respond(_))
    ));
}

/// A tenant plugin's call finds nothing of an earlier call: not a counter
/// in its statics, nor a static buffer it wrote (larger than the pages
/// reset in place, so some are given back instead). An instance kept
/// between calls (as the built-ins are) finds both, and the heap block the
/// earlier call left, which shows the probe sees residue when there is
/// some.
#[tokio::test]
async fn a_tenant_plugin_call_finds_nothing_an_earlier_call_left() {
    let engine = engine();
    let residue = |action: &RequestAction| {
        (
            set_header(action, "x-calls").expect("x-calls"),
            set_header(action, "x-residue").expect("x-residue"),
        )
    };
    let fresh = engine.load("testbed", TESTBED).expect("loads");
    for call in 0..50 {
        let action = fresh
            .on_request(&mode("residue"), &request())
            .await
            .expect("runs");
        assert_eq!(
            residue(&action),
            ("1".to_owned(), "clean".to_owned()),
            "call {call}"
        );
    }
    let kept = engine
        .load("testbed", TESTBED)
        .expect("loads")
        .reusing_instances();
    let first = kept.on_request(&mode("residue"), &request()).await;
    let second = kept.on_request(&mode("residue"), &request()).await;
    assert_eq!(residue(&first.expect("runs")).1, "clean");
    assert_eq!(
        residue(&second.expect("runs")),
        ("2".to_owned(), "static,heap".to_owned())
    );
}

/// The limits docs/plugins.md states, as the node's defaults (the node's
/// flags default to them too: `--plugin-deadline-ms`, `--plugin-memory-mb`).
#[test]
fn the_sandbox_defaults_are_the_documented_ones() {
    let settings = EngineSettings::default();
    assert_eq!(settings.call_deadline, Duration::from_millis(10));
    assert_eq!(settings.max_memory, 16 << 20);
    assert_eq!(settings.breaker, breaker::BreakerSettings::default());
    let flags = <crate::flags::ProxyArgs as clap::Parser>::try_parse_from([
        "gatehouse-proxy",
        "--control-url",
        "http://127.0.0.1:1",
        "--gateway-key",
        "gk_x",
    ])
    .expect("the flags parse");
    assert_eq!(flags.plugin_deadline_ms, 10);
    assert_eq!(flags.plugin_memory_mb, 16);
}
