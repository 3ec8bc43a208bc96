//! Logs, error events, health, metrics and gateway status: rows written
//! through the telemetry ingestion (as nodes' batches are), read back over
//! the API.

use gatehouse_control::error_events;
use gatehouse_control::gateway_status;
use gatehouse_control::metrics::{self, Period};
use gatehouse_control::store::{Store, Timestamp};
use gatehouse_control::telemetry::{self, IngestError, Retention};
use gatehouse_protocol::histogram;
use gatehouse_protocol::telemetry::{
    ErrorOccurrence, HealthResult, LogRecord, MinuteMetrics, TelemetryBatch,
};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::common::{Db, Harness, Tenant};
use crate::on_both_databases;

on_both_databases!(
    logs_page_newest_first_and_filter,
    logs_keep_every_character_they_were_sent_with,
    error_events_group_and_resolve,
    health_shows_the_latest_per_live_service,
    metrics_merge_nodes_into_buckets,
    gateway_status_follows_connections,
    batches_are_stored_once_and_whole,
    batches_stored_at_once_join_one_error_event,
    retention_deletes_old_telemetry,
);

/// Stores a batch of the tenant's node `node` through the real ingestion.
async fn ingest(
    store: &Store,
    tenant: &Tenant,
    node: &str,
    fill: impl FnOnce(&mut TelemetryBatch),
) -> bool {
    let mut batch = TelemetryBatch {
        batch_id: Uuid::new_v4().to_string(),
        node_id: node.to_owned(),
        ..TelemetryBatch::default()
    };
    fill(&mut batch);
    telemetry::ingest(store, &tenant.id, &batch)
        .await
        .expect("ingested")
}

fn log(at: i64, path: &str, status: i64, consumer: Option<&str>) -> LogRecord {
    LogRecord {
        id: Uuid::new_v4().to_string(),
        request_id: Uuid::new_v4().to_string(),
        method: "GET".to_owned(),
        path: path.to_owned(),
        route_id: None,
        service_id: None,
        consumer_id: consumer.map(str::to_owned),
        status_code: status,
        latency_ms: 1.25,
        client_ip: "127.0.0.1".to_owned(),
        bytes_in: 10,
        bytes_out: 1024,
        at_ms: at,
    }
}

async fn logs_page_newest_first_and_filter(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("logs").await;
    let other = h.register("other").await;
    let consumer = Uuid::new_v4().to_string();
    let t0 = 1_800_000_000_000_i64;
    let logs: Vec<LogRecord> = (0..120)
        .map(|i| {
            let path = if i % 2 == 0 { "/even" } else { "/odd" };
            let status = if i % 10 == 0 { 500 } else { 200 };
            let consumer = (i % 3 == 0).then_some(consumer.as_str());
            log(t0 + i * 1000, path, status, consumer)
        })
        .collect();
    ingest(h.store(), &t, "node-1", |b| b.logs = logs.clone()).await;
    ingest(h.store(), &other, "node-9", |b| {
        b.logs = (0..5).map(|i| log(t0 + i, "/even", 200, None)).collect()
    })
    .await;
    // A node resending logs in a new batch (say, after a crash) stores nothing twice.
    ingest(h.store(), &t, "node-1", |b| b.logs = logs[..10].to_vec()).await;

    let page = |query: String| {
        let h = &h;
        let t = &t;
        async move { h.get(&t.path(&format!("/logs{query}")), &t.token).await }
    };
    let first = page(String::new()).await;
    first.expect(StatusCode::OK);
    assert_eq!(first.list().len(), 50);
    assert_eq!(
        first.list()[0]["createdAt"],
        Timestamp::from_millis(t0 + 119_000).to_string()
    );
    let times: Vec<&str> = first
        .list()
        .iter()
        .map(|l| l["createdAt"].as_str().expect("time"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(page("?page=2".into()).await.list().len(), 50);
    assert_eq!(page("?page=3".into()).await.list().len(), 20);
    assert!(page("?page=4".into()).await.list().is_empty());
    assert!(first.list().iter().all(|l| l["tenantId"] == t.id.as_str()));

    let odd = page("?path=/odd".into()).await;
    assert_eq!(odd.list().len(), 50);
    assert!(odd.list().iter().all(|l| l["path"] == "/odd"));
    assert_eq!(page("?statusCode=500".into()).await.list().len(), 12);
    let by_consumer = page(format!("?consumerId={consumer}&page=1")).await;
    assert_eq!(by_consumer.list().len(), 40);
    let from = Timestamp::from_millis(t0 + 100_000);
    let to = Timestamp::from_millis(t0 + 110_000);
    let window = page(format!("?from={from}&to={to}")).await;
    assert_eq!(window.list().len(), 10, "from inclusive, to exclusive");
    let combined = page(format!("?from={from}&path=/even&statusCode=500")).await;
    assert_eq!(combined.list().len(), 2, "{}", combined.text);

    for bad in [
        "?from=yesterday",
        "?statusCode=abc",
        "?statusCode=42",
        "?page=0",
        "?page=-1",
        "?consumerId=nope",
    ] {
        let reply = page(bad.to_owned()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text
        );
        assert!(reply.body["error"]["code"].is_string());
    }
    h.finish().await;
}

async fn logs_keep_every_character_they_were_sent_with(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("characters").await;
    let t0 = 1_800_000_000_000_i64;
    // What an array literal or JSON must escape, and what looks like their syntax.
    let paths = [
        r#"/a "quoted" \back\slash\"#,
        "/{braces,commas}",
        "NULL",
        "/ünïcödé/✓",
        "/nul\0inside",
    ];
    let mut logs: Vec<LogRecord> = paths
        .iter()
        .enumerate()
        .map(|(i, path)| log(t0 + i as i64, path, 200, None))
        .collect();
    logs[0].method = "PATCH".to_owned();
    logs[1].latency_ms = 0.000_125;
    logs[2].bytes_out = i64::MAX;
    for log in &mut logs {
        log.id = String::new();
    }
    ingest(h.store(), &t, "node-1", |b| b.logs = logs.clone()).await;
    let stored = h.get(&t.path("/logs"), &t.token).await;
    let mut stored = stored.list().to_vec();
    stored.reverse();
    assert_eq!(stored.len(), paths.len(), "{stored:?}");
    for (row, sent) in stored.iter().zip(&logs) {
        let expected = sent.path.replace('\0', "\u{fffd}");
        assert_eq!(row["path"], expected.as_str());
        assert_eq!(row["method"], sent.method.as_str());
        assert_eq!(row["latencyMs"], sent.latency_ms);
        assert_eq!(row["bytesOut"], sent.bytes_out);
        assert_eq!(row["routeId"], serde_json::Value::Null);
        assert!(Uuid::parse_str(row["id"].as_str().expect("id")).is_ok());
    }
    h.finish().await;
}

async fn error_events_group_and_resolve(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("errs").await;
    let other = h.register("other").await;
    let now = Timestamp::now();
    let occurrence = |kind: &str, route: &str, offset: i64| ErrorOccurrence {
        kind: kind.to_owned(),
        detail: None,
        message: format!("{kind} on {route}"),
        route_id: Some(route.to_owned()),
        service_id: None,
        plugin_id: None,
        status_code: Some(502),
        at_ms: now.add_millis(offset).millis(),
    };
    let first = error_events::record(
        h.store(),
        &t.id,
        &occurrence("upstream_unavailable", "r1", 0),
    )
    .await
    .expect("record");
    for i in 1..5 {
        let id = error_events::record(
            h.store(),
            &t.id,
            &occurrence("upstream_unavailable", "r1", i),
        )
        .await
        .expect("record");
        assert_eq!(id, first, "repeats are grouped");
    }
    error_events::record(h.store(), &t.id, &occurrence("upstream_timeout", "r1", 10))
        .await
        .expect("record");
    error_events::record(
        h.store(),
        &t.id,
        &occurrence("upstream_unavailable", "r2", 20),
    )
    .await
    .expect("record");
    let theirs = error_events::record(
        h.store(),
        &other.id,
        &occurrence("upstream_unavailable", "r1", 0),
    )
    .await
    .expect("record");

    let all = h.get(&t.path("/errors"), &t.token).await;
    all.expect(StatusCode::OK);
    assert_eq!(all.list().len(), 3);
    let grouped = all
        .list()
        .iter()
        .find(|e| e["id"] == first.as_str())
        .expect("grouped event");
    assert_eq!(grouped["occurrences"], 5);
    assert_eq!(grouped["resolved"], false);

    h.patch(
        &t.path(&format!("/errors/{first}")),
        &t.token,
        json!({ "resolved": true }),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let resolved = h.get(&t.path("/errors?resolved=true"), &t.token).await;
    assert_eq!(resolved.list().len(), 1);
    assert_eq!(resolved.list()[0]["id"], first.as_str());
    assert!(resolved.list()[0]["resolvedAt"].is_string());
    assert_eq!(
        h.get(&t.path("/errors?resolved=false"), &t.token)
            .await
            .list()
            .len(),
        2
    );

    // A new occurrence after resolution opens a new event.
    let reopened = error_events::record(
        h.store(),
        &t.id,
        &occurrence("upstream_unavailable", "r1", 30),
    )
    .await
    .expect("record");
    assert_ne!(reopened, first);
    assert_eq!(
        h.get(&t.path("/errors?resolved=false"), &t.token)
            .await
            .list()
            .len(),
        3
    );

    h.patch(
        &t.path(&format!("/errors/{}", Uuid::new_v4())),
        &t.token,
        json!({ "resolved": true }),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    h.patch(
        &t.path(&format!("/errors/{theirs}")),
        &t.token,
        json!({ "resolved": true }),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    h.patch(
        &t.path(&format!("/errors/{reopened}")),
        &t.token,
        json!({ "resolved": false }),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    h.patch(
        &t.path(&format!("/errors/{reopened}")),
        &t.token,
        json!({ "resolved": "yes" }),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    h.get(&t.path("/errors?resolved=maybe"), &t.token)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_query");

    // Paging: 50 a page.
    for i in 0..60 {
        error_events::record(
            h.store(),
            &t.id,
            &occurrence("plugin_failed", &format!("route-{i}"), 100 + i),
        )
        .await
        .expect("record");
    }
    assert_eq!(h.get(&t.path("/errors"), &t.token).await.list().len(), 50);
    assert_eq!(
        h.get(&t.path("/errors?page=2"), &t.token)
            .await
            .list()
            .len(),
        14
    );
    h.finish().await;
}

async fn health_shows_the_latest_per_live_service(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("health").await;
    let a = h.service(&t, "a").await;
    let b = h.service(&t, "b").await;
    let gone = h.service(&t, "gone").await;
    let now = Timestamp::now().millis();
    let check = |service: &str, up: bool, at: i64| HealthResult {
        service_id: service.to_owned(),
        up,
        http_status: up.then_some(200),
        latency_ms: Some(3.5),
        error: (!up).then(|| "connection refused".to_owned()),
        at_ms: at,
    };
    let results = [
        (&a, true, now - 3000),
        (&a, false, now - 1000),
        (&b, false, now - 5000),
        (&b, true, now - 2000),
        (&gone, true, now),
    ]
    .into_iter()
    .map(|(service, up, at)| check(service, up, at))
    .collect();
    ingest(h.store(), &t, "node-1", |batch| batch.health = results).await;
    h.delete(&t.path(&format!("/services/{gone}")), &t.token)
        .await
        .expect(StatusCode::NO_CONTENT);

    let reply = h.get(&t.path("/health"), &t.token).await;
    reply.expect(StatusCode::OK);
    let mut latest: Vec<(String, String)> = reply
        .list()
        .iter()
        .map(|s| {
            (
                s["serviceId"].as_str().expect("id").to_owned(),
                s["status"].as_str().expect("status").to_owned(),
            )
        })
        .collect();
    latest.sort();
    let mut expected = vec![(a.clone(), "down".to_owned()), (b.clone(), "up".to_owned())];
    expected.sort();
    assert_eq!(latest, expected);
    let down = reply
        .list()
        .iter()
        .find(|s| s["serviceId"] == a.as_str())
        .expect("a");
    assert_eq!(down["error"], "connection refused");
    assert!(down["httpStatus"].is_null());
    h.finish().await;
}

async fn metrics_merge_nodes_into_buckets(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("metrics").await;
    let now = Timestamp::now().millis();
    let this_minute = now - now.rem_euclid(60_000);
    let report = |minute: i64, latencies_us: &[u64], client_errors: i64, errors: i64| {
        let mut latency = histogram::new_histogram();
        for value in latencies_us {
            latency.record(*value).expect("in range");
        }
        MinuteMetrics {
            route_id: "route-1".to_owned(),
            minute_ms: minute,
            request_count: latencies_us.len() as i64,
            client_error_count: client_errors,
            error_count: errors,
            latency_histogram: histogram::encode(&latency),
        }
    };
    // Node A: 90 fast requests; node B: 10 slow ones, in the same minute.
    let fast = vec![1_000_u64; 90];
    let slow = vec![100_000_u64; 10];
    ingest(h.store(), &t, "a", |b| {
        b.metrics = vec![report(this_minute, &fast[..50], 0, 0)]
    })
    .await;
    // A later, fuller report of the same minute replaces the partial one.
    ingest(h.store(), &t, "a", |b| {
        b.metrics = vec![report(this_minute, &fast, 3, 0)]
    })
    .await;
    // The partial one again, as if its batch finished storing last: older, it changes nothing.
    ingest(h.store(), &t, "a", |b| {
        b.metrics = vec![report(this_minute, &fast[..50], 0, 0)]
    })
    .await;
    ingest(h.store(), &t, "b", |b| {
        b.metrics = vec![report(this_minute, &slow, 0, 2)]
    })
    .await;
    ingest(h.store(), &t, "a", |b| {
        b.metrics = vec![
            report(this_minute - 5 * 60_000, &fast[..7], 0, 0),
            // Out of the hour window.
            report(this_minute - 2 * 3_600_000, &fast[..4], 0, 0),
        ]
    })
    .await;

    let reply = h.get(&t.path("/metrics?period=1h"), &t.token).await;
    reply.expect(StatusCode::OK);
    assert_eq!(reply.list().len(), 60);
    let served: i64 = reply
        .list()
        .iter()
        .map(|b| b["requestCount"].as_i64().expect("count"))
        .sum();
    assert_eq!(served, 107, "the API's hour holds every report of the hour");
    // Bucket by bucket, at a fixed moment of this minute: the API's own
    // clock may already be in the next minute.
    let fixed = metrics::aggregate(
        h.store(),
        &t.id,
        Period::Hour,
        Timestamp::from_millis(this_minute + 30_000),
    )
    .await
    .expect("aggregate");
    let fixed = serde_json::to_value(&fixed).expect("json");
    let buckets = fixed.as_array().expect("buckets");
    assert_eq!(buckets.len(), 60);
    assert!(buckets.iter().all(|b| b["bucketSeconds"] == 60));
    let last = buckets.last().expect("current minute");
    assert_eq!(
        last["bucketStart"],
        Timestamp::from_millis(this_minute).to_string()
    );
    assert_eq!(last["requestCount"], 100);
    assert_eq!(last["clientErrorCount"], 3);
    assert_eq!(last["errorCount"], 2);
    let p50 = last["p50LatencyMs"].as_f64().expect("p50");
    let p99 = last["p99LatencyMs"].as_f64().expect("p99");
    assert!(
        (0.99..=1.01).contains(&p50),
        "p50 from the merged histogram: {p50}"
    );
    assert!(
        (99.0..=101.0).contains(&p99),
        "p99 sees node B's slow tail: {p99}"
    );
    assert_eq!(buckets[buckets.len() - 6]["requestCount"], 7);
    let total: i64 = buckets
        .iter()
        .map(|b| b["requestCount"].as_i64().expect("count"))
        .sum();
    assert_eq!(total, 107);
    assert!(
        buckets[0]["p50LatencyMs"].is_null(),
        "empty buckets have no percentiles"
    );

    let day = h.get(&t.path("/metrics?period=24h"), &t.token).await;
    assert_eq!(day.list().len(), 96);
    assert!(day.list().iter().all(|b| b["bucketSeconds"] == 900));
    let total: i64 = day
        .list()
        .iter()
        .map(|b| b["requestCount"].as_i64().expect("count"))
        .sum();
    assert_eq!(total, 111);
    let week = h.get(&t.path("/metrics?period=7d"), &t.token).await;
    assert_eq!(week.list().len(), 168);
    assert_eq!(
        h.get(&t.path("/metrics"), &t.token).await.list().len(),
        60,
        "1h by default"
    );
    h.get(&t.path("/metrics?period=2d"), &t.token)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_query");

    // Another tenant sees none of it.
    let other = h.register("other").await;
    let theirs = metrics::aggregate(h.store(), &other.id, Period::Hour, Timestamp::now())
        .await
        .expect("aggregate");
    assert!(theirs.iter().all(|b| b.request_count == 0));
    h.finish().await;
}

async fn gateway_status_follows_connections(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("gw").await;
    let path = t.path("/gateway-status");
    let status = |_: &Harness| h.get(&path, &t.token);
    let reply = status(&h).await;
    reply.expect(StatusCode::OK);
    assert_eq!(reply.body["online"], false);
    assert_eq!(reply.body["tenantId"], t.id.as_str());

    let a = gateway_status::connect(h.store(), &t.id, "node-a", "replica-1")
        .await
        .expect("connect");
    let b = gateway_status::connect(h.store(), &t.id, "node-b", "replica-2")
        .await
        .expect("connect");
    let reply = status(&h).await;
    assert_eq!(reply.body["online"], true);
    assert_eq!(reply.body["connectedNodes"], 2);

    gateway_status::disconnect(h.store(), &a)
        .await
        .expect("disconnect");
    assert_eq!(
        status(&h).await.body["online"],
        true,
        "one node is still there"
    );
    // Node b stops heartbeating: offline once the liveness window passes.
    let later = Timestamp::now().add_millis(gateway_status::LIVENESS_WINDOW_MS + 1000);
    let seen = gateway_status::status(h.store(), &t.id, later)
        .await
        .expect("status");
    assert!(!seen.online);
    gateway_status::heartbeat(h.store(), &b, later)
        .await
        .expect("heartbeat");
    assert!(
        gateway_status::status(h.store(), &t.id, later)
            .await
            .expect("status")
            .online
    );
    gateway_status::disconnect(h.store(), &b)
        .await
        .expect("disconnect");
    let reply = status(&h).await;
    assert_eq!(reply.body["online"], false);
    assert_eq!(reply.body["connectedNodes"], 0);
    assert!(reply.body["lastSeenAt"].is_string());
    h.finish().await;
}

async fn batches_are_stored_once_and_whole(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("batches").await;
    let batch = TelemetryBatch {
        batch_id: Uuid::new_v4().to_string(),
        node_id: "n1".to_owned(),
        logs: (0..3)
            .map(|i| log(Timestamp::now().millis() - i, "/x", 200, None))
            .collect(),
        errors: vec![ErrorOccurrence {
            kind: "upstream_timeout".into(),
            detail: None,
            message: "slow".into(),
            route_id: Some("r".into()),
            service_id: None,
            plugin_id: None,
            status_code: Some(504),
            at_ms: Timestamp::now().millis(),
        }],
        ..TelemetryBatch::default()
    };
    assert!(
        telemetry::ingest(h.store(), &t.id, &batch)
            .await
            .expect("first")
    );
    // The ack was lost and the node sends the same batch again.
    assert!(
        !telemetry::ingest(h.store(), &t.id, &batch)
            .await
            .expect("again")
    );
    assert_eq!(h.get(&t.path("/logs"), &t.token).await.list().len(), 3);
    let errors = h.get(&t.path("/errors"), &t.token).await;
    assert_eq!(errors.list()[0]["occurrences"], 1, "the error counted once");

    // A batch with a corrupt histogram is refused whole: its logs are not stored either.
    let mut bad = batch.clone();
    bad.batch_id = Uuid::new_v4().to_string();
    bad.logs = vec![log(Timestamp::now().millis(), "/bad", 200, None)];
    bad.metrics = vec![MinuteMetrics {
        route_id: "r".into(),
        minute_ms: 0,
        request_count: 1,
        client_error_count: 0,
        error_count: 0,
        latency_histogram: "bm90IGEgaGlzdG9ncmFt".into(),
    }];
    let refused = telemetry::ingest(h.store(), &t.id, &bad).await;
    assert!(
        matches!(refused, Err(IngestError::Invalid(_))),
        "{refused:?}"
    );
    assert_eq!(
        h.get(&t.path("/logs?path=/bad"), &t.token)
            .await
            .list()
            .len(),
        0
    );
    h.finish().await;
}

async fn batches_stored_at_once_join_one_error_event(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("at-once").await;
    // An upstream down: every batch of the node carries the same failure.
    let batches: Vec<TelemetryBatch> = (0..6)
        .map(|i| TelemetryBatch {
            batch_id: Uuid::new_v4().to_string(),
            node_id: "n1".to_owned(),
            logs: vec![log(Timestamp::now().millis(), "/down", 502, None)],
            errors: vec![ErrorOccurrence {
                kind: "upstream_unavailable".into(),
                detail: None,
                message: format!("refused ({i})"),
                route_id: Some("route-down".into()),
                service_id: None,
                plugin_id: None,
                status_code: Some(502),
                at_ms: Timestamp::now().millis(),
            }],
            ..TelemetryBatch::default()
        })
        .collect();
    let stored = futures_util::future::join_all(
        batches
            .iter()
            .map(|batch| telemetry::ingest(h.store(), &t.id, batch)),
    )
    .await;
    assert!(stored.iter().all(|s| matches!(s, Ok(true))), "{stored:?}");
    let errors = h.get(&t.path("/errors"), &t.token).await;
    assert_eq!(errors.list().len(), 1, "{}", errors.text);
    assert_eq!(errors.list()[0]["occurrences"], 6);
    assert_eq!(h.get(&t.path("/logs"), &t.token).await.list().len(), 6);
    h.finish().await;
}

async fn retention_deletes_old_telemetry(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("retention").await;
    let now = Timestamp::now().millis();
    let day = 24 * 3_600_000;
    ingest(h.store(), &t, "n", |b| {
        b.logs = vec![
            log(now - 8 * day, "/old", 200, None),
            log(now - day, "/recent", 200, None),
        ];
    })
    .await;
    let retention = Retention {
        log_days: 7,
        metrics_days: 30,
    };
    let deleted = telemetry::purge(h.store(), retention, Timestamp::now())
        .await
        .expect("purge");
    assert!(deleted >= 1);
    let logs = h.get(&t.path("/logs"), &t.token).await;
    assert_eq!(logs.list().len(), 1);
    assert_eq!(logs.list()[0]["path"], "/recent");
    h.finish().await;
}
