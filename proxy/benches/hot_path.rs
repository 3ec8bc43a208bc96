//! Micro-benchmarks of the per-request work: route matching in a table of
//! 10,000 routes, API-key lookup among 100,000 consumers (through the cache,
//! and hashing every time), and a Wasm plugin call (fresh instance from the
//! pool + `on-request`), and the telemetry of a request off the hot path
//! (`-- telemetry`).
//!
//! `cargo bench -p gatehouse-proxy --bench hot_path`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_protocol::{ConsumerConfig, RateLimits, RouteConfig};
use gatehouse_proxy::keys::KeyIndex;
use gatehouse_proxy::routing::RouteTable;
use sha2::{Digest, Sha256};

// The binary's allocator (src/main.rs): allocation is much of what the
// telemetry benchmark measures, and glibc's costs about twice as much.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let (table, errors) = RouteTable::build(&routes(), &RateLimits::default());
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
        b.iter(|| RouteTable::build(black_box(&routes()), &RateLimits::default()))
    });
}

/// `n` consumers, consumer `c{i}` holding the key `key_for(i)`.
fn consumers(n: usize) -> Vec<ConsumerConfig> {
    (0..n)
        .map(|i| ConsumerConfig {
            id: format!("c{i}"),
            api_key_hash: Sha256::digest(key_for(i).as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            rate_limit_tier: "free".into(),
        })
        .collect()
}

fn key_for(i: usize) -> String {
    format!("ck_benchmark_key_number_{i:08}_padding_padding")
}

fn bench_keys(c: &mut Criterion) {
    let index = KeyIndex::build(&consumers(CONSUMERS));
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

/// Per-request cost of each built-in plugin and of a tenant plugin (a fresh
/// instance per call, as on the hot path), next to the native code each
/// built-in replaced: the key lookup and the GCRA step.
fn bench_plugins(c: &mut Criterion) {
    use futures_util::FutureExt;
    use gatehouse_proxy::plugins::builtins::TESTBED;
    use gatehouse_proxy::plugins::{
        Builtins, CallContext, EngineSettings, Header, PluginEngine, Request, RequestAction,
    };
    use gatehouse_proxy::ratelimit::LocalGcra;
    use std::sync::Arc;

    let engine = PluginEngine::new(EngineSettings::default()).expect("engine");
    let consumers = consumers(1_000);
    let keys = Arc::new(KeyIndex::build(&consumers));
    let request = Request {
        method: "GET".into(),
        path: "/users/1".into(),
        query: String::new(),
        headers: vec![Header {
            name: "x-api-key".into(),
            value: key_for(500),
        }],
        client_ip: "127.0.0.1".into(),
        route_id: "r1".into(),
        consumer_id: Some("c500".into()),
    };
    let context = |config: &str| CallContext {
        tenant: Arc::from("t"),
        config_json: Arc::from(config),
        keys: Some(Arc::clone(&keys)),
        ..CallContext::default()
    };
    let builtins = Builtins::load(&engine, Arc::default(), true).expect("built-ins");
    let testbed = engine.load("testbed", TESTBED).expect("loads");
    // Tenant plugins in JavaScript and Python (`benches/plugin-languages.sh`
    // builds the `gatehouse plugin new` templates, which set one header from
    // their config, and names their directory here).
    let languages: Vec<_> = std::env::var_os("GATEHOUSE_BENCH_PLUGINS")
        .map(std::path::PathBuf::from)
        .into_iter()
        .flat_map(|dir| {
            [
                ("tenant_js_header", "hello-js.wasm"),
                ("tenant_python_header", "hello-python.wasm"),
            ]
            .map(|(name, file)| {
                let bytes = std::fs::read(dir.join(file)).expect("a built template");
                (name, engine.load(name, &bytes).expect("loads"))
            })
        })
        .collect();
    let mut group = c.benchmark_group("plugins");
    // The built-ins as the node runs them (instances kept between calls);
    // tenant plugins with a fresh instance per call.
    let mut cases = vec![
        ("api_key_auth", &builtins.api_key_auth, ""),
        (
            "rate_limit",
            &builtins.rate_limit,
            r#"{"override":null,"tiers":{"free":1000000000,"unlimited":null}}"#,
        ),
        ("tenant_testbed_header", &testbed, r#"{"mode": "header"}"#),
    ];
    let header = r#"{"header": "x-hello", "value": "world"}"#;
    cases.extend(
        languages
            .iter()
            .map(|(name, plugin)| (*name, plugin, header)),
    );
    for (name, plugin, config) in cases {
        let ctx = context(config);
        group.bench_function(name, |b| {
            b.iter(|| {
                let action = plugin
                    .on_request(black_box(&ctx), black_box(&request))
                    .now_or_never()
                    .expect("no I/O")
                    .expect("runs");
                assert!(matches!(action, RequestAction::Proceed(_)));
            })
        });
    }
    // The request log's input: a finished request.
    let request_log = builtins.request_log.as_ref().expect("request logs on");
    let finished = Box::new(finished_request());
    group.bench_function("native_finished_request_clone", |b| {
        b.iter(|| black_box(&finished).clone())
    });
    let key = key_for(500);
    group.bench_function("native_key_lookup", |b| {
        b.iter(|| keys.lookup(black_box(&key)).expect("known"))
    });
    let gcra = LocalGcra::default();
    group.bench_function("native_gcra_step", |b| {
        b.iter(|| gcra.check(black_box("consumer:c500"), 1_000_000_000))
    });
    group.finish();

    // The request log runs once per batch: its cost per request, for one
    // request alone and in a batch of 500 (as a busy node seals them).
    let mut group = c.benchmark_group("request_log");
    for batch in [1_u64, 500] {
        group.throughput(criterion::Throughput::Elements(batch));
        group.bench_function(format!("batch_of_{batch}"), |b| {
            b.iter_batched(
                || vec![finished.clone(); batch as usize],
                |mut requests| {
                    let shipped = request_log
                        .log_requests(&builtins.log_context, black_box(&mut requests))
                        .now_or_never()
                        .expect("no I/O")
                        .expect("runs");
                    assert_eq!(shipped.len(), batch as usize);
                    shipped
                },
                criterion::BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// The background thread's work for each request of a busy node, per
/// request, in batches of 2,000 (as a node at full load seals them): into
/// the aggregator (minute metrics, the log record), sealed, through the
/// request log, encoded into the outbox (and acked, so memory stays flat).
fn bench_telemetry(c: &mut Criterion) {
    use futures_util::FutureExt;
    use gatehouse_proxy::metrics::Metrics;
    use gatehouse_proxy::plugins::request_log::RequestLog;
    use gatehouse_proxy::plugins::{Builtins, EngineSettings, PluginEngine};
    use gatehouse_proxy::telemetry::Event;
    use gatehouse_proxy::telemetry::aggregator::{Aggregator, MAX_LOGS_PER_BATCH, Sealed};
    use gatehouse_proxy::telemetry::outbox::{Outbox, OutboxLimits};
    use std::sync::Arc;

    let engine = PluginEngine::new(EngineSettings::default()).expect("engine");
    let builtins = Builtins::load(&engine, Arc::default(), true).expect("built-ins");
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let request_log = RequestLog::of(&builtins, &metrics).expect("request logs on");
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-outbox-{}", std::process::id()));
    let mut outbox = Outbox::open(
        &dir,
        OutboxLimits {
            memory_records: 1_000_000,
            spill_bytes: 1 << 30,
        },
    )
    .expect("outbox");
    let mut aggregator = Aggregator::new("n1".into(), true);
    let outcome = finished_request();
    let mut group = c.benchmark_group("telemetry");
    group.throughput(criterion::Throughput::Elements(MAX_LOGS_PER_BATCH as u64));
    group.bench_function(format!("batch_of_{MAX_LOGS_PER_BATCH}"), |b| {
        b.iter_batched(
            || vec![Event::Request(Box::new(outcome.clone())); MAX_LOGS_PER_BATCH],
            |events| {
                for event in events {
                    aggregator.add(event);
                }
                let Sealed {
                    mut batch,
                    finished,
                } = aggregator.seal().expect("a batch");
                batch.logs = request_log
                    .ship(finished, &mut batch.errors, 0)
                    .now_or_never()
                    .expect("no I/O");
                assert_eq!(batch.logs.len(), MAX_LOGS_PER_BATCH);
                let id = batch.batch_id.clone();
                outbox.push(batch);
                outbox.ack(&id);
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A finished request as the hot path hands it to telemetry: ids of a
/// route, a service and a consumer, a query string that is not logged.
fn finished_request() -> gatehouse_proxy::telemetry::RequestOutcome {
    use gatehouse_proxy::keys::ConsumerId;
    use std::sync::Arc;
    let id = || uuid::Uuid::new_v4().to_string();
    gatehouse_proxy::telemetry::RequestOutcome {
        request_id: id(),
        method: http::Method::GET,
        uri: http::Uri::from_static("/users/1?expand=orders"),
        route_id: Some(Arc::from(id())),
        service_id: Some(Arc::from(id())),
        consumer_id: Some(ConsumerId::new(&id())),
        status: 200,
        latency_ms: 0.421,
        client_ip: "127.0.0.1".into(),
        bytes_in: 0,
        bytes_out: 1024,
        at_ms: gatehouse_proxy::telemetry::aggregator::now_ms(),
        failure: None,
    }
}

/// A rate-limit decision on the node and over Redis (`GATEHOUSE_BENCH_REDIS`,
/// default `redis://127.0.0.1:6379/`; skipped when it does not answer).
fn bench_limit_decisions(c: &mut Criterion) {
    use gatehouse_proxy::metrics::Metrics;
    use gatehouse_proxy::ratelimit::{Fleet, FleetSize, RateLimiter};
    use gatehouse_proxy::telemetry::Telemetry;
    use std::sync::Arc;
    use std::time::Duration;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let local = RateLimiter::local();
    let mut group = c.benchmark_group("limit_decision");
    group.bench_function("local", |b| {
        b.iter(|| runtime.block_on(local.check("t", black_box("consumer:c1"), 1_000_000_000)))
    });
    let url = std::env::var("GATEHOUSE_BENCH_REDIS")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let (telemetry, _events) = Telemetry::new();
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let fleet = Arc::new(
        Fleet::new(&url, Duration::from_millis(50), telemetry, metrics).expect("redis url"),
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let maintain = Arc::clone(&fleet);
    runtime.spawn(async move { maintain.maintain(stop).await });
    let shared = RateLimiter::shared(Arc::clone(&fleet), Arc::new(FleetSize::default()));
    let connected = runtime.block_on(async {
        for _ in 0..50 {
            if fleet.check("bench", "probe", 1_000_000_000).await.is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    });
    if connected {
        group.bench_function("redis", |b| {
            b.iter(|| {
                runtime.block_on(shared.check("bench", black_box("consumer:c1"), 1_000_000_000))
            })
        });
    } else {
        eprintln!("limit_decision/redis skipped: no Redis at {url}");
    }
    group.finish();
    let _ = stop_tx.send(true);
}

criterion_group!(
    benches,
    bench_routing,
    bench_keys,
    bench_plugins,
    bench_telemetry,
    bench_limit_decisions
);
criterion_main!(benches);
