//! Telemetry ingestion throughput: batches of request logs stored through
//! the real ingestion path (one transaction, dedup row, multi-row inserts)
//! into SQLite and PostgreSQL.
//!
//! `cargo bench -p gatehouse-control --bench ingest` (PostgreSQL at
//! GATEHOUSE_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres).
//! Criterion prints rows per second (thrpt): one batch of 2,000 at a time on
//! each database, and on PostgreSQL also as the control plane stores a
//! node's batches, `POSTGRES_IN_FLIGHT` at once.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gatehouse_control::accounts;
use gatehouse_control::gateway::ingesting::{Ingesting, POSTGRES_IN_FLIGHT};
use gatehouse_control::instruments::Instruments;
use gatehouse_control::store::Store;
use gatehouse_control::telemetry;
use gatehouse_protocol::telemetry::{LogRecord, TelemetryBatch};
use sqlx::Executor;

const ROWS: usize = 2_000;

fn batch() -> TelemetryBatch {
    let now = 1_800_000_000_000;
    TelemetryBatch {
        batch_id: uuid::Uuid::new_v4().to_string(),
        node_id: "bench-node".into(),
        logs: (0..ROWS)
            .map(|i| LogRecord {
                id: String::new(),
                request_id: uuid::Uuid::new_v4().to_string(),
                method: "GET".into(),
                path: format!("/items/{}", i % 100),
                route_id: Some("6f1c1c52-3d1e-4c55-8a8e-0d5b5f2a9a10".into()),
                service_id: Some("0b0a8a36-9d1c-4a4e-9d9e-1f3b5f2a9a11".into()),
                consumer_id: None,
                status_code: 200,
                latency_ms: 1.5,
                client_ip: "10.1.2.3".into(),
                bytes_in: 0,
                bytes_out: 1024,
                at_ms: now + i as i64,
            })
            .collect(),
        ..TelemetryBatch::default()
    }
}

async fn store(url: &str) -> (Store, String) {
    let store = Store::open(url).await.expect("store");
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let tenant = accounts::create_tenant(&store, "bench", &email, "bench-password")
        .await
        .expect("tenant");
    (store, tenant.tenant_id)
}

fn bench_ingest(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = std::env::temp_dir().join(format!("gh-bench-{}", uuid::Uuid::new_v4().simple()));
    let admin_url = std::env::var("GATEHOUSE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let db = format!("gh_bench_{}", uuid::Uuid::new_v4().simple());
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&admin_url)
            .await
            .expect("PostgreSQL");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .await
            .expect("create db");
    });
    let server = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(s, _)| s)
        .to_owned();
    let targets = [
        ("sqlite", format!("sqlite://{}/bench.db", dir.display())),
        ("postgres", format!("{server}/{db}")),
    ];
    let mut group = c.benchmark_group("ingest_2000_logs");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(20);
    let mut postgres = None;
    for (name, url) in targets {
        let (store, tenant) = runtime.block_on(store(&url));
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_batched(
                batch,
                |batch| {
                    let (store, tenant) = (&store, &tenant);
                    async move {
                        black_box(
                            telemetry::ingest(store, tenant, &batch)
                                .await
                                .expect("ingest"),
                        )
                    }
                },
                criterion::BatchSize::SmallInput,
            )
        });
        if name == "postgres" {
            postgres = Some((store, tenant));
        } else {
            runtime.block_on(store.close());
        }
    }
    group.finish();
    if let Some((store, tenant)) = postgres {
        at_once(c, &runtime, &store, &tenant);
        runtime.block_on(store.close());
    }
    runtime.block_on(async {
        let admin = sqlx::AnyPool::connect(&admin_url)
            .await
            .expect("PostgreSQL");
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .await
            .ok();
    });
    std::fs::remove_dir_all(dir).ok();
}

/// Batches stored as the control plane stores a node's: `POSTGRES_IN_FLIGHT`
/// at once, each acknowledged as it finishes.
fn at_once(c: &mut Criterion, runtime: &tokio::runtime::Runtime, store: &Store, tenant: &str) {
    let mut group = c.benchmark_group(format!("ingest_{POSTGRES_IN_FLIGHT}x{ROWS}_logs_at_once"));
    group.throughput(Throughput::Elements((ROWS * POSTGRES_IN_FLIGHT) as u64));
    group.sample_size(20);
    let instruments = &Instruments::new(store).expect("metrics");
    group.bench_function("postgres", |b| {
        b.to_async(runtime).iter_batched(
            || (0..POSTGRES_IN_FLIGHT).map(|_| batch()).collect::<Vec<_>>(),
            |batches| async move {
                let mut ingesting = Ingesting::new(store.clone(), instruments.clone(), tenant);
                for batch in batches {
                    ingesting.start(batch);
                }
                for _ in 0..POSTGRES_IN_FLIGHT {
                    black_box(ingesting.next().await.1.expect("ingest"));
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_ingest);
criterion_main!(benches);
