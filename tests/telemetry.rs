//! Telemetry end to end with the real binaries: traffic through a node shows
//! in the control plane's logs, errors, health and metrics; what a node
//! records while the control plane is away arrives, exactly once, when it
//! comes back (also across a node restart, from the spilled outbox). Behind
//! a trusted proxy the logged client is the one it names; anyone else's
//! `X-Forwarded-For` is not believed.

mod support;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{
    ClosedPort, ControlPlane, Node, Scratch, Stage, Tenant, eventually, eventually_within, upstream,
};

async fn status_of(client: &reqwest::Client, url: String, key: Option<&str>) -> StatusCode {
    let mut request = client.get(url);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    request.send().await.expect("sent").status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_shows_in_logs_errors_and_metrics() {
    let scratch = Scratch::new("telemetry");
    let upstream = upstream().await;
    let control = ControlPlane::start(&scratch.0).await;
    let tenant = Tenant::register(&control.base).await;
    tenant.unlimited().await;
    let service = tenant.service(&upstream.url, 30_000).await;
    let route = tenant.route("GET", "/items/:id", &service, true).await;
    tenant.route("GET", "/fail", &service, false).await;
    let closed = ClosedPort::new();
    let dead = tenant.service(&closed.url(), 30_000).await;
    let dead_route = tenant.route("GET", "/dead", &dead, false).await;
    let (consumer, key) = tenant.consumer(json!({ "name": "app" })).await;
    let (_, other_key) = tenant.consumer(json!({ "name": "other" })).await;
    let node = Node::start_for(&scratch.0, &control, &tenant).await;
    let client = reqwest::Client::new();

    // 60 good requests, 10 without a key, 5 to no route, 4 upstream 500s, 3 to a dead
    // upstream, and 2 of a second consumer.
    for i in 0..60 {
        assert_eq!(
            status_of(&client, format!("{}/items/{i}", node.base), Some(&key)).await,
            StatusCode::OK
        );
    }
    for _ in 0..10 {
        assert_eq!(
            status_of(&client, format!("{}/items/1", node.base), None).await,
            StatusCode::UNAUTHORIZED
        );
    }
    for _ in 0..5 {
        assert_eq!(
            status_of(&client, format!("{}/nowhere", node.base), None).await,
            StatusCode::NOT_FOUND
        );
    }
    for _ in 0..4 {
        assert_eq!(
            status_of(&client, format!("{}/fail", node.base), None).await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    for _ in 0..3 {
        assert_eq!(
            status_of(&client, format!("{}/dead", node.base), None).await,
            StatusCode::BAD_GATEWAY
        );
    }
    for i in 0..2 {
        assert_eq!(
            status_of(
                &client,
                format!("{}/items/{i}", node.base),
                Some(&other_key)
            )
            .await,
            StatusCode::OK
        );
    }
    let total = 60 + 10 + 5 + 4 + 3 + 2;

    let took = eventually("every request in the logs", || async {
        tenant.all_logs("").await.len() == total
    })
    .await;
    eprintln!("logs visible {took:?} after the last request");
    let logs = tenant.all_logs("").await;
    let ids: HashSet<&str> = logs
        .iter()
        .map(|l| l["requestId"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), total, "each request logged once");
    // The oldest 200 (logs are newest first): one of the first consumer's.
    let good = logs
        .iter()
        .rev()
        .find(|l| l["statusCode"] == 200)
        .expect("a 200");
    assert_eq!(good["routeId"], route.as_str());
    assert_eq!(good["serviceId"], service.as_str());
    assert_eq!(good["consumerId"], consumer["id"]);
    assert_eq!(good["method"], "GET");
    assert_eq!(good["clientIp"], "127.0.0.1");
    assert!(good["latencyMs"].as_f64().expect("latency") > 0.0);
    assert!(good["bytesOut"].as_i64().expect("bytes") > 0);
    // Filters work on shipped logs.
    assert_eq!(tenant.all_logs("?statusCode=401").await.len(), 10);
    assert_eq!(tenant.all_logs("?path=/nowhere").await.len(), 5);
    let by_consumer = tenant
        .all_logs(&format!(
            "?consumerId={}",
            consumer["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(by_consumer.len(), 60);
    let first_page = tenant.send(Method::GET, "/logs", None).await;
    assert_eq!(first_page.as_array().expect("list").len(), 50);

    // Failures became grouped error events.
    let errors = eventually("the error events", || async {
        let errors = tenant.send(Method::GET, "/errors", None).await;
        let errors = errors.as_array().expect("list");
        errors
            .iter()
            .any(|e| e["kind"] == "upstream_unavailable" && e["occurrences"] == 3)
            && errors
                .iter()
                .any(|e| e["kind"] == "upstream_error" && e["occurrences"] == 4)
    })
    .await;
    eprintln!("error events visible after {errors:?}");
    let events = tenant.send(Method::GET, "/errors", None).await;
    let unavailable = events
        .as_array()
        .expect("list")
        .iter()
        .find(|e| e["kind"] == "upstream_unavailable")
        .expect("event");
    assert_eq!(unavailable["routeId"], dead_route.as_str());
    assert_eq!(unavailable["statusCode"], 502);
    // Said for a person, with pingora's own text kept for operators.
    let refused_at = closed.url().trim_start_matches("http://").to_owned();
    assert_eq!(
        unavailable["message"],
        format!("could not connect to {refused_at} (connection refused)")
    );
    assert!(
        unavailable["detail"]
            .as_str()
            .is_some_and(|d| d.contains("ConnectRefused")),
        "{unavailable}"
    );
    let logged = support::logged_line(
        &node.log,
        &format!("could not connect to {refused_at} (connection refused)"),
    )
    .await;
    assert!(
        logged.contains("cause=") && logged.contains("ConnectRefused"),
        "{logged}"
    );
    let raw = std::fs::read_to_string(&node.log).unwrap_or_default();
    assert!(
        !raw.contains("Fail to proxy"),
        "pingora's raw line is not logged too"
    );

    // Metrics of the current minute count the mix.
    eventually("the metrics", || async {
        let buckets = tenant.send(Method::GET, "/metrics?period=1h", None).await;
        let total_requests: i64 = buckets
            .as_array()
            .expect("list")
            .iter()
            .map(|b| b["requestCount"].as_i64().unwrap_or(0))
            .sum();
        total_requests == total as i64
    })
    .await;
    let buckets = tenant.send(Method::GET, "/metrics?period=1h", None).await;
    let buckets = buckets.as_array().expect("list");
    let sum = |field: &str| {
        buckets
            .iter()
            .map(|b| b[field].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    assert_eq!(sum("clientErrorCount"), 15);
    assert_eq!(sum("errorCount"), 7);
    // The period's summary: the same sums, percentiles of the whole span,
    // and the two consumers that sent requests (anonymous ones are none).
    let summary = tenant
        .send(Method::GET, "/metrics/summary?period=1h", None)
        .await;
    assert_eq!(summary["requestCount"], total as i64, "{summary}");
    assert_eq!(summary["clientErrorCount"], 15);
    assert_eq!(summary["errorCount"], 7);
    assert_eq!(summary["distinctConsumers"], 2, "{summary}");
    let (p50, p99) = (
        summary["p50LatencyMs"].as_f64().expect("p50"),
        summary["p99LatencyMs"].as_f64().expect("p99"),
    );
    assert!(p50 > 0.0 && p50 <= p99, "p50 {p50} p99 {p99}");
    let day = tenant
        .send(Method::GET, "/metrics/summary?period=24h", None)
        .await;
    assert_eq!(day["requestCount"], total as i64, "{day}");
    let busy = buckets
        .iter()
        .rfind(|b| b["requestCount"].as_i64().unwrap_or(0) > 0)
        .expect("a bucket");
    let (p50, p99) = (
        busy["p50LatencyMs"].as_f64().expect("p50"),
        busy["p99LatencyMs"].as_f64().expect("p99"),
    );
    assert!(
        p50 > 0.0 && p50 <= p99 && p99 < 5_000.0,
        "p50 {p50} p99 {p99}"
    );
    node.process.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_follow_the_service() {
    let scratch = Scratch::new("health");
    let upstream = upstream().await;
    let control = ControlPlane::start(&scratch.0).await;
    let tenant = Tenant::register(&control.base).await;
    tenant.unlimited().await;
    let service = tenant
        .send(Method::POST, "/services", Some(json!({ "name": "checked", "targetUrl": upstream.url, "healthCheckPath": "/health" })))
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let node = Node::start_with(
        &scratch.0,
        &control.base,
        &tenant.gateway_key,
        &scratch.0.join("node"),
        &["--health-interval-ms=100", "--health-timeout-ms=500"],
    )
    .await;
    let health_is = |status: &'static str| {
        let tenant = &tenant;
        let service = service.clone();
        move || {
            let service = service.clone();
            async move {
                let snapshots = tenant.send(Method::GET, "/health", None).await;
                snapshots
                    .as_array()
                    .expect("list")
                    .iter()
                    .any(|s| s["serviceId"] == service.as_str() && s["status"] == status)
            }
        }
    };
    eventually("the service up", health_is("up")).await;
    upstream.healthy.store(false, Ordering::SeqCst);
    let took = eventually("the service down", health_is("down")).await;
    eprintln!("health went down in the API {took:?} after the service did");
    let metrics = node.metrics().await;
    assert!(
        metrics.contains(&format!("gatehouse_upstream_up{{service=\"{service}\"}} 0")),
        "{metrics}"
    );
    let snapshot = tenant.send(Method::GET, "/health", None).await;
    let down = &snapshot.as_array().expect("list")[0];
    assert_eq!(down["httpStatus"], 503);
    assert!(down["error"].as_str().is_some_and(|e| e.contains("503")));
    upstream.healthy.store(true, Ordering::SeqCst);
    eventually("the service up again", health_is("up")).await;
    node.process.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_from_an_outage_arrive_exactly_once() {
    let Stage {
        scratch,
        upstream: _upstream,
        control,
        front,
        tenant,
        service,
    } = Stage::new("outage-logs").await;
    tenant.route("GET", "/ping", &service, false).await;
    let state_dir = scratch.0.join("node");
    // A small memory bound makes the node spill to its state dir.
    let flags = ["--telemetry-memory-records=20"];
    let node = Node::start_with(
        &scratch.0,
        &front.url(),
        &tenant.gateway_key,
        &state_dir,
        &flags,
    )
    .await;
    let client = reqwest::Client::new();
    let ping = |node: &Node| format!("{}/ping", node.base);

    for _ in 0..10 {
        assert_eq!(status_of(&client, ping(&node), None).await, StatusCode::OK);
    }
    eventually("the first logs", || async {
        tenant.all_logs("").await.len() == 10
    })
    .await;

    // The control plane goes away; traffic goes on.
    front.point_to(None);
    control.process.kill();
    for _ in 0..150 {
        assert_eq!(status_of(&client, ping(&node), None).await, StatusCode::OK);
    }
    // The node restarts during the outage: what it held goes to its state dir.
    node.process.terminate();
    let spilled = std::fs::read_dir(tenant.outbox_in(&state_dir))
        .expect("outbox")
        .count();
    assert!(spilled > 0, "undelivered batches were kept on disk");
    let node = Node::start_with(
        &scratch.0,
        &front.url(),
        &tenant.gateway_key,
        &state_dir,
        &flags,
    )
    .await;
    for _ in 0..40 {
        assert_eq!(status_of(&client, ping(&node), None).await, StatusCode::OK);
    }

    // The control plane comes back: every log of the outage arrives, once.
    let control = ControlPlane::start(&scratch.0).await;
    front.point_to(Some(control.port));
    let took = eventually_within(Duration::from_secs(20), "the outage's logs", || async {
        tenant.all_logs("").await.len() >= 200
    })
    .await;
    eprintln!("outage logs delivered {took:?} after the control plane returned");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = tenant.all_logs("").await;
    let ids: HashSet<&str> = logs
        .iter()
        .map(|l| l["requestId"].as_str().expect("id"))
        .collect();
    assert_eq!(logs.len(), 200, "nothing lost, nothing twice");
    assert_eq!(ids.len(), 200);
    eventually("the outbox to empty", || async {
        std::fs::read_dir(tenant.outbox_in(&state_dir))
            .map(|d| d.count() == 0)
            .unwrap_or(false)
    })
    .await;
    node.process.terminate();
    drop(control);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logged_client_is_the_one_a_trusted_proxy_names() {
    let stage = Stage::new("trusted-proxies").await;
    stage
        .tenant
        .route("GET", "/who", &stage.service, false)
        .await;
    let client = reqwest::Client::new();
    // Each request carries an id of its own, to find its log by.
    let send = |node: &Node, forwarded_for: &str| {
        client
            .get(format!("{}/who", node.base))
            .header("x-forwarded-for", forwarded_for)
            .header("x-request-id", request_id(forwarded_for))
            .send()
    };
    let trusting = stage.node(&["--trusted-proxies=127.0.0.0/8"]).await;
    let echoed = send(&trusting, "203.0.113.7")
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    assert!(
        echoed.contains("203.0.113.7, 127.0.0.1"),
        "the peer is appended: {echoed}"
    );
    trusting.process.terminate();
    let wary = stage.node(&[]).await;
    send(&wary, "198.51.100.9").await.expect("sent");
    for (forwarded_for, client_ip) in [
        ("203.0.113.7", "203.0.113.7"),
        ("198.51.100.9", "127.0.0.1"),
    ] {
        let id = request_id(forwarded_for);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let logged = loop {
            let logs = stage.tenant.all_logs("").await;
            if let Some(log) = logs.into_iter().find(|log| log["requestId"] == id.as_str()) {
                break log;
            }
            assert!(std::time::Instant::now() < deadline, "no log of {id}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            logged["clientIp"], client_ip,
            "X-Forwarded-For: {forwarded_for}"
        );
    }
    wary.process.terminate();
}

fn request_id(forwarded_for: &str) -> String {
    format!("who-{}", forwarded_for.replace('.', "-"))
}
