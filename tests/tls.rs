//! TLS end to end: the node's HTTPS listener (certificate from files, h2
//! offered by ALPN, `X-Forwarded-Proto: https`), https services verified
//! against `--upstream-ca-file` (an untrusted one answers 502), and health
//! checks over TLS with the same trust; a node following its control
//! plane over `wss://` behind a private CA (`--control-ca-file`), and
//! refusing one whose certificate it cannot verify.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::tls::{Pki, handshake, https_get, https_upstream, tls_front};
use support::{ControlPlane, Node, Scratch, Tenant, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_speaks_tls_to_clients_and_to_services() {
    let scratch = Scratch::new("tls");
    let trusted = Pki::new(&scratch.0, "trusted");
    let stranger = Pki::new(&scratch.0, "stranger");
    let node_cert = trusted.leaf("node");
    let upstream = https_upstream(&trusted.leaf("upstream")).await;
    let impostor = https_upstream(&stranger.leaf("impostor")).await;

    let control = ControlPlane::start(&scratch.0).await;
    let tenant = Tenant::register(&control.base).await;
    tenant.unlimited().await;
    let service = tenant
        .send(
            Method::POST,
            "/services",
            Some(json!({
                "name": "secure", "targetUrl": upstream.url, "healthCheckPath": "/health",
            })),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let untrusted = tenant.service(&impostor.url, 5_000).await;
    tenant.route("GET", "/secure/*", &service, false).await;
    tenant.route("GET", "/untrusted/*", &untrusted, false).await;

    let node = Node::start_with(
        &scratch.0,
        &control.base,
        &tenant.gateway_key,
        &scratch.0.join("node"),
        &[
            "--tls-listen=127.0.0.1:0",
            &format!("--tls-cert={}", node_cert.cert_pem.display()),
            &format!("--tls-key={}", node_cert.key_pem.display()),
            &format!("--upstream-ca-file={}", trusted.ca_pem.display()),
            "--health-interval-ms=200",
        ],
    )
    .await;
    let tls_addr = node.tls.clone().expect("the HTTPS listener's address");

    // Plain HTTP in, HTTPS to the service (its certificate verified).
    let response = reqwest::get(format!("{}/secure/a?x=1", node.base))
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["path"], "/secure/a");
    assert_eq!(body["headers"]["x-forwarded-proto"], "http");

    // HTTPS in: the node's certificate verifies against the CA, and the
    // service is told the client came over TLS.
    let client = trusted.client(&[b"http/1.1"]);
    let reply = https_get(&client, &tls_addr, "/secure/b")
        .await
        .expect("https");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains(r#""path":"/secure/b""#),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains(r#""x-forwarded-proto":"https""#),
        "{}",
        reply.body
    );
    // h2 is offered by ALPN.
    let (_, alpn) = handshake(&trusted.client(&[b"h2", b"http/1.1"]), &tls_addr)
        .await
        .expect("handshake");
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    // A client that does not trust the node's CA gets no session.
    let refused = handshake(&stranger.client(&[b"http/1.1"]), &tls_addr).await;
    assert!(refused.is_err(), "an unknown CA must fail the handshake");
    // Routing and errors are the same over TLS.
    let reply = https_get(&client, &tls_addr, "/nowhere")
        .await
        .expect("https");
    assert_eq!(reply.status, 404);
    assert!(reply.body.contains("route_not_found"), "{}", reply.body);

    // A service whose certificate the node does not trust is not talked to.
    let response = reqwest::get(format!("{}/untrusted/x", node.base))
        .await
        .expect("sent");
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    // Its error event says so in words.
    let said = eventually("the TLS failure said in words", || async {
        let errors = tenant.send(Method::GET, "/errors", None).await;
        errors.as_array().into_iter().flatten().any(|e| {
            e["kind"] == "upstream_unavailable"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("TLS handshake with "))
        })
    })
    .await;
    eprintln!("TLS failure on record after {said:?}");

    // Health checks go over TLS with the same trust.
    eventually("the https service reported up", || async {
        let health = tenant.send(Method::GET, "/health", None).await;
        health
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| h["serviceId"] == service.as_str() && h["status"] == "up")
    })
    .await;
    upstream
        .healthy
        .store(false, std::sync::atomic::Ordering::SeqCst);
    eventually("the https service reported down", || async {
        let health = tenant.send(Method::GET, "/health", None).await;
        health.as_array().into_iter().flatten().any(|h| {
            h["serviceId"] == service.as_str() && h["status"] == "down" && h["httpStatus"] == 503
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_follows_its_control_plane_over_wss() {
    let scratch = Scratch::new("wss");
    let trusted = Pki::new(&scratch.0, "trusted");
    let stranger = Pki::new(&scratch.0, "stranger");
    let control = ControlPlane::start(&scratch.0).await;
    let backend = format!("127.0.0.1:{}", control.port).parse().expect("addr");
    let port = tls_front(&trusted.leaf("control"), backend).await;
    let control_url = format!("https://localhost:{port}");
    let tenant = Tenant::register(&control.base).await;
    let service = tenant.service("http://127.0.0.1:9", 1_000).await;
    let ca = format!("--control-ca-file={}", trusted.ca_pem.display());
    let node = Node::start_with(
        &scratch.0,
        &control_url,
        &tenant.gateway_key,
        &scratch.0.join("node"),
        &[&ca],
    )
    .await;
    assert!(node.metrics().await.contains("gatehouse_sync_connected 1"));
    // Changes arrive over the TLS link too.
    tenant.route("GET", "/over-tls", &service, false).await;
    let http = reqwest::Client::new();
    eventually("the route over wss", || {
        let url = format!("{}/over-tls", node.base);
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .is_ok_and(|r| r.status() != reqwest::StatusCode::NOT_FOUND)
        }
    })
    .await;
    node.process.terminate();

    // A control plane whose certificate the node cannot verify is refused.
    let wrong = format!("--control-ca-file={}", stranger.ca_pem.display());
    let refused = Node::spawn_with(
        &scratch.0,
        &control_url,
        &tenant.gateway_key,
        &scratch.0.join("refused"),
        &[&wrong],
    )
    .await;
    eventually("the TLS error to be reported", || {
        let url = format!("{}/healthz", refused.admin);
        async move {
            let Ok(reply) = reqwest::get(url).await else {
                return false;
            };
            let body: Value = reply.json().await.unwrap_or(Value::Null);
            body.to_string().contains("TLS")
        }
    })
    .await;
    assert!(
        refused
            .metrics()
            .await
            .contains("gatehouse_sync_connected 0")
    );
    refused.process.terminate();
}
