//! A gateway node's config follows the real control plane: first snapshot,
//! live changes (a revoked key stops working as soon as the change
//! arrives), a rejected gateway key, the control plane going away, and a
//! node restarting from its state dir while the control plane is down.

use std::time::{Duration, Instant};

use clap::Parser;
use gatehouse_control::{Control, ControlArgs};
use gatehouse_proxy::LiveConfig;
use gatehouse_proxy::state_dir::StateDir;
use std::sync::{Arc, Mutex};

use gatehouse_proxy::sync::{Shipping, SyncSettings, Syncer};
use gatehouse_proxy::telemetry::outbox::{Outbox, OutboxLimits};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::sync::watch;

struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

async fn start_control(dir: &std::path::Path) -> Control {
    let args = ControlArgs::try_parse_from([
        "control".to_owned(),
        "--listen=127.0.0.1:0".to_owned(),
        format!("--database-url=sqlite://{}/db.sqlite", dir.display()),
        "--jwt-secret=sync-test-secret-sync-test-secret-000".to_owned(),
        format!("--mail-outbox={}/outbox", dir.display()),
        format!("--data-dir={}/data", dir.display()),
    ])
    .expect("flags");
    Control::start(&args).await.expect("control plane starts")
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sent");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap_or(Value::Null)
}

/// Polls `check` every 5 ms for up to 5 s; returns how long it took.
async fn until(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

fn node(control_url: &str, key: &str, live: &LiveConfig, state: &std::path::Path) -> Syncer {
    Syncer::new(
        SyncSettings {
            control_url: control_url.to_owned(),
            gateway_key: key.to_owned(),
            node_name: "test-node".into(),
        },
        live.clone(),
        StateDir::open(state).expect("state dir"),
        Shipping {
            outbox: Arc::new(Mutex::new(
                Outbox::open(
                    state.join("outbox"),
                    OutboxLimits {
                        memory_records: 1000,
                        spill_bytes: 1 << 20,
                    },
                )
                .expect("outbox"),
            )),
            sealed: Arc::new(Notify::new()),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_config_follows_the_control_plane() {
    let dir = std::env::temp_dir().join(format!("gatehouse-sync-{}", std::process::id()));
    let _scratch = Scratch(dir.clone());
    let control = start_control(&dir).await;
    let base = format!("http://{}", control.addr);
    let http = reqwest::Client::new();
    use reqwest::Method;

    let tenant = call(
        &http,
        Method::POST,
        format!("{base}/api/auth/register"),
        None,
        Some(json!({ "name": "t", "email": "sync@example.com", "password": "long-enough-pw" })),
    )
    .await;
    let token = tenant["token"].as_str().expect("token").to_owned();
    let api = format!(
        "{base}/api/tenants/{}",
        tenant["tenantId"].as_str().expect("id")
    );
    let gateway_key = tenant["gatewayApiKey"].as_str().expect("key").to_owned();
    let service = call(
        &http,
        Method::POST,
        format!("{api}/services"),
        Some(&token),
        Some(json!({ "name": "users", "targetUrl": "http://127.0.0.1:9/v1" })),
    )
    .await;
    call(&http, Method::POST, format!("{api}/routes"), Some(&token),
        Some(json!({ "method": "GET", "pathPattern": "/users/:id", "serviceId": service["id"], "authRequired": true }))).await;
    let consumer = call(
        &http,
        Method::POST,
        format!("{api}/consumers"),
        Some(&token),
        Some(json!({ "name": "app" })),
    )
    .await;
    let api_key = consumer["apiKey"].as_str().expect("key").to_owned();

    // A wrong key is refused and the node says so.
    let refused = node(
        &base,
        "gk_wrong",
        &LiveConfig::default(),
        &dir.join("refused"),
    );
    let refused_status = refused.status();
    let (stop_refused, stopped) = watch::channel(false);
    tokio::spawn(refused.run(stopped));
    until("the rejection", || refused_status.rejected()).await;
    assert!(
        refused_status
            .last_error()
            .expect("an error")
            .contains("401")
    );
    stop_refused.send(true).ok();

    // The real node gets the snapshot.
    let live = LiveConfig::default();
    let syncer = node(&base, &gateway_key, &live, &dir.join("node"));
    let status = syncer.status();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(syncer.run(stopped));
    until("the first snapshot", || live.load().is_some()).await;
    let config = live.load().expect("config");
    assert!(config.routes.lookup("GET", "/users/7").is_some());
    assert!(config.keys.lookup(&api_key).is_some());
    assert!(status.connected());

    // Revoking the consumer cuts its key off as soon as the change arrives.
    let started = Instant::now();
    let response = http
        .delete(format!(
            "{api}/consumers/{}",
            consumer["id"].as_str().expect("id")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    until("the revocation", || {
        live.load()
            .is_some_and(|c| c.keys.lookup(&api_key).is_none())
    })
    .await;
    eprintln!(
        "revocation reached the node in {:?} (REST call included)",
        started.elapsed()
    );

    // New routes arrive too.
    call(&http, Method::POST, format!("{api}/routes"), Some(&token),
        Some(json!({ "method": "POST", "pathPattern": "/orders", "serviceId": service["id"], "authRequired": false }))).await;
    until("the new route", || {
        live.load()
            .is_some_and(|c| c.routes.lookup("POST", "/orders").is_some())
    })
    .await;

    // A large config (12,000 consumers, put in the database directly; the
    // next change pushes them all) arrives in parts and is served whole.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12000) \
         INSERT INTO consumers (id, tenant_id, name, api_key_hash, api_key_prefix, \
         rate_limit_tier, created_at, updated_at) \
         SELECT 'bulk-' || i, $1, 'bulk', printf('%064d', i), 'ck_bulk', 'free', i, i FROM n",
    )
    .bind(tenant["tenantId"].as_str().expect("id"))
    .execute(control.state.store().pool())
    .await
    .expect("consumers inserted");
    call(&http, Method::POST, format!("{api}/routes"), Some(&token),
        Some(json!({ "method": "GET", "pathPattern": "/big", "serviceId": service["id"], "authRequired": false }))).await;
    until("the large config", || {
        live.load()
            .is_some_and(|c| c.routes.lookup("GET", "/big").is_some())
    })
    .await;
    assert_eq!(live.load().expect("config").keys.len(), 12_000);
    assert!(status.connected(), "{:?}", status.last_error());
    let served_version = live.version().expect("version");

    // Rotating the gateway key cuts this node off at once: it keeps serving
    // what it has and says why; the old key is refused from then on.
    let rotated = call(
        &http,
        Method::POST,
        format!("{api}/gateway-key"),
        Some(&token),
        None,
    )
    .await;
    assert!(
        rotated["gatewayApiKey"]
            .as_str()
            .expect("key")
            .starts_with("gk_")
    );
    until("the cut-off", || status.rejected()).await;
    let why = status.last_error().expect("why");
    assert!(why.contains("rotated") || why.contains("401"), "{why}");
    assert_eq!(live.version(), Some(served_version));

    // The control plane goes away: the node keeps serving what it has.
    control.stop().await.expect("stops");
    until("the link to drop", || !status.connected()).await;
    let config = live.load().expect("still configured");
    assert_eq!(config.version, served_version);
    assert!(config.routes.lookup("POST", "/orders").is_some());
    stop.send(true).ok();
    task.await.expect("sync task ends");

    // A node restarted while the control plane is down serves from disk.
    let restarted = LiveConfig::default();
    let syncer = node(&base, &gateway_key, &restarted, &dir.join("node"));
    assert_eq!(syncer.restore().expect("reads state"), Some(served_version));
    let config = restarted.load().expect("restored");
    assert!(config.routes.lookup("GET", "/users/7").is_some());
    assert!(
        config.keys.lookup(&api_key).is_none(),
        "the revocation survived the restart"
    );
}
