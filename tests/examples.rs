//! The example plugins of `plugins/examples/`, in Rust, JavaScript and
//! Python, uploaded through the REST API like a tenant would, attached to
//! routes, and seen at work through a real node: headers from config (and
//! on the response), an HMAC signature the upstream can check, a block rule,
//! a path rewrite.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use gatehouse_proxy::plugins::builtins::examples::{ADD_HEADER, HMAC_SIGN};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use support::{ControlPlane, Node, Scratch, Tenant, eventually_within, upstream};

/// Builds the JavaScript and Python examples with `gatehouse plugin build`
/// (componentize-js and componentize-py, installed on first use) and reads
/// them.
fn language_examples() -> (Vec<u8>, Vec<u8>) {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("example-plugins");
    let build = |name: &str| {
        let component = out.join(format!("{name}.wasm"));
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["plugin", "build", "--dir"])
            .arg(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("plugins/examples")
                    .join(name),
            )
            .arg("--out")
            .arg(&component)
            .status()
            .expect("gatehouse plugin build runs");
        assert!(status.success(), "building {name} failed");
        std::fs::read(&component).expect("built component")
    };
    (build("js-guard"), build("python-rewrite"))
}

async fn route_with(tenant: &Tenant, service: &str, pattern: &str, plugin: &str, config: Value) {
    tenant
        .send(
            Method::POST,
            "/routes",
            Some(
                json!({ "method": "GET", "pathPattern": pattern, "serviceId": service,
                "authRequired": false,
                "plugins": [{ "pluginId": plugin, "config": config, "failurePolicy": "closed" }] }),
            ),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_plugins_in_three_languages_work_through_the_proxy() {
    let (js_guard, python_rewrite) = tokio::task::spawn_blocking(language_examples)
        .await
        .expect("built");
    let scratch = Scratch::new("example-plugins");
    let upstream = upstream().await;
    let control = ControlPlane::start(&scratch.0).await;
    let tenant = Tenant::register(&control.base).await;
    tenant.unlimited().await;
    let service = tenant.service(&upstream.url, 30_000).await;

    let add_header = tenant.upload_plugin("add-header", ADD_HEADER).await;
    let hmac_sign = tenant.upload_plugin("hmac-sign", HMAC_SIGN).await;
    let guard = tenant.upload_plugin("js-guard", &js_guard).await;
    let rewrite = tenant
        .upload_plugin("python-rewrite", &python_rewrite)
        .await;
    route_with(
        &tenant,
        &service,
        "/rust/header/*",
        &add_header,
        json!({ "request": { "x-team": "payments" }, "response": { "x-served-by": "gatehouse" } }),
    )
    .await;
    route_with(
        &tenant,
        &service,
        "/rust/signed/*",
        &hmac_sign,
        json!({ "keyId": "k1", "secret": "s3cret" }),
    )
    .await;
    route_with(
        &tenant,
        &service,
        "/js/*",
        &guard,
        json!({ "requireHeader": "x-tenant", "denyIps": ["203.0.113.7"] }),
    )
    .await;
    route_with(
        &tenant,
        &service,
        "/py/*",
        &rewrite,
        json!({ "rules": [{ "from": "/py/v1/", "to": "/api/v2/" }] }),
    )
    .await;

    // Debug builds instantiate the language runtimes slowly: a roomier
    // deadline than the 10 ms default.
    let node = Node::start_with(
        &scratch.0,
        &control.base,
        &tenant.gateway_key,
        &scratch.0.join("node"),
        &["--plugin-deadline-ms=2000"],
    )
    .await;
    let client = reqwest::Client::new();
    let get = |path: &str, tenant_header: bool| {
        let mut request = client.get(format!("{}{path}", node.base));
        if tenant_header {
            request = request.header("x-tenant", "acme");
        }
        request.send()
    };

    // Nodes fetch and compile the components (seconds for the language
    // runtimes); until then the routes fail closed.
    let waited = eventually_within(
        Duration::from_secs(120),
        "every example plugin loaded",
        || async {
            let mut ready = true;
            for path in ["/rust/header/a", "/rust/signed/a", "/js/a", "/py/v1/a"] {
                let status = get(path, true).await.map(|r| r.status());
                ready &= status.is_ok_and(|s| s == StatusCode::OK);
            }
            ready
        },
    )
    .await;
    eprintln!("example plugins loaded after {waited:?}");

    // Rust: headers from config, upstream-bound and on the response.
    let response = get("/rust/header/x", false).await.expect("sent");
    assert_eq!(
        response.headers()["x-served-by"],
        "gatehouse",
        "on-response ran"
    );
    let echoed: Value = response.json().await.expect("json");
    assert_eq!(echoed["headers"]["x-team"], "payments");

    // Rust: a signature the upstream can verify with the shared secret.
    let echoed: Value = get("/rust/signed/orders?id=7", false)
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let headers = &echoed["headers"];
    assert_eq!(headers["x-gatehouse-key-id"], "k1");
    let canonical = format!(
        "GET\n/rust/signed/orders\nid=7\n\n{}",
        headers["x-request-id"].as_str().expect("request id")
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").expect("key");
    mac.update(canonical.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(headers["x-gatehouse-signature"], format!("v1={expected}"));

    // JavaScript: the block rule answers 403 with the reason; others pass.
    let blocked = get("/js/data", false).await.expect("sent");
    assert_eq!(blocked.status(), StatusCode::FORBIDDEN);
    let body: Value = blocked.json().await.expect("json");
    assert_eq!(body["error"]["code"], "blocked");
    assert_eq!(body["error"]["message"], "header x-tenant is required");
    assert_eq!(
        get("/js/data", true).await.expect("sent").status(),
        StatusCode::OK
    );

    // Python: the path the upstream gets is rewritten.
    let echoed: Value = get("/py/v1/users?page=2", false)
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(echoed["path"], "/api/v2/users");
    assert_eq!(echoed["query"], "page=2");
    assert_eq!(echoed["headers"]["x-rewritten-from"], "/py/v1/users");
    // Outside its rules it changes nothing.
    let echoed: Value = get("/py/other", false)
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(echoed["path"], "/py/other");
    node.process.terminate();
    // A plugin's config may hold secrets (the HMAC key): never logged.
    support::assert_logs_free_of(&scratch.0, &["s3cret", &tenant.gateway_key, &tenant.token]);
}
