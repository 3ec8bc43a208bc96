//! End-to-end support: the real `gatehouse` binary as control plane and
//! gateway node on free loopback ports, a real upstream, and a small client.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::any;
use axum::serve::ListenerExt;
use serde_json::{Value, json};

pub mod components;
#[path = "../../control/tests/api/throwaway_db.rs"]
pub mod throwaway_db;
pub mod tls;

pub const JWT_SECRET: &str = "e2e-secret-e2e-secret-e2e-secret-0000";
/// Set by a test binary that wants the binaries' debug logs (read at
/// spawn; each test binary has its own).
pub static VERBOSE_LOGS: AtomicBool = AtomicBool::new(false);

/// Every e2e tenant's password.
pub const PASSWORD: &str = "long-enough-pw";

/// Asserts that no log the binaries wrote under `dir` contains any of
/// `secrets` (keys, tokens, passwords must never be logged).
pub fn assert_logs_free_of(dir: &Path, secrets: &[&str]) {
    let mut read = 0;
    for entry in std::fs::read_dir(dir).expect("scratch dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|ext| ext != "log") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("log");
        read += 1;
        for secret in secrets {
            assert!(!secret.is_empty());
            assert!(
                !text.contains(secret),
                "{} contains a secret ({}…)",
                path.display(),
                &secret[..secret.len().min(6)]
            );
        }
    }
    assert!(read >= 2, "the control plane's and a node's logs were read");
}

/// A port on 127.0.0.1 where nothing listens: bound but never listening
/// while held, so connecting is refused and no other process is given it.
pub struct ClosedPort(socket2::Socket);

impl ClosedPort {
    pub fn new() -> Self {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
        socket.bind(&any.into()).expect("bound");
        Self(socket)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        let addr = self.0.local_addr().expect("local addr");
        format!("http://{}", addr.as_socket().expect("inet"))
    }
}

/// A port on 127.0.0.1 kept for the test's own listeners while held:
/// bound (never listening) with SO_REUSEPORT, so a listener the test stops
/// and starts again gets the port back, and no other process can take it
/// in between.
pub struct HeldPort {
    _hold: socket2::Socket,
    pub addr: std::net::SocketAddr,
}

impl HeldPort {
    pub fn new() -> Self {
        let hold = Self::socket();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
        hold.bind(&any.into()).expect("bound");
        let addr = hold
            .local_addr()
            .expect("local addr")
            .as_socket()
            .expect("inet");
        Self { _hold: hold, addr }
    }

    /// A listener on the held port.
    pub fn listener(&self) -> tokio::net::TcpListener {
        let socket = Self::socket();
        socket
            .bind(&self.addr.into())
            .expect("bound beside the hold");
        socket.listen(1024).expect("listen");
        socket.set_nonblocking(true).expect("nonblocking");
        tokio::net::TcpListener::from_std(socket.into()).expect("tokio listener")
    }

    fn socket() -> socket2::Socket {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket.set_reuse_port(true).expect("SO_REUSEPORT");
        socket
    }
}

/// A fixed address in front of a process that restarts on a new port, as
/// a load balancer is in front of a control plane: the tests never bind a
/// port a stopped process let go of, which another process may have taken
/// meanwhile. Connections are forwarded to the backend it points to; with
/// none they are accepted and closed at once. Pointing it elsewhere closes
/// the connections it was forwarding, as a backend taken out of the pool.
pub struct Front {
    pub port: u16,
    backend: tokio::sync::watch::Sender<Option<u16>>,
    task: tokio::task::JoinHandle<()>,
}

impl Front {
    /// A front on a free loopback port, forwarding to `backend`.
    pub async fn to(backend: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (target, current) = tokio::sync::watch::channel(Some(backend));
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut current = current.clone();
                let Some(backend) = *current.borrow_and_update() else {
                    continue;
                };
                tokio::spawn(async move {
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = current.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            backend: target,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Forwards connections to `backend` from now on, or (`None`) closes
    /// them; the connections forwarded so far are closed either way.
    pub fn point_to(&self, backend: Option<u16>) {
        self.backend.send_replace(backend);
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A scratch folder removed at drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-e2e-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("scratch");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Kept for the post-mortem: the binaries' logs are in there.
            eprintln!("test files kept in {}", self.0.display());
        } else {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }
}

/// A running `gatehouse` process, killed at drop.
pub struct Process {
    pub child: Child,
    pub name: &'static str,
}

impl Process {
    fn spawn(name: &'static str, args: &[String], log: &Path) -> Self {
        let log = std::fs::File::create(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(args)
            .env(
                "RUST_LOG",
                if VERBOSE_LOGS.load(Ordering::SeqCst) {
                    "debug"
                } else {
                    "info,pingora=warn"
                },
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("gatehouse starts");
        Self { child, name }
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL.
    pub fn kill(mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The control plane binary on a port it picked itself (it binds port 0
/// and logs the address, so no other process can take the port first).
pub struct ControlPlane {
    pub process: Process,
    pub base: String,
    pub port: u16,
}

impl ControlPlane {
    /// A control plane on a SQLite file in `dir`.
    pub async fn start(dir: &Path) -> Self {
        let database = format!("sqlite://{}/control.db", dir.display());
        Self::start_on(dir, &database).await
    }

    /// A control plane on the database at `database_url`.
    pub async fn start_on(dir: &Path, database_url: &str) -> Self {
        let args = vec![
            "control".to_owned(),
            "--listen=127.0.0.1:0".to_owned(),
            format!("--database-url={database_url}"),
            format!("--jwt-secret={JWT_SECRET}"),
            format!("--mail-outbox={}/outbox", dir.display()),
            format!("--data-dir={}/data", dir.display()),
        ];
        let log = dir.join(format!("control-{}.log", uuid::Uuid::new_v4().simple()));
        let process = Process::spawn("control", &args, &log);
        let line = logged_line(&log, "control plane listening").await;
        let port = field_addr(&line, "addr")
            .unwrap_or_else(|| panic!("no addr= in {line}"))
            .port();
        let base = format!("http://127.0.0.1:{port}");
        wait_for(&format!("{base}/healthz"), 200).await;
        Self {
            process,
            base,
            port,
        }
    }
}

/// The first line of `log` with `message` (colour codes stripped), once
/// it is there (10 s at most): where a process started on port 0 says it
/// listens.
pub async fn logged_line(log: &Path, message: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .map(strip_ansi)
            .find(|line| line.contains(message))
        {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "{} never said `{message}`:\n{text}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The address in the field `field` of a logged `line` (` field=addr`).
fn field_addr(line: &str, field: &str) -> Option<std::net::SocketAddr> {
    let value = line.split(&format!(" {field}=")).nth(1)?;
    let addr = value.split_whitespace().next()?.trim_matches('"');
    addr.parse().ok()
}

/// The `name` of each item of a JSON list (an API's list answer).
pub fn names(items: &Value) -> Vec<&str> {
    items
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|item| item["name"].as_str())
        .collect()
}

/// `line` without terminal colour codes.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A gateway node binary on ports it picked itself (it binds port 0 and
/// logs the addresses).
pub struct Node {
    pub process: Process,
    /// Where its output goes.
    pub log: PathBuf,
    pub base: String,
    pub admin: String,
    /// `host:port` of the HTTPS listener, when started with `--tls-listen`.
    pub tls: Option<String>,
}

impl Node {
    /// Starts a node; returns once it has said where it listens (not once
    /// it has config).
    pub async fn spawn(dir: &Path, control_url: &str, key: &str, state_dir: &Path) -> Self {
        Self::spawn_with(dir, control_url, key, state_dir, &[]).await
    }

    /// Starts a node with extra flags; returns once it has said where it
    /// listens.
    pub async fn spawn_with(
        dir: &Path,
        control_url: &str,
        key: &str,
        state_dir: &Path,
        extra: &[&str],
    ) -> Self {
        let mut args = vec![
            "proxy".to_owned(),
            format!("--control-url={control_url}"),
            format!("--gateway-key={key}"),
            "--listen=127.0.0.1:0".to_owned(),
            "--admin-listen=127.0.0.1:0".to_owned(),
            format!("--state-dir={}", state_dir.display()),
            "--shutdown-grace=2".to_owned(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let log = dir.join(format!("proxy-{}.log", uuid::Uuid::new_v4().simple()));
        let process = Process::spawn("proxy", &args, &log);
        let line = logged_line(&log, "gateway node starting").await;
        let addr =
            |field| field_addr(&line, field).unwrap_or_else(|| panic!("no {field}= in {line}"));
        let (listen, admin) = (addr("listen"), addr("admin"));
        let tls = extra
            .iter()
            .any(|a| a.starts_with("--tls-listen"))
            .then(|| addr("tls_listen").to_string());
        Self {
            process,
            log,
            base: format!("http://{listen}"),
            admin: format!("http://{admin}"),
            tls,
        }
    }

    /// Starts a node and waits until it serves a config.
    pub async fn start(dir: &Path, control_url: &str, key: &str, state_dir: &Path) -> Self {
        Self::start_with(dir, control_url, key, state_dir, &[]).await
    }

    /// Starts a node with extra flags and waits until it serves a config.
    pub async fn start_with(
        dir: &Path,
        control_url: &str,
        key: &str,
        state_dir: &Path,
        extra: &[&str],
    ) -> Self {
        let node = Self::spawn_with(dir, control_url, key, state_dir, extra).await;
        wait_for(&format!("{}/healthz", node.admin), 200).await;
        node.accepting().await;
        node
    }

    /// Starts a node for `tenant` (state in `dir/node`) and waits until it
    /// serves a config.
    pub async fn start_for(dir: &Path, control: &ControlPlane, tenant: &Tenant) -> Self {
        Self::start(dir, &control.base, &tenant.gateway_key, &dir.join("node")).await
    }

    /// The node's `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Waits until the traffic listener accepts connections (pingora binds
    /// it and the admin listener independently).
    pub async fn accepting(&self) {
        let addr = self.base.trim_start_matches("http://").to_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            assert!(Instant::now() < deadline, "{addr} never accepted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Polls `url` until it answers `status` (10 s at most).
pub async fn wait_for(url: &str, status: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status().as_u16() == status
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered {status}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until GET `url` (with `x-api-key: key`) answers `status`; returns
/// how long it took.
pub async fn until_status(
    client: &reqwest::Client,
    url: String,
    key: Option<&str>,
    status: reqwest::StatusCode,
) -> Duration {
    eventually(&format!("{url} to answer {status}"), || {
        let (client, url, key) = (client.clone(), url.clone(), key.map(str::to_owned));
        async move {
            let mut request = client.get(url);
            if let Some(key) = key {
                request = request.header("x-api-key", key);
            }
            request.send().await.is_ok_and(|r| r.status() == status)
        }
    })
    .await
}

/// Polls `check` until it is true (10 s at most); returns the time it took.
pub async fn eventually<F, Fut>(what: &str, check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(Duration::from_secs(10), what, check).await
}

/// Polls `check` until it is true, for at most `limit`.
pub async fn eventually_within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed()
}

/// Sends a request with an optional JSON body and bearer token (30 s at
/// most); the status and the JSON body (`null` when there is none).
pub async fn call_json(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (reqwest::StatusCode, Value) {
    let mut request = http.request(method, url).timeout(Duration::from_secs(30));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sent");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A tenant registered through the REST API, with a JSON client.
pub struct Tenant {
    pub http: reqwest::Client,
    pub api: String,
    pub token: String,
    pub gateway_key: String,
    pub email: String,
}

impl Tenant {
    pub async fn register(control: &str) -> Self {
        let http = reqwest::Client::new();
        let email = format!("e2e-{}@example.com", uuid::Uuid::new_v4().simple());
        let body: Value = http
            .post(format!("{control}/api/auth/register"))
            .json(&json!({ "name": "e2e", "email": email, "password": PASSWORD }))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("json");
        Self {
            api: format!(
                "{control}/api/tenants/{}",
                body["tenantId"].as_str().expect("tenant")
            ),
            token: body["token"].as_str().expect("token").to_owned(),
            gateway_key: body["gatewayApiKey"].as_str().expect("key").to_owned(),
            email,
            http,
        }
    }

    /// The tenant's id.
    pub fn id(&self) -> &str {
        self.api.rsplit('/').next().unwrap_or_default()
    }

    /// Where a node's state dir keeps this tenant's undelivered telemetry.
    pub fn outbox_in(&self, state_dir: &Path) -> PathBuf {
        state_dir.join("tenants").join(self.id()).join("outbox")
    }

    /// Sends a request to `{api}{path}`, asserting a 2xx; returns the JSON body.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }

    /// Sends a request to `{api}{path}` with the tenant's token; the status
    /// and the JSON body, whatever they are.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        let url = format!("{}{path}", self.api);
        call_json(&self.http, method, &url, Some(&self.token), body).await
    }

    pub async fn service(&self, target: &str, timeout_ms: i64) -> String {
        let body = self
            .send(
                reqwest::Method::POST,
                "/services",
                Some(json!({ "name": "svc", "targetUrl": target, "timeoutMs": timeout_ms })),
            )
            .await;
        body["id"].as_str().expect("id").to_owned()
    }

    pub async fn route(&self, method: &str, pattern: &str, service: &str, auth: bool) -> String {
        let body = self.send(reqwest::Method::POST, "/routes",
            Some(json!({ "method": method, "pathPattern": pattern, "serviceId": service, "authRequired": auth }))).await;
        body["id"].as_str().expect("id").to_owned()
    }

    /// Creates a consumer from `body`; returns it and its API key.
    pub async fn consumer(&self, body: Value) -> (Value, String) {
        let consumer = self
            .send(reqwest::Method::POST, "/consumers", Some(body))
            .await;
        let key = consumer["apiKey"].as_str().expect("key").to_owned();
        (consumer, key)
    }

    /// Uploads a plugin component; returns its id.
    pub async fn upload_plugin(&self, name: &str, wasm: &[u8]) -> String {
        let response = self
            .http
            .post(format!("{}/plugins?name={name}&version=1", self.api))
            .bearer_auth(&self.token)
            .header("content-type", "application/wasm")
            .body(wasm.to_vec())
            .send()
            .await
            .expect("sent");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, reqwest::StatusCode::CREATED, "{name}: {body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Sets the tenant's rate limits: the default tiers with these limits,
    /// and the anonymous per-IP limit (`None`: unlimited).
    pub async fn limits(&self, free: Option<i64>, anonymous: Option<i64>) {
        self.send(
            reqwest::Method::PUT,
            "/rate-limit-tiers",
            Some(json!({
                "tiers": [
                    { "name": "free", "requestsPerMinute": free },
                    { "name": "pro", "requestsPerMinute": 600 },
                    { "name": "enterprise", "requestsPerMinute": 6000 },
                    { "name": "unlimited", "requestsPerMinute": null },
                ],
                "anonymousRequestsPerMinute": anonymous,
            })),
        )
        .await;
    }

    /// No rate limits at all (for tests that count other things).
    pub async fn unlimited(&self) {
        self.limits(None, None).await;
    }

    /// Every log of the tenant matching `filter` (`?path=...` or ""), all
    /// pages.
    pub async fn all_logs(&self, filter: &str) -> Vec<Value> {
        let mut logs = Vec::new();
        for page in 1.. {
            let sep = if filter.is_empty() { "?" } else { "&" };
            let body = self
                .send(
                    reqwest::Method::GET,
                    &format!("/logs{filter}{sep}page={page}"),
                    None,
                )
                .await;
            let rows = body.as_array().expect("list").clone();
            let done = rows.len() < 50;
            logs.extend(rows);
            if done {
                break;
            }
        }
        logs
    }

    pub async fn online(&self) -> bool {
        self.send(reqwest::Method::GET, "/gateway-status", None)
            .await["online"]
            == true
    }
}

/// The usual stage of an end-to-end test: a scratch dir, the test
/// upstream, a control plane on SQLite, a tenant without rate limits and one
/// service pointing at the upstream.
pub struct Stage {
    pub scratch: Scratch,
    pub upstream: Upstream,
    pub control: ControlPlane,
    /// The address the tenant and its nodes reach the control plane at.
    pub front: Front,
    pub tenant: Tenant,
    pub service: String,
}

impl Stage {
    pub async fn new(name: &str) -> Self {
        let scratch = Scratch::new(name);
        let upstream = upstream().await;
        let control = ControlPlane::start(&scratch.0).await;
        let front = Front::to(control.port).await;
        let tenant = Tenant::register(&front.url()).await;
        tenant.unlimited().await;
        let service = tenant.service(&upstream.url, 30_000).await;
        Self {
            scratch,
            upstream,
            control,
            front,
            tenant,
            service,
        }
    }

    /// A node of the tenant with `flags`, its state in `<scratch>/node`,
    /// once it serves the config.
    pub async fn node(&self, flags: &[&str]) -> Node {
        Node::start_with(
            &self.scratch.0,
            &self.front.url(),
            &self.tenant.gateway_key,
            &self.scratch.0.join("node"),
            flags,
        )
        .await
    }
}

/// A running test upstream.
pub struct Upstream {
    pub url: String,
    /// What `/health` answers: 200 while true, 503 while false.
    pub healthy: Arc<AtomicBool>,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// Body bytes `/count` has read so far, counted as they arrive (a body
    /// cut off half-way counts what came).
    pub body_bytes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Upstream {
    /// Stops it as a restarting service does: no new connections, idle
    /// keep-alive connections closed, requests in flight finished.
    pub async fn stop(self) {
        self.stop.send(()).ok();
        self.task.await.ok();
    }
}

/// The upstream the tests proxy to: `/count` answers how many body bytes it
/// read, `/big/{n}` sends `n` bytes, `/slow/*` sleeps 2 s, `/health` answers
/// as [`Upstream::healthy`] says, `/fail` answers 500, everything else
/// echoes what it received as JSON.
pub async fn upstream() -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    serve_upstream(listener, format!("http://{addr}"))
}

/// Serves the test upstream's app on `listener` (plain or TLS), known to
/// the proxy as `url`.
pub fn serve_upstream<L>(listener: L, url: String) -> Upstream
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let healthy = Arc::new(AtomicBool::new(true));
    let health = Arc::clone(&healthy);
    let body_bytes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&body_bytes);
    let app = Router::new().fallback(any(move |request: Request| async move {
        let path = request.uri().path().to_owned();
        if path == "/health" {
            let up = health.load(Ordering::SeqCst);
            let status = if up {
                axum::http::StatusCode::OK
            } else {
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            };
            return (status, "health").into_response();
        }
        if path == "/fail" {
            return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
        }
        if path == "/count" {
            use futures_util::StreamExt;
            let mut stream = request.into_body().into_data_stream();
            let mut body = 0;
            while let Some(Ok(chunk)) = stream.next().await {
                body += chunk.len();
                counted.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            return axum::Json(json!({ "bytes": body })).into_response();
        }
        if let Some(size) = path
            .strip_prefix("/big/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            return vec![b'x'; size].into_response();
        }
        if path.contains("/slow") {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let headers: serde_json::Map<String, Value> = request
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value::String(v.to_str().unwrap_or("").to_owned()),
                )
            })
            .collect();
        axum::Json(json!({
            "method": request.method().as_str(),
            "path": path,
            "query": request.uri().query(),
            "headers": headers,
        }))
        .into_response()
    }));
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    let listener = listener.tap_io(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                stopped.await.ok();
            })
            .await
            .ok();
    });
    Upstream {
        url,
        healthy,
        connections,
        body_bytes,
        task,
        stop,
    }
}
