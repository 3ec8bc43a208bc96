//! Rate limits end to end: the real control plane and gateway nodes, the
//! built-in `rate-limit` plugin, GCRA on the node and in a real Redis shared
//! by several nodes, and a Redis that dies mid-test.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{ControlPlane, Node, Scratch, Tenant, eventually, eventually_within, upstream};

/// Requests in flight at once in a burst.
const CONCURRENCY: usize = 8;

/// The Redis the fleet test shares (the machine's, like the rest of the
/// suite's services).
fn shared_redis() -> String {
    std::env::var("GATEHOUSE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// A tenant with one service, an authenticated route `/api/*`, and a
/// consumer on the `free` tier; returns the tenant and the consumer's key.
async fn tenant_with_consumer(
    control: &ControlPlane,
    upstream_url: &str,
) -> (Tenant, String, String) {
    let tenant = Tenant::register(&control.base).await;
    let service = tenant.service(upstream_url, 30_000).await;
    tenant.route("GET", "/api/*", &service, true).await;
    let (_, key) = tenant
        .consumer(json!({ "name": "app", "rateLimitTier": "free" }))
        .await;
    (tenant, key, service)
}

/// Sends `total` requests with `key`, [`CONCURRENCY`] at a time, spread
/// over `bases` in turn; returns the statuses and how long it took.
async fn burst(
    bases: &[String],
    path: &str,
    key: Option<&str>,
    total: usize,
) -> (Vec<u16>, Duration) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    for i in 0..total {
        let mut request = client.get(format!("{}{path}", bases[i % bases.len()]));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let slots = std::sync::Arc::clone(&slots);
        tasks.spawn(async move {
            let _slot = slots.acquire().await.expect("open");
            request.send().await.expect("sent").status().as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.expect("task"));
    }
    (statuses, started.elapsed())
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// GCRA at 60 a minute allows the burst of 60, then one a second: a run
/// that took `elapsed` may see one more per whole second. Quick runs (the
/// normal case) must see exactly 60.
fn assert_exactly_the_limit(statuses: &[u16], limit: usize, elapsed: Duration) {
    let allowed = count(statuses, 200);
    let refill = elapsed.as_secs() as usize;
    assert!(
        allowed >= limit && allowed <= limit + refill,
        "{allowed} allowed of {} in {elapsed:?} (limit {limit}); statuses: {statuses:?}",
        statuses.len()
    );
    assert_eq!(
        allowed + count(statuses, 429),
        statuses.len(),
        "only 200s and 429s: {statuses:?}"
    );
    eprintln!("{allowed} of {} allowed in {elapsed:?}", statuses.len());
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_node_enforces_tiers_overrides_and_anonymous_limits() {
    let scratch = Scratch::new("ratelimit-node");
    let upstream = upstream().await;
    let control = ControlPlane::start(&scratch.0).await;
    let (tenant, key, service) = tenant_with_consumer(&control, &upstream.url).await;
    tenant.limits(Some(60), Some(3)).await;
    tenant
        .send(
            Method::POST,
            "/routes",
            Some(
                json!({ "method": "GET", "pathPattern": "/burst", "serviceId": service,
                "authRequired": true, "rateLimitOverride": 5 }),
            ),
        )
        .await;
    tenant.route("GET", "/open", &service, false).await;
    let node = Node::start_for(&scratch.0, &control, &tenant).await;
    let client = reqwest::Client::new();

    // Allowed responses carry the limit headers.
    let first = client
        .get(format!("{}/api/first", node.base))
        .header("x-api-key", &key)
        .send()
        .await
        .expect("sent");
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "ratelimit-limit"), "60");
    assert_eq!(header(&first, "ratelimit-remaining"), "59");
    let reset: u64 = header(&first, "ratelimit-reset").parse().expect("seconds");
    assert!((1..=60).contains(&reset), "reset {reset}");

    // 99 more at once: with the first, exactly 60 of 100 get through.
    let (mut statuses, elapsed) =
        burst(std::slice::from_ref(&node.base), "/api/x", Some(&key), 99).await;
    statuses.push(200);
    assert_exactly_the_limit(&statuses, 60, elapsed);

    // A refused request: 429 rate_limited, Retry-After, nothing remaining.
    let refused = client
        .get(format!("{}/api/again", node.base))
        .header("x-api-key", &key)
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "ratelimit-limit"), "60");
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
    let retry: u64 = header(&refused, "retry-after").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");

    // The override is a limit of its own on its route only: 5 there, even
    // though the consumer's tier is used up.
    let (statuses, _) = burst(std::slice::from_ref(&node.base), "/burst", Some(&key), 8).await;
    assert_eq!(count(&statuses, 200), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 3, "{statuses:?}");

    // Anonymous traffic on an open route: 3 a minute per client IP.
    let (statuses, _) = burst(std::slice::from_ref(&node.base), "/open", None, 5).await;
    assert_eq!(count(&statuses, 200), 3, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 2, "{statuses:?}");

    // Tier changes reach the node live: a new limit, a fresh bucket.
    tenant.limits(Some(1000), Some(3)).await;
    eventually("the new tier limit", || async {
        let response = client
            .get(format!("{}/api/after-change", node.base))
            .header("x-api-key", &key)
            .send()
            .await
            .expect("sent");
        response.status() == StatusCode::OK && header(&response, "ratelimit-limit") == "1000"
    })
    .await;

    // Unknown tiers are refused when a consumer is created or updated.
    let response = tenant
        .http
        .post(format!("{}/consumers", tenant.api))
        .bearer_auth(&tenant.token)
        .json(&json!({ "name": "x", "rateLimitTier": "platinum" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // 429s are logged like every other answer.
    eventually("429s in the logs", || async {
        let logs = tenant.send(Method::GET, "/logs?statusCode=429", None).await;
        logs.as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_one_limit_through_redis() {
    let scratch = Scratch::new("ratelimit-fleet");
    let upstream = upstream().await;
    let control = ControlPlane::start(&scratch.0).await;
    let (tenant, key, _) = tenant_with_consumer(&control, &upstream.url).await;
    tenant.limits(Some(60), None).await;
    let redis = format!("--redis-url={}", shared_redis());
    let mut nodes = Vec::new();
    for i in 0..3 {
        let state = scratch.0.join(format!("node{i}"));
        let node = Node::start_with(
            &scratch.0,
            &control.base,
            &tenant.gateway_key,
            &state,
            &[&redis],
        )
        .await;
        eventually("the node's Redis connection", || async {
            node.metrics()
                .await
                .contains("gatehouse_rate_limit_fleet_up 1")
        })
        .await;
        nodes.push(node);
    }
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();

    // 100 quick requests spread over the three nodes: exactly 60 in all
    // (per-node limits would have let all 100 through).
    let (statuses, elapsed) = burst(&bases, "/api/x", Some(&key), 100).await;
    assert_exactly_the_limit(&statuses, 60, elapsed);
    for node in &nodes {
        assert!(
            node.metrics()
                .await
                .contains("gatehouse_rate_limit_fallback_decisions_total 0")
        );
    }
}

/// A Redis of this test's own, to kill.
struct PrivateRedis {
    child: Child,
    socket: std::path::PathBuf,
}

impl PrivateRedis {
    /// A Redis on a Unix socket at `socket` (no TCP port to race for).
    fn start(socket: &std::path::Path) -> Self {
        std::fs::remove_file(socket).ok();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(socket)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (scripts/test-services.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            assert!(Instant::now() < deadline, "redis-server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            socket: socket.to_owned(),
        }
    }

    fn url(&self) -> String {
        format!("--redis-url=redis+unix://{}", self.socket.display())
    }

    fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_redis_falls_back_to_each_nodes_share() {
    let scratch = Scratch::new("ratelimit-fallback");
    let upstream = upstream().await;
    let control = ControlPlane::start(&scratch.0).await;
    let (tenant, key, _) = tenant_with_consumer(&control, &upstream.url).await;
    tenant.limits(Some(60), None).await;
    let socket = scratch.0.join("redis.sock");
    let mut redis = PrivateRedis::start(&socket);
    let first = Node::start_with(
        &scratch.0,
        &control.base,
        &tenant.gateway_key,
        &scratch.0.join("a"),
        &[&redis.url()],
    )
    .await;
    let second = Node::start_with(
        &scratch.0,
        &control.base,
        &tenant.gateway_key,
        &scratch.0.join("b"),
        &[&redis.url()],
    )
    .await;
    for node in [&first, &second] {
        eventually("the node's Redis connection", || async {
            node.metrics()
                .await
                .contains("gatehouse_rate_limit_fleet_up 1")
        })
        .await;
    }
    let (statuses, _) = burst(
        &[first.base.clone(), second.base.clone()],
        "/api/x",
        Some(&key),
        10,
    )
    .await;
    assert_eq!(count(&statuses, 200), 10);

    // The second node joined when the first was online: the control plane
    // tells it the fleet is two nodes.
    eventually("the second node to know the fleet size", || async {
        second.metrics().await.contains("gatehouse_fleet_nodes 2")
    })
    .await;

    // Redis dies: traffic goes on, each node limiting with its share.
    redis.kill();
    let started = Instant::now();
    let (statuses, _) = burst(std::slice::from_ref(&second.base), "/api/y", Some(&key), 50).await;
    let waited = started.elapsed();
    assert_eq!(
        count(&statuses, 200) + count(&statuses, 429),
        50,
        "no errors: {statuses:?}"
    );
    // Two nodes: its share is 30 a minute.
    assert_eq!(count(&statuses, 200), 30, "{statuses:?}");
    assert!(
        waited < Duration::from_secs(5),
        "no waiting on a dead Redis: {waited:?}"
    );
    let metrics = second.metrics().await;
    assert!(
        metrics.contains("gatehouse_rate_limit_fleet_up 0"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("gatehouse_rate_limit_fallback_decisions_total 0"),
        "{metrics}"
    );
    eventually("the rate_limit_fallback error event", || async {
        let errors = tenant.send(Method::GET, "/errors", None).await;
        errors
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "rate_limit_fallback"))
    })
    .await;

    // Redis back on the same socket: the nodes reconnect by themselves.
    let _redis = PrivateRedis::start(&socket);
    for node in [&first, &second] {
        eventually_within(
            Duration::from_secs(15),
            "the Redis reconnection",
            || async {
                node.metrics()
                    .await
                    .contains("gatehouse_rate_limit_fleet_up 1")
            },
        )
        .await;
    }
}
