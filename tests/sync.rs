//! A gateway node's config follows the real control plane: first snapshot,
//! live changes (a revoked key stops working as soon as the change
//! arrives), a rejected gateway key, the control plane going away, and a
//! node restarting from its state dir while the control plane is down. A
//! node on a state dir another tenant's node used never serves that
//! tenant's config nor ships its telemetry.

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
    let shipping = Shipping {
        outbox: Arc::new(Mutex::new(Outbox::unbound(LIMITS))),
        sealed: Arc::new(Notify::new()),
    };
    node_with(control_url, key, live, state, shipping)
}

fn node_with(
    control_url: &str,
    key: &str,
    live: &LiveConfig,
    state: &std::path::Path,
    shipping: Shipping,
) -> Syncer {
    Syncer::new(
        SyncSettings {
            control_url: control_url.to_owned(),
            gateway_key: key.to_owned(),
            node_name: "test-node".into(),
            control_ca_file: None,
        },
        live.clone(),
        StateDir::open(state).expect("state dir"),
        shipping,
    )
}

const LIMITS: OutboxLimits = OutboxLimits {
    memory_records: 1000,
    spill_bytes: 1 << 20,
};

/// A registered tenant: its API base, token and gateway key.
struct Account {
    api: String,
    token: String,
    gateway_key: String,
}

async fn register(http: &reqwest::Client, base: &str, email: &str) -> Account {
    let tenant = call(
        http,
        reqwest::Method::POST,
        format!("{base}/api/auth/register"),
        None,
        Some(json!({ "name": "t", "email": email, "password": "long-enough-pw" })),
    )
    .await;
    Account {
        api: format!(
            "{base}/api/tenants/{}",
            tenant["tenantId"].as_str().expect("id")
        ),
        token: tenant["token"].as_str().expect("token").to_owned(),
        gateway_key: tenant["gatewayApiKey"].as_str().expect("key").to_owned(),
    }
}

/// One service and one open route at `path`: the same number of changes
/// for every tenant, so their configs have the same version.
async fn open_route(http: &reqwest::Client, account: &Account, path: &str) {
    let service = call(
        http,
        reqwest::Method::POST,
        format!("{}/services", account.api),
        Some(&account.token),
        Some(json!({ "name": "svc", "targetUrl": "http://127.0.0.1:9" })),
    )
    .await;
    call(http, reqwest::Method::POST, format!("{}/routes", account.api), Some(&account.token),
        Some(json!({ "method": "GET", "pathPattern": path, "serviceId": service["id"], "authRequired": false }))).await;
}

/// A telemetry batch holding one request log for `path`.
fn batch_for(path: &str) -> gatehouse_protocol::telemetry::TelemetryBatch {
    gatehouse_protocol::telemetry::TelemetryBatch {
        batch_id: uuid::Uuid::new_v4().to_string(),
        node_id: "test-node".into(),
        logs: vec![gatehouse_protocol::telemetry::LogRecord {
            request_id: uuid::Uuid::new_v4().to_string(),
            method: "GET".into(),
            path: path.into(),
            status_code: 200,
            client_ip: "127.0.0.1".into(),
            at_ms: i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_millis(),
            )
            .expect("ms"),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn logged_paths(http: &reqwest::Client, account: &Account) -> Vec<String> {
    let logs = call(
        http,
        reqwest::Method::GET,
        format!("{}/logs", account.api),
        Some(&account.token),
        None,
    )
    .await;
    logs.as_array()
        .expect("a list")
        .iter()
        .filter_map(|log| log["path"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_and_ships_only_its_own_tenant() {
    let dir = std::env::temp_dir().join(format!("gatehouse-sync-iso-{}", uuid::Uuid::new_v4()));
    let _scratch = Scratch(dir.clone());
    let control = start_control(&dir).await;
    let base = format!("http://{}", control.addr);
    let http = reqwest::Client::new();
    let a = register(&http, &base, "a@example.com").await;
    let b = register(&http, &base, "b@example.com").await;
    open_route(&http, &a, "/a-only").await;
    open_route(&http, &b, "/b-only").await;
    let state = dir.join("shared-state");

    // A's node serves A's config, then stops with telemetry undelivered
    // (spilled in A's folder, as a node that could not reach the control
    // plane leaves it).
    let live = LiveConfig::default();
    let syncer = node(&base, &a.gateway_key, &live, &state);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(syncer.run(stopped));
    until("A's config", || live.load().is_some()).await;
    let version_a = live.version();
    stop.send(true).ok();
    task.await.expect("stops");
    let tenant_a = StateDir::open(&state)
        .expect("state")
        .tenants()
        .expect("folders");
    assert_eq!(tenant_a.len(), 1);
    let mut spilled = Outbox::open(
        state.join("tenants").join(&tenant_a[0]).join("outbox"),
        LIMITS,
    )
    .expect("A's outbox");
    spilled.push(batch_for("/a-traffic"));
    spilled.spill_all();
    drop(spilled);

    // B's node on the same state dir serves nothing of A's, even with the
    // control plane away.
    let live = LiveConfig::default();
    let syncer = node(&base, &b.gateway_key, &live, &state);
    assert_eq!(
        syncer.restore().expect("reads"),
        None,
        "A's config is not B's"
    );
    assert!(live.load().is_none());

    // Connected, it is sent B's config (the same version as A's) and ships
    // its own telemetry, never A's.
    let shipping = Shipping {
        outbox: Arc::new(Mutex::new(Outbox::unbound(LIMITS))),
        sealed: Arc::new(Notify::new()),
    };
    let syncer = node_with(&base, &b.gateway_key, &live, &state, shipping.clone());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(syncer.run(stopped));
    until("B's config", || live.load().is_some()).await;
    let config = live.load().expect("config");
    assert_eq!(live.version(), version_a, "the same number of changes");
    assert!(config.routes.lookup("GET", "/b-only").is_some());
    assert!(config.routes.lookup("GET", "/a-only").is_none());
    shipping
        .outbox
        .lock()
        .expect("outbox")
        .push(batch_for("/b-traffic"));
    shipping.sealed.notify_one();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let paths = logged_paths(&http, &b).await;
        assert!(
            !paths.iter().any(|p| p == "/a-traffic"),
            "A's traffic shipped as B's: {paths:?}"
        );
        if paths.iter().any(|p| p == "/b-traffic") {
            break;
        }
        assert!(Instant::now() < deadline, "B's telemetry never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).ok();
    task.await.expect("stops");

    // A's node back on the state dir ships A's spilled telemetry to A.
    let live = LiveConfig::default();
    let syncer = node(&base, &a.gateway_key, &live, &state);
    assert_eq!(syncer.restore().expect("reads"), version_a);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(syncer.run(stopped));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logged_paths(&http, &a)
        .await
        .iter()
        .any(|p| p == "/a-traffic")
    {
        assert!(
            Instant::now() < deadline,
            "A's spilled telemetry never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !logged_paths(&http, &a)
            .await
            .iter()
            .any(|p| p == "/b-traffic")
    );
    stop.send(true).ok();
    task.await.expect("stops");
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
    // What came as deltas (the new routes, the 12,000 consumers, folded
    // into a snapshot written from the served config) is there too.
    assert!(config.routes.lookup("POST", "/orders").is_some());
    assert!(config.routes.lookup("GET", "/big").is_some());
    assert_eq!(config.keys.len(), 12_000);
    assert!(config.keys.by_id("bulk-7").is_some());
}
