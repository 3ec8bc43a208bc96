//! `gatehouse export / diff / apply / sync`, run as a user runs them,
//! against a real control plane on SQLite and on PostgreSQL and a real
//! node: diff's output and exit codes; an apply that uploads a plugin by
//! its path only while its hash is new, is one config version, and is
//! served by the node at once; `export | apply` and a second apply that
//! change nothing; an invalid item that leaves everything as it was; sync
//! deleting what the file lacks and nothing else; read and write tokens and
//! revocation. A second test applies 1,000 routes and 10,000 consumers and
//! prints how long that took (one version, again); a third has another
//! change land between an apply's plan and the apply, which plans again.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use gatehouse_proxy::plugins::builtins::examples::ADD_HEADER;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::throwaway_db::ThrowawayDb;
use support::{ControlPlane, Node, Scratch, Tenant, eventually, strip_ansi, upstream};

/// `gatehouse <args>` with the control plane's address and `token`.
fn gatehouse(args: &[&str], url: &str, token: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env("GATEHOUSE_URL", url)
        .env("GATEHOUSE_TOKEN", token)
        .env_remove("GATEHOUSE_TENANT")
        .output()
        .expect("gatehouse runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success; the command's standard output.
fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Asserts failure with exit code 1; the command's standard error.
fn refused(output: Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(&output),
        stderr(&output)
    );
    stderr(&output)
}

fn path(file: &Path) -> &str {
    file.to_str().expect("a UTF-8 path")
}

/// The versions of the configs the node installed, in order.
fn installed(log: &Path) -> Vec<i64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(strip_ansi)
        .filter(|line| line.contains("config installed"))
        .filter_map(|line| {
            let at = line.find("version=")? + "version=".len();
            let digits: String = line[at..]
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

/// The config version a dry run of `file` reports (the live one).
fn live_version(file: &Path, url: &str, token: &str) -> i64 {
    let output = gatehouse(&["diff", "-f", path(file), "--json"], url, token);
    let plan: Value = serde_json::from_str(&ok(output)).expect("diff --json is JSON");
    plan["configVersion"].as_i64().expect("configVersion")
}

async fn status_of(node: &Node, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{}{path}", node.base));
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    request.send().await.expect("sent")
}

fn gateway_yaml(upstream: &str) -> String {
    format!(
        r#"# The example tenant of docs/config-as-code.md, smaller.
services:
  - name: echo
    targetUrl: {upstream}
routes:
  - method: GET
    pathPattern: /open
    service: echo
    authRequired: false
    plugins:
      - name: add-header
        version: "0.1.0"
        path: plugins/add-header.wasm
        config:
          response:
            x-served-by: gatehouse
  - method: GET
    pathPattern: /private/*
    service: echo
    authRequired: true
  - method: POST
    pathPattern: /private/*
    service: echo
    authRequired: true
consumers:
  - name: alice
    rateLimitTier: pro
  - name: bob
rateLimits:
  tiers:
    - name: free
      requestsPerMinute: 1000
    - name: pro
      requestsPerMinute: 6000
  anonymousRequestsPerMinute: null
"#
    )
}

async fn config_as_code(scratch: &Scratch, database_url: &str) {
    let dir = &scratch.0;
    let control = ControlPlane::start_on(dir, database_url).await;
    let upstream = upstream().await;
    let tenant = Tenant::register(&control.base).await;
    // Debug builds run plugins slowly: a roomier deadline than the 10 ms
    // default.
    let node = Node::start_with(
        dir,
        &control.base,
        &tenant.gateway_key,
        &dir.join("node"),
        &["--plugin-deadline-ms=2000"],
    )
    .await;
    let url = control.base.as_str();
    let token = tenant.token.as_str();
    std::fs::create_dir_all(dir.join("plugins")).expect("plugins dir");
    std::fs::write(dir.join("plugins/add-header.wasm"), ADD_HEADER).expect("wasm");
    let file = dir.join("gateway.yaml");
    std::fs::write(&file, gateway_yaml(&upstream.url)).expect("file");

    // diff: what would be made, and exit code 2 for CI.
    let diff = gatehouse(&["diff", "-f", path(&file), "--exit-code"], url, token);
    assert_eq!(diff.status.code(), Some(2), "{}", stderr(&diff));
    let shown = stdout(&diff);
    for line in [
        "+ plugin add-header@0.1.0 (uploaded from its path)",
        "+ service echo",
        "+ route GET /private/*",
        "+ consumer alice",
        "~ rate limits",
        "7 to create, 1 to update, 0 to delete",
    ] {
        assert!(shown.contains(line), "`{line}` in:\n{shown}");
    }
    let without_exit_code = gatehouse(&["diff", "-f", path(&file)], url, token);
    assert_eq!(without_exit_code.status.code(), Some(0));
    let before = live_version(&file, url, token);
    let plugins = tenant.send(Method::GET, "/plugins", None).await;
    assert_eq!(plugins, json!([]), "a diff uploads nothing");

    // A --keys-out that cannot be written: refused before anything changes.
    let nowhere = dir.join("no-such-dir/keys.json");
    let reason = refused(gatehouse(
        &["apply", "-f", path(&file), "--keys-out", path(&nowhere)],
        url,
        token,
    ));
    assert!(reason.contains("--keys-out"), "{reason}");
    assert_eq!(live_version(&file, url, token), before);
    let plugins = tenant.send(Method::GET, "/plugins", None).await;
    assert_eq!(plugins, json!([]), "nothing uploaded either");

    // apply: the plugin uploaded, everything in one version, served at once.
    let installs = installed(&node.log).len();
    let keys = dir.join("keys.json");
    let applied = ok(gatehouse(
        &["apply", "-f", path(&file), "--keys-out", path(&keys)],
        url,
        token,
    ));
    assert!(applied.contains("uploaded add-header@0.1.0"), "{applied}");
    assert!(
        applied.contains(&format!(
            "created 6, updated 1, deleted 0: config version {}",
            before + 1
        )),
        "{applied}"
    );
    eventually("the node installs the applied config", || async {
        installed(&node.log).last() == Some(&(before + 1))
    })
    .await;
    assert_eq!(
        installed(&node.log)[installs..],
        [before + 1],
        "the node saw one version for the whole apply"
    );
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(&keys).expect("keys")).expect("JSON");
    let alice = kept["alice"].as_str().expect("alice's key").to_owned();
    let bob = kept["bob"].as_str().expect("bob's key").to_owned();
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&keys).expect("keys").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The node fetches and compiles the new plugin after taking the config.
    eventually("the plugin's route answers", || async {
        let open = status_of(&node, "/open", None).await;
        open.status() == StatusCode::OK && open.headers()["x-served-by"] == "gatehouse"
    })
    .await;
    assert_eq!(
        status_of(&node, "/private/x", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    for key in [&alice, &bob] {
        assert_eq!(
            status_of(&node, "/private/x", Some(key)).await.status(),
            StatusCode::OK
        );
    }

    // Applying again changes nothing and uploads nothing.
    let again = ok(gatehouse(&["apply", "-f", path(&file)], url, token));
    assert!(again.contains("(no changes)"), "{again}");
    assert!(!again.contains("uploaded"), "{again}");
    assert_eq!(live_version(&file, url, token), before + 1);
    let plugins = tenant.send(Method::GET, "/plugins", None).await;
    assert_eq!(plugins.as_array().map(Vec::len), Some(1), "{plugins}");

    // export | apply changes nothing; diff of the export is clean.
    let exported = ok(gatehouse(&["export"], url, token));
    let export_file = dir.join("exported.yaml");
    std::fs::write(&export_file, &exported).expect("export file");
    let reapplied = ok(gatehouse(&["apply", "-f", path(&export_file)], url, token));
    assert!(reapplied.contains("(no changes)"), "{reapplied}");
    let clean = gatehouse(
        &["diff", "-f", path(&export_file), "--exit-code"],
        url,
        token,
    );
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    assert!(!exported.contains("path:"), "{exported}");
    assert!(
        exported.contains("version: \"0.1.0\"") || exported.contains("version: '0.1.0'"),
        "{exported}"
    );

    // An invalid item: refused with its place, nothing changed (not the
    // consumer that was fine either).
    let broken = dir.join("broken.yaml");
    let mut text = gateway_yaml(&upstream.url);
    text = text.replace(
        "consumers:\n",
        "  - method: GET\n    pathPattern: /ghost\n    service: ghost\n    authRequired: false\nconsumers:\n  - name: carol\n",
    );
    std::fs::write(&broken, text).expect("broken");
    let reason = refused(gatehouse(&["apply", "-f", path(&broken)], url, token));
    assert!(reason.contains("routes[3].service"), "{reason}");
    assert_eq!(ok(gatehouse(&["export"], url, token)), exported);
    let local = dir.join("local.yaml");
    std::fs::write(
        &local,
        "routes:\n  - {method: GET, pathPattern: no-slash, service: echo, authRequired: false}\n",
    )
    .expect("local");
    let reason = refused(gatehouse(&["apply", "-f", path(&local)], url, token));
    assert!(reason.contains("routes[0].pathPattern"), "{reason}");
    // Other bytes under a stored version: refused, nothing uploaded.
    std::fs::write(
        dir.join("plugins/add-header.wasm"),
        [ADD_HEADER, b"x"].concat(),
    )
    .expect("wasm");
    let reason = refused(gatehouse(&["apply", "-f", path(&file)], url, token));
    assert!(reason.contains("stored with other bytes"), "{reason}");
    std::fs::write(dir.join("plugins/add-header.wasm"), ADD_HEADER).expect("wasm");
    assert_eq!(ok(gatehouse(&["export"], url, token)), exported);

    // sync deletes what the file lacks, and nothing else.
    let smaller = dir.join("smaller.yaml");
    let text = gateway_yaml(&upstream.url)
        .replace(
            "  - method: POST\n    pathPattern: /private/*\n    service: echo\n    authRequired: true\n",
            "",
        )
        .replace("  - name: bob\n", "");
    std::fs::write(&smaller, text).expect("smaller");
    let applied_only = ok(gatehouse(&["apply", "-f", path(&smaller)], url, token));
    assert!(
        applied_only.contains("(no changes)"),
        "apply never deletes: {applied_only}"
    );
    let dry = ok(gatehouse(
        &["sync", "-f", path(&smaller), "--dry-run"],
        url,
        token,
    ));
    assert!(dry.contains("- route POST /private/*"), "{dry}");
    assert!(dry.contains("- consumer bob (revoked)"), "{dry}");
    // The tiers the file lacks, which apply kept, go too.
    assert!(
        dry.contains("tiers.enterprise: 6000/min -> (none)"),
        "{dry}"
    );
    assert!(
        dry.contains("0 to create, 1 to update, 2 to delete (dry run, nothing changed)"),
        "{dry}"
    );
    assert_eq!(ok(gatehouse(&["export"], url, token)), exported);
    let synced = ok(gatehouse(&["sync", "-f", path(&smaller)], url, token));
    assert!(
        synced.contains("created 0, updated 1, deleted 2"),
        "{synced}"
    );
    eventually("bob's key stops working", || async {
        status_of(&node, "/private/x", Some(&bob)).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(
        status_of(&node, "/private/x", Some(&alice)).await.status(),
        StatusCode::OK
    );
    let after = ok(gatehouse(&["export"], url, token));
    assert!(!after.contains("bob") && !after.contains("POST"), "{after}");
    assert!(
        after.contains("alice") && after.contains("/open"),
        "{after}"
    );
    let consumers = tenant.send(Method::GET, "/consumers", None).await;
    assert_eq!(consumers.as_array().map(Vec::len), Some(1), "{consumers}");

    // Automation tokens: a read token exports and cannot apply; a write
    // token applies; a revoked one is refused at once.
    let make = |scope: &'static str| {
        let tenant = &tenant;
        async move {
            tenant
                .send(
                    Method::POST,
                    "/api-tokens",
                    Some(json!({ "name": format!("ci {scope}"), "scope": scope })),
                )
                .await
        }
    };
    let read = make("read").await;
    let write = make("write").await;
    let read_token = read["token"].as_str().expect("token");
    let write_token = write["token"].as_str().expect("token");
    assert_eq!(ok(gatehouse(&["export"], url, read_token)), after);
    let drift = gatehouse(&["diff", "-f", path(&file), "--exit-code"], url, read_token);
    assert_eq!(
        drift.status.code(),
        Some(2),
        "a read token diffs: {}",
        stderr(&drift)
    );
    let planned = ok(gatehouse(
        &["apply", "-f", path(&file), "--dry-run"],
        url,
        read_token,
    ));
    assert!(
        planned.contains("+ consumer bob"),
        "a read token plans: {planned}"
    );
    // What `apply` would do, no deletions: the smaller file changes nothing.
    let as_apply = gatehouse(
        &["diff", "-f", path(&smaller), "--apply", "--exit-code"],
        url,
        read_token,
    );
    assert_eq!(as_apply.status.code(), Some(0), "{}", stdout(&as_apply));
    let reason = refused(gatehouse(
        &["sync", "-f", path(&smaller), "--dry-run"],
        url,
        "gt_unknown",
    ));
    assert!(reason.contains("401"), "{reason}");
    let reason = refused(gatehouse(&["apply", "-f", path(&file)], url, read_token));
    assert!(
        reason.contains("403") && reason.contains("forbidden"),
        "{reason}"
    );
    let restored = ok(gatehouse(&["apply", "-f", path(&file)], url, write_token));
    assert!(
        restored.contains("created 2"),
        "bob and the POST route again: {restored}"
    );
    assert!(
        !restored.contains("ck_"),
        "keys are not printed off a terminal: {restored}"
    );
    let id = write["id"].as_str().expect("id");
    tenant
        .send(Method::DELETE, &format!("/api-tokens/{id}"), None)
        .await;
    let reason = refused(gatehouse(&["export"], url, write_token));
    assert!(
        reason.contains("401") && reason.contains("invalid_token"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_as_code_on_sqlite() {
    let scratch = Scratch::new("config-cli-sqlite");
    let database = format!("sqlite://{}/control.db", scratch.0.display());
    config_as_code(&scratch, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_as_code_on_postgres() {
    let scratch = Scratch::new("config-cli-postgres");
    let db = ThrowawayDb::create().await;
    config_as_code(&scratch, &db.url).await;
    db.remove().await;
}

/// A file of `routes` routes and `consumers` consumers on one service.
fn large_file(dir: &Path, upstream: &str, routes: usize, consumers: usize) -> PathBuf {
    let doc = json!({
        "services": [{ "name": "echo", "targetUrl": upstream }],
        "routes": (0..routes).map(|i| json!({
            "method": "GET", "pathPattern": format!("/r{i}/:id"), "service": "echo", "authRequired": i % 2 == 0,
        })).collect::<Vec<_>>(),
        "consumers": (0..consumers).map(|i| json!({
            "name": format!("consumer-{i}"), "rateLimitTier": if i % 3 == 0 { "pro" } else { "free" },
        })).collect::<Vec<_>>(),
    });
    let file = dir.join("large.json");
    std::fs::write(&file, doc.to_string()).expect("large file");
    file
}

async fn a_large_apply_is_one_version(scratch: &Scratch, database_url: &str, db: &str) {
    let dir = &scratch.0;
    let control = ControlPlane::start_on(dir, database_url).await;
    let upstream = upstream().await;
    let tenant = Tenant::register(&control.base).await;
    let node = Node::start_for(dir, &control, &tenant).await;
    let file = large_file(dir, &upstream.url, 1_000, 10_000);
    let (url, token) = (control.base.as_str(), tenant.token.as_str());
    let before = live_version(&file, url, token);
    let installs = installed(&node.log).len();
    let started = Instant::now();
    let applied = ok(gatehouse(&["apply", "-f", path(&file)], url, token));
    let took = started.elapsed();
    assert!(
        applied.contains(&format!(
            "created 11001, updated 0, deleted 0: config version {}",
            before + 1
        )),
        "{}",
        applied.lines().last().unwrap_or_default()
    );
    eventually("the node installs the large config", || async {
        installed(&node.log).last() == Some(&(before + 1))
    })
    .await;
    assert_eq!(installed(&node.log)[installs..], [before + 1]);
    assert_eq!(
        status_of(&node, "/r998/x", None).await.status(),
        StatusCode::UNAUTHORIZED,
        "an even route wants a key"
    );
    let started = Instant::now();
    let again = ok(gatehouse(&["apply", "-f", path(&file)], url, token));
    let again_took = started.elapsed();
    assert!(again.contains("(no changes)"), "{again}");
    assert_eq!(live_version(&file, url, token), before + 1);
    // Debug builds; for the figures of a release build see
    // docs/benchmarks.md.
    eprintln!(
        "{db}: applying 1,000 routes and 10,000 consumers took {:.1} s (one version); \
         applying it again {:.1} s (no change)",
        took.as_secs_f64(),
        again_took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_apply_is_one_version_on_sqlite() {
    let scratch = Scratch::new("config-cli-large-sqlite");
    let database = format!("sqlite://{}/control.db", scratch.0.display());
    a_large_apply_is_one_version(&scratch, &database, "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_apply_is_one_version_on_postgres() {
    let scratch = Scratch::new("config-cli-large-postgres");
    let db = ThrowawayDb::create().await;
    a_large_apply_is_one_version(&scratch, &db.url, "PostgreSQL").await;
    db.remove().await;
}

/// The first YAML example of `docs/config-as-code.md`.
fn the_guides_file() -> String {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/config-as-code.md"
    ))
    .expect("the guide");
    let start = guide.find("```yaml\n").expect("a YAML example") + "```yaml\n".len();
    let end = start + guide[start..].find("```").expect("its end");
    guide[start..end].to_owned()
}

/// The guide's example file is one a user can apply as it is (with its
/// plugin built), and exporting it back gives no diff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_example_applies_and_exports_back() {
    let scratch = Scratch::new("config-cli-guide");
    let dir = &scratch.0;
    let control = ControlPlane::start(dir).await;
    let tenant = Tenant::register(&control.base).await;
    let (url, token) = (control.base.as_str(), tenant.token.as_str());
    std::fs::create_dir_all(dir.join("plugins")).expect("plugins dir");
    std::fs::write(dir.join("plugins/add-header.wasm"), ADD_HEADER).expect("wasm");
    let file = dir.join("gateway.yaml");
    std::fs::write(&file, the_guides_file()).expect("file");
    let applied = ok(gatehouse(&["apply", "-f", path(&file)], url, token));
    assert!(applied.contains("uploaded add-header@0.1.0"), "{applied}");
    // apply kept the default tier the file lacks (enterprise); sync drops it.
    let as_apply = gatehouse(
        &["diff", "-f", path(&file), "--apply", "--exit-code"],
        url,
        token,
    );
    assert_eq!(as_apply.status.code(), Some(0), "{}", stdout(&as_apply));
    let synced = ok(gatehouse(&["sync", "-f", path(&file)], url, token));
    assert!(
        synced.starts_with("~ rate limits\n    tiers.enterprise: 6000/min -> (none)\n"),
        "{synced}"
    );
    for args in [
        ["diff", "-f", path(&file), "--exit-code"],
        ["sync", "-f", path(&file), "--dry-run"],
    ] {
        let output = gatehouse(&args, url, token);
        assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
        assert!(stdout(&output).starts_with("0 to create, 0 to update, 0 to delete"));
    }
    let exported = dir.join("exported.yaml");
    let text = ok(gatehouse(&["export"], url, token));
    std::fs::write(&exported, &text).expect("export");
    let clean = gatehouse(&["diff", "-f", path(&exported), "--exit-code"], url, token);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));

    // A live route whose service was deleted: apply of a file without it
    // refuses, naming it; sync deletes it.
    let gone = tenant
        .send(
            Method::POST,
            "/services",
            Some(json!({ "name": "gone", "targetUrl": "http://127.0.0.1:9/" })),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    tenant.route("GET", "/gone", &gone, false).await;
    tenant
        .send(Method::DELETE, &format!("/services/{gone}"), None)
        .await;
    let reason = refused(gatehouse(&["apply", "-f", path(&file)], url, token));
    assert!(
        reason.contains("GET /gone") && reason.contains("deleted service"),
        "{reason}"
    );
    let synced = ok(gatehouse(&["sync", "-f", path(&file)], url, token));
    assert!(synced.contains("- route GET /gone"), "{synced}");

    // Over HTTPS, through a TLS-terminating front (as a load balancer):
    // verified against --ca-file, refused without it.
    let pki = support::tls::Pki::new(dir, "config");
    let port = support::tls::tls_front(
        &pki.leaf("front"),
        std::net::SocketAddr::from(([127, 0, 0, 1], control.port)),
    )
    .await;
    let https = format!("https://localhost:{port}");
    let ca = path(&pki.ca_pem);
    assert_eq!(
        ok(gatehouse(&["export", "--ca-file", ca], &https, token)),
        text
    );
    let over_tls = ok(gatehouse(
        &["apply", "-f", path(&file), "--ca-file", ca],
        &https,
        token,
    ));
    assert!(over_tls.contains("(no changes)"), "{over_tls}");
    let untrusted = refused(gatehouse(&["export"], &https, token));
    assert!(untrusted.contains("reaching"), "{untrusted}");
}

/// A hop in front of the control plane that, when the first apply (not a
/// dry run) passes through it, changes the tenant's config itself before
/// forwarding it, as a teammate's change landing between a plan and its
/// apply would. Returns the hop's base URL and how often it meddled.
async fn meddling_hop(
    control: String,
    tenant: std::sync::Arc<Tenant>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let meddled = std::sync::Arc::new(AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&meddled);
    let forward = move |request: axum::extract::Request| {
        let (control, tenant, count) = (control.clone(), tenant.clone(), count.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 64 << 20).await.expect("body");
            let uri = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            let applying = parts.method == Method::PUT
                && parts.uri.path().ends_with("/config")
                && !uri.contains("dryRun=true");
            if applying && count.fetch_add(1, Ordering::SeqCst) == 0 {
                let body = json!({ "name": "teammates", "targetUrl": "http://127.0.0.1:9" });
                tenant.send(Method::POST, "/services", Some(body)).await;
            }
            let mut forwarded = tenant
                .http
                .request(parts.method, format!("{control}{uri}"))
                .body(body);
            for (name, value) in &parts.headers {
                if name != "host" && name != "content-length" {
                    forwarded = forwarded.header(name, value);
                }
            }
            let answer = forwarded.send().await.expect("forwarded");
            let mut response = axum::http::Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    response = response.header(name, value);
                }
            }
            let bytes = answer.bytes().await.expect("answer");
            response
                .body(axum::body::Body::from(bytes))
                .expect("response")
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = axum::Router::new().fallback(forward);
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, meddled)
}

/// A config changed between an apply's plan and the apply itself: the
/// control plane refuses the stale apply (412), the CLI plans again from
/// the new live config and applies, keeping the other change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_overtaken_by_another_change_plans_again() {
    let scratch = Scratch::new("config-cli-replan");
    let dir = &scratch.0;
    let control = ControlPlane::start(dir).await;
    let upstream = upstream().await;
    let tenant = std::sync::Arc::new(Tenant::register(&control.base).await);
    let (hop, meddled) = meddling_hop(control.base.clone(), std::sync::Arc::clone(&tenant)).await;
    std::fs::create_dir_all(dir.join("plugins")).expect("plugins dir");
    std::fs::write(dir.join("plugins/add-header.wasm"), ADD_HEADER).expect("wasm");
    let file = dir.join("gateway.yaml");
    std::fs::write(&file, gateway_yaml(&upstream.url)).expect("file");
    let token = tenant.token.clone();
    let args = ["apply", "-f", path(&file)].map(str::to_owned);
    let applied = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        gatehouse(&args, &hop, &token)
    })
    .await
    .expect("the CLI ran");
    let said = stderr(&applied);
    ok(applied);
    assert!(
        said.contains("the config changed while this ran; planning again"),
        "{said}"
    );
    assert_eq!(
        meddled.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the stale apply, then the one planned again"
    );
    let services = tenant.send(Method::GET, "/services", None).await;
    let names = support::names(&services);
    assert!(names.contains(&"echo"), "the file's service: {names:?}");
    assert!(
        names.contains(&"teammates"),
        "the other change is kept (apply prunes nothing): {names:?}"
    );
}
