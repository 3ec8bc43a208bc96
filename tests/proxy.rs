//! The data plane end to end: the real control plane and gateway node
//! binaries and a real upstream, on loopback. Configure over REST, send
//! traffic through the node, watch changes take effect.

mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{
    ClosedPort, ControlPlane, Front, Node, Scratch, Tenant, eventually, eventually_within,
    until_status, upstream,
};

async fn get(
    client: &reqwest::Client,
    url: String,
    key: Option<&str>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut request = client.get(url);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = request.send().await.expect("sent");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_flows_and_changes_apply_at_once() {
    let scratch = Scratch::new("traffic");
    let upstream = upstream().await;
    let upstream_url = upstream.url.clone();
    let control = ControlPlane::start(&scratch.0).await;
    let tenant = Tenant::register(&control.base).await;
    tenant.unlimited().await;
    let service = tenant.service(&format!("{upstream_url}/v1"), 30_000).await;
    let users = tenant.route("GET", "/users/:id", &service, true).await;
    tenant.route("ANY", "/public/*", &service, false).await;
    // A service without a path prefix: the client's target goes as sent.
    let bare = tenant
        .send(
            Method::POST,
            "/services",
            Some(json!({ "name": "bare", "targetUrl": upstream_url })),
        )
        .await;
    let bare = bare["id"].as_str().expect("id");
    tenant.route("GET", "/bare/*", bare, false).await;
    let (consumer, key) = tenant.consumer(json!({ "name": "app" })).await;
    let node = Node::start_for(&scratch.0, &control, &tenant).await;
    let client = reqwest::Client::new();

    // Forwarded with the service's path prefix, query kept, headers set.
    let (status, body, headers) = get(
        &client,
        format!("{}/users/42?expand=true", node.base),
        Some(&key),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["path"], "/v1/users/42");
    assert_eq!(body["query"], "expand=true");
    assert_eq!(body["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(body["headers"]["x-forwarded-proto"], "http");
    assert_eq!(body["headers"]["x-consumer-id"], consumer["id"]);
    let request_id = body["headers"]["x-request-id"]
        .as_str()
        .expect("request id");
    assert_eq!(
        headers["x-request-id"], request_id,
        "the client sees the same request id"
    );
    // Authorization: Bearer works too; a client's request id is kept.
    let response = client
        .get(format!("{}/users/1", node.base))
        .bearer_auth(&key)
        .header("x-request-id", "trace-me")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let echoed: Value = response.json().await.expect("json");
    assert_eq!(echoed["headers"]["x-request-id"], "trace-me");

    // Upstream connections are pooled: 20 more requests, at most one new connection.
    let before = upstream
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..20 {
        let (status, _, _) = get(&client, format!("{}/users/7", node.base), Some(&key)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let opened = upstream
        .connections
        .load(std::sync::atomic::Ordering::SeqCst)
        - before;
    assert!(
        opened <= 1,
        "{opened} new upstream connections for 20 requests"
    );

    // Keys: missing or wrong → 401; open routes need none.
    for bad in [None, Some("ck_not-a-key")] {
        let (status, body, _) = get(&client, format!("{}/users/42", node.base), bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(&body), "invalid_api_key");
    }
    let (status, body, _) = get(&client, format!("{}/public/css/site.css", node.base), None).await;
    assert_eq!(
        (status, body["path"].as_str()),
        (StatusCode::OK, Some("/v1/public/css/site.css"))
    );
    // An open route never forwards a consumer key either, in any spelling;
    // the service's own credentials pass.
    let response = client
        .get(format!("{}/public/keys", node.base))
        .header("x-api-key", &key)
        .header("authorization", format!("bearer\t {key}"))
        .send()
        .await
        .expect("sent");
    let echoed: Value = response.json().await.expect("json");
    let forwarded = echoed["headers"].as_object().expect("headers");
    assert!(
        !forwarded.contains_key("x-api-key") && !forwarded.contains_key("authorization"),
        "{echoed}"
    );
    let response = client
        .get(format!("{}/public/keys", node.base))
        .header("x-api-key", "the-service-s-own")
        .header("authorization", "Basic dXNlcjpwdw==")
        .send()
        .await
        .expect("sent");
    let echoed: Value = response.json().await.expect("json");
    assert_eq!(echoed["headers"]["x-api-key"], "the-service-s-own");
    assert_eq!(echoed["headers"]["authorization"], "Basic dXNlcjpwdw==");
    let (status, body, _) = get(&client, format!("{}/nowhere", node.base), Some(&key)).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "route_not_found")
    );

    // HTTP/2 without TLS (h2c) from clients.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let response = h2
        .get(format!("{}/public/x", node.base))
        .send()
        .await
        .expect("h2c request");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    // An HTTP/2 request names its authority in the URI: the upstream gets
    // the path and query, and its own Host.
    let response = h2
        .get(format!("{}/bare/x?y=1", node.base))
        .send()
        .await
        .expect("h2c request");
    assert_eq!(response.status(), StatusCode::OK);
    let echoed: Value = response.json().await.expect("json");
    assert_eq!(echoed["path"], "/bare/x", "{echoed}");
    assert_eq!(echoed["query"], "y=1", "{echoed}");
    let upstream_host = upstream_url.trim_start_matches("http://");
    assert_eq!(echoed["headers"]["host"], upstream_host, "{echoed}");

    // A change made over REST is enforced by the node: revoking a key.
    let started = Instant::now();
    tenant
        .send(
            Method::DELETE,
            &format!("/consumers/{}", consumer["id"].as_str().expect("id")),
            None,
        )
        .await;
    until_status(
        &client,
        format!("{}/users/42", node.base),
        Some(&key),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    eprintln!(
        "propagation: key revocation enforced {:?} after the REST call began",
        started.elapsed()
    );

    // Disabling and deleting routes: 404.
    let started = Instant::now();
    tenant
        .send(
            Method::PATCH,
            &format!("/routes/{users}"),
            Some(json!({ "authRequired": false, "enabled": false })),
        )
        .await;
    until_status(
        &client,
        format!("{}/users/42", node.base),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    eprintln!(
        "propagation: route disabled {:?} after the REST call began",
        started.elapsed()
    );
    tenant
        .send(
            Method::PATCH,
            &format!("/routes/{users}"),
            Some(json!({ "enabled": true })),
        )
        .await;
    until_status(
        &client,
        format!("{}/users/42", node.base),
        None,
        StatusCode::OK,
    )
    .await;
    tenant
        .send(Method::DELETE, &format!("/routes/{users}"), None)
        .await;
    until_status(
        &client,
        format!("{}/users/42", node.base),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;

    // The route's service deleted: 503.
    tenant
        .send(Method::DELETE, &format!("/services/{service}"), None)
        .await;
    eventually("the orphaned route to 503", || {
        let (client, url) = (client.clone(), format!("{}/public/x", node.base));
        async move {
            let (status, body, _) = get(&client, url, None).await;
            status == StatusCode::SERVICE_UNAVAILABLE && error_code(&body) == "service_unavailable"
        }
    })
    .await;

    // Upstream down: 502. Slow upstream past the service timeout: 504.
    let closed_port = ClosedPort::new();
    let closed = closed_port.url();
    let dead = tenant.service(&closed, 30_000).await;
    tenant.route("GET", "/dead", &dead, false).await;
    let slow = tenant.service(&upstream_url, 300).await;
    tenant.route("GET", "/slow", &slow, false).await;
    eventually("the new routes", || {
        let (client, url) = (client.clone(), format!("{}/slow", node.base));
        async move { get(&client, url, None).await.0 != StatusCode::NOT_FOUND }
    })
    .await;
    let (status, body, _) = get(&client, format!("{}/dead", node.base), None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_GATEWAY, "upstream_unavailable")
    );
    let started = Instant::now();
    let (status, body, _) = get(&client, format!("{}/slow", node.base), None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout")
    );
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "the 300 ms timeout cut the 2 s upstream short"
    );
    // The error event says it in words, pingora's text kept beside.
    let slow_at = upstream_url.trim_start_matches("http://").to_owned();
    eventually("the timeout said in words", || async {
        let errors = tenant.send(Method::GET, "/errors", None).await;
        errors.as_array().is_some_and(|events| {
            events.iter().any(|e| {
                e["kind"] == "upstream_timeout"
                    && e["message"] == format!("{slow_at} did not answer within 300ms")
                    && e["detail"].as_str().is_some_and(|d| d.contains("Timedout"))
            })
        })
    })
    .await;

    // The admin listener reports what happened.
    let metrics = node.metrics().await;
    assert!(
        metrics.contains("gatehouse_requests_total{route=\"none\",status=\"404\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("gatehouse_sync_connected 1"));
    assert!(metrics.contains("gatehouse_upstream_latency_seconds_bucket"));
    node.process.terminate();
    // Nothing secret reached a log on the way.
    support::assert_logs_free_of(
        &scratch.0,
        &[
            &key,
            &tenant.token,
            &tenant.gateway_key,
            support::PASSWORD,
            support::JWT_SECRET,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_outlives_the_control_plane() {
    let scratch = Scratch::new("outage");
    let upstream = upstream().await;
    let upstream_url = upstream.url.clone();
    let control = ControlPlane::start(&scratch.0).await;
    let front = Front::to(control.port).await;
    let tenant = Tenant::register(&front.url()).await;
    tenant.unlimited().await;
    let service = tenant.service(&upstream_url, 30_000).await;
    tenant.route("GET", "/hello", &service, false).await;
    let state_dir = scratch.0.join("node");
    let node = Node::start(&scratch.0, &front.url(), &tenant.gateway_key, &state_dir).await;
    let client = reqwest::Client::new();
    let hello = |node: &Node| format!("{}/hello", node.base);

    // gateway-status follows the node: online, then offline at once on a clean stop.
    assert!(tenant.online().await);
    node.process.terminate();
    assert!(
        !tenant.online().await,
        "a clean close marks the gateway offline at once"
    );
    let node = Node::start(&scratch.0, &front.url(), &tenant.gateway_key, &state_dir).await;
    eventually("the node to show online", || tenant.online()).await;

    // Control plane killed: the node keeps serving.
    front.point_to(None);
    control.process.kill();
    for _ in 0..20 {
        assert_eq!(get(&client, hello(&node), None).await.0, StatusCode::OK);
    }
    // Node killed too, and restarted while the control plane is down: it
    // serves from its state dir.
    node.process.kill();
    let node = Node::start(&scratch.0, &front.url(), &tenant.gateway_key, &state_dir).await;
    let (status, body, _) = get(&client, hello(&node), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let health: Value = client
        .get(format!("{}/healthz", node.admin))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["syncConnected"], false);

    // The control plane comes back at its address: the node reconnects and
    // follows changes again.
    let control = ControlPlane::start(&scratch.0).await;
    front.point_to(Some(control.port));
    tenant.route("GET", "/after", &service, false).await;
    // Within the longest reconnect backoff.
    eventually_within(Duration::from_secs(15), "the node to catch up", || {
        let (client, url) = (client.clone(), format!("{}/after", node.base));
        async move { get(&client, url, None).await.0 == StatusCode::OK }
    })
    .await;
    node.process.terminate();
    drop(control);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_gateway_key_is_reported() {
    let scratch = Scratch::new("badkey");
    let control = ControlPlane::start(&scratch.0).await;
    let node = Node::spawn(
        &scratch.0,
        &control.base,
        "gk_wrong-key",
        &scratch.0.join("node"),
    )
    .await;
    let client = reqwest::Client::new();
    eventually("the node to report the rejection", || {
        let (client, url) = (client.clone(), format!("{}/healthz", node.admin));
        async move {
            match client.get(url).send().await {
                Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    body["syncError"]
                        .as_str()
                        .is_some_and(|e| e.contains("401"))
                }
                _ => false,
            }
        }
    })
    .await;
    let metrics = node.metrics().await;
    assert!(metrics.contains("gatehouse_sync_rejected 1"), "{metrics}");
    // Without config, traffic gets a clear 503.
    node.accepting().await;
    let (status, body, _) = get(&client, format!("{}/anything", node.base), None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "gateway_not_configured")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_and_shutdown_drains_in_flight_requests() {
    let scratch = Scratch::new("drain");
    let upstream = upstream().await;
    let upstream_url = upstream.url.clone();
    let control = ControlPlane::start(&scratch.0).await;
    let tenant = Tenant::register(&control.base).await;
    tenant.unlimited().await;
    let service = tenant.service(&upstream_url, 30_000).await;
    tenant.route("POST", "/count", &service, false).await;
    tenant.route("GET", "/big/:size", &service, false).await;
    tenant.route("GET", "/slow", &service, false).await;
    let node = Node::start_for(&scratch.0, &control, &tenant).await;
    let client = reqwest::Client::new();

    // 16 MiB up and 16 MiB down, through the node.
    let size = 16 * 1024 * 1024;
    let counted: Value = client
        .post(format!("{}/count", node.base))
        .body(vec![7u8; size])
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("json");
    assert_eq!(counted["bytes"], size);
    let downloaded = client
        .get(format!("{}/big/{size}", node.base))
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("body");
    assert_eq!(downloaded.len(), size);

    // SIGTERM while a 2 s request is in flight: it still completes.
    let slow = tokio::spawn({
        let (client, url) = (client.clone(), format!("{}/slow", node.base));
        async move { client.get(url).send().await.map(|r| r.status()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = node.process.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let status = slow
        .await
        .expect("joined")
        .expect("the in-flight request is answered");
    assert_eq!(status, StatusCode::OK);
    node.process.terminate();
    assert!(!tenant.online().await, "the node said goodbye");

    // A node that dies without a goodbye is marked offline once its
    // connection drops.
    let node = Node::start_for(&scratch.0, &control, &tenant).await;
    eventually("online", || tenant.online()).await;
    node.process.kill();
    let took = eventually("offline after SIGKILL", || async { !tenant.online().await }).await;
    eprintln!("gateway-status offline {took:?} after SIGKILL");
}

/// An upstream that speaks HTTP/1.0: it answers `body` with a
/// Content-Length, or with none (the end of the body is the end of the
/// connection), then closes.
async fn http10_upstream(with_length: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let length = if with_length {
                    "Content-Length: 5\r\n"
                } else {
                    ""
                };
                let answer =
                    format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n{length}\r\nhello");
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    url
}

/// Sends `GET path` over one raw HTTP/1.1 connection to `node` and reads the
/// answer to its end: by its framing, or to the connection's close.
async fn raw_get(node: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = node.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the answer ends")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_upstream_is_answered_in_the_nodes_http_version() {
    let stage = support::Stage::new("http10").await;
    for (path, with_length) in [("/sized", true), ("/unsized", false)] {
        let service = stage
            .tenant
            .service(&http10_upstream(with_length).await, 5_000)
            .await;
        stage.tenant.route("GET", path, &service, false).await;
    }
    let node = stage.node(&[]).await;
    for path in ["/sized", "/unsized"] {
        let base = node.base.clone();
        eventually("the route to answer", || {
            let base = base.clone();
            async move { raw_get(&base, path).await.contains(" 200 ") }
        })
        .await;
        let answer = raw_get(&node.base, path).await;
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {head}");
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body.split("\r\n").nth(1).unwrap_or_default().to_owned()
        } else {
            body.to_owned()
        };
        assert_eq!(body, "hello", "{path}: {answer}");
    }
    // A keep-alive client reads the unsized answer to its end too.
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/unsized", node.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.text().await.expect("body"), "hello");
    node.process.terminate();
}
