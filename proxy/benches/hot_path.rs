//! Micro-benchmarks of the per-request work: route matching in a table of
//! 10,000 routes, API-key lookup among 100,000 consumers (through the cache,
//! and hashing every time), and a Wasm plugin call (fresh instance from the
//! pool + `on-request`).
//!
//! `cargo bench -p gatehouse-proxy --bench hot_path`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_protocol::{ConsumerConfig, RouteConfig};
use gatehouse_proxy::keys::KeyIndex;
use gatehouse_proxy::routing::RouteTable;
use sha2::{Digest, Sha256};

const ROUTES: usize = 10_000;
const CONSUMERS: usize = 100_000;

fn routes() -> Vec<RouteConfig> {
    (0..ROUTES)
        .map(|i| {
            let (method, pattern) = match i % 4 {
                0 => ("GET", format!("/svc{i}/items")),
                1 => ("GET", format!("/svc{i}/items/:id")),
                2 => ("POST", format!("/svc{i}/items/:id/actions/:action")),
                _ => ("ANY", format!("/svc{i}/static/*")),
            };
            RouteConfig {
                id: format!("r{i}"),
                method: method.into(),
                path_pattern: pattern,
                service_id: "s".into(),
                auth_required: true,
                rate_limit_override: None,
                enabled: true,
                plugins: vec![],
            }
        })
        .collect()
}

fn bench_routing(c: &mut Criterion) {
    let (table, errors) = RouteTable::build(&routes());
    assert!(errors.is_empty());
    let mut group = c.benchmark_group("route_match_10k");
    group.bench_function("exact", |b| {
        b.iter(|| table.lookup(black_box("GET"), black_box("/svc5000/items")))
    });
    group.bench_function("param", |b| {
        b.iter(|| table.lookup(black_box("GET"), black_box("/svc5001/items/42")))
    });
    group.bench_function("two_params", |b| {
        b.iter(|| {
            table.lookup(
                black_box("POST"),
                black_box("/svc5002/items/42/actions/ship"),
            )
        })
    });
    group.bench_function("wildcard_any", |b| {
        b.iter(|| table.lookup(black_box("GET"), black_box("/svc5003/static/css/site.css")))
    });
    group.bench_function("miss", |b| {
        b.iter(|| table.lookup(black_box("GET"), black_box("/nowhere/at/all")))
    });
    group.finish();
    c.bench_function("route_table_build_10k", |b| {
        b.iter(|| RouteTable::build(black_box(&routes())))
    });
}

fn bench_keys(c: &mut Criterion) {
    let consumers: Vec<ConsumerConfig> = (0..CONSUMERS)
        .map(|i| {
            let key = format!("ck_benchmark_key_number_{i:08}_padding_padding");
            ConsumerConfig {
                id: format!("c{i}"),
                api_key_hash: Sha256::digest(key.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
                rate_limit_tier: "free".into(),
            }
        })
        .collect();
    let index = KeyIndex::build(&consumers);
    let key = "ck_benchmark_key_number_00050000_padding_padding";
    assert!(index.lookup(key).is_some());
    let mut group = c.benchmark_group("key_lookup_100k");
    group.bench_function("cached_hit", |b| b.iter(|| index.lookup(black_box(key))));
    group.bench_function("cached_miss", |b| {
        b.iter(|| index.lookup(black_box("ck_unknown")))
    });
    group.bench_function("uncached_hash_and_lookup", |b| {
        b.iter(|| index.lookup_uncached(black_box(key)))
    });
    group.finish();
}

fn bench_plugins(c: &mut Criterion) {
    use gatehouse_proxy::plugins::{CallContext, EngineSettings, Header, PluginEngine, Request};
    const TESTBED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/testbed.wasm"));
    let engine = PluginEngine::new(EngineSettings::default()).expect("engine");
    let plugin = engine.load("testbed", TESTBED).expect("loads");
    let request = Request {
        method: "GET".into(),
        path: "/users/1".into(),
        query: String::new(),
        headers: vec![Header {
            name: "x-api-key".into(),
            value: "ck_x".into(),
        }],
        client_ip: "127.0.0.1".into(),
        route_id: "r1".into(),
        consumer_id: None,
    };
    let ctx = CallContext {
        config_json: r#"{"mode": "header"}"#.into(),
        ..CallContext::default()
    };
    c.bench_function("plugin_on_request_fresh_instance", |b| {
        b.iter(|| {
            plugin
                .on_request(black_box(&ctx), black_box(&request))
                .expect("runs")
        })
    });
}

criterion_group!(benches, bench_routing, bench_keys, bench_plugins);
criterion_main!(benches);
