//! Plugins end to end: real components (the ones the proxy's build script
//! makes) uploaded to the real control plane — stored with their SHA-256,
//! listed, versioned, deleted, invisible to other tenants — and attached to
//! routes of a real node, where they run with their failure policy.

use gatehouse_proxy::plugins::builtins::{API_KEY_AUTH, REQUEST_LOG};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_components_are_stored_listed_and_deleted() {
    let scratch = Scratch::new("plugin-uploads");
    let control = ControlPlane::start(&scratch.0).await;
    let tenant = Tenant::register(&control.base).await;
    tenant.unlimited().await;
    let other = Tenant::register(&control.base).await;
    let (http, api, token) = (&tenant.http, &tenant.api, &tenant.token);
    let upload_as = |name: &str, version: &str| {
        http.post(format!("{api}/plugins?name={name}&version={version}"))
            .bearer_auth(token)
            .header("content-type", "application/wasm")
            .body(API_KEY_AUTH.to_vec())
            .send()
    };
    let upload = |version: &str| upload_as("key-check", version);

    // A built-in's name is not a tenant plugin's to take, however sound the
    // component.
    for builtin in ["api-key-auth", "rate-limit", "request-log"] {
        let refused = upload_as(builtin, "1.0.0").await.expect("sent");
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{builtin}");
        let body: Value = refused.json().await.expect("json");
        assert_eq!(body["error"]["code"], "validation_failed", "{body}");
        assert_eq!(body["error"]["field"], "name", "{body}");
    }

    let created = upload("1.0.0").await.expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    let plugin: Value = created.json().await.expect("json");
    let expected: String = Sha256::digest(API_KEY_AUTH)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(plugin["sha256"], expected.as_str());
    assert_eq!(plugin["sizeBytes"], API_KEY_AUTH.len());
    assert_eq!(plugin["name"], "key-check");
    let id = plugin["id"].as_str().expect("id").to_owned();

    assert_eq!(
        upload("1.0.0").await.expect("sent").status(),
        StatusCode::CONFLICT,
        "same name and version"
    );
    assert_eq!(
        upload("1.1.0").await.expect("sent").status(),
        StatusCode::CREATED,
        "a new version"
    );
    // A real component built against another world (the built-ins' world,
    // which adds the request log): refused, with the import named.
    let builtin_world = http
        .post(format!("{api}/plugins?name=my-log&version=1.0.0"))
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(REQUEST_LOG.to_vec())
        .send()
        .await
        .expect("sent");
    assert_eq!(builtin_world.status(), StatusCode::BAD_REQUEST);
    let refusal: Value = builtin_world.json().await.expect("json");
    assert_eq!(refusal["error"]["code"], "invalid_plugin");
    let message = refusal["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("gatehouse:plugin/request-logs") && message.contains("reserved"),
        "{message}"
    );

    // Components a node could not link: refused at upload with the type
    // checker's reason, as the node's linker would refuse them.
    // (One importing none of the package is checked against the current
    // release; one importing 0.1.0 interfaces, against 0.1.0.)
    for (component, release, reason) in [
        (
            support::components::wrong_types(),
            "0.2.0",
            "type mismatch for export `describe`: expected no result, found one",
        ),
        (
            support::components::foreign_import(),
            "0.1.0",
            "imports `gatehouse:plugin/extra@0.1.0`, which a node does not provide",
        ),
    ] {
        let refused = http
            .post(format!("{api}/plugins?name=odd&version=1.0.0"))
            .bearer_auth(token)
            .header("content-type", "application/wasm")
            .body(component)
            .send()
            .await
            .expect("sent");
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let body: Value = refused.json().await.expect("json");
        assert_eq!(body["error"]["code"], "invalid_plugin", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(&format!("gatehouse:plugin@{release} world"))
                && message.contains(reason),
            "{message}"
        );
    }

    let list = tenant.send(reqwest::Method::GET, "/plugins", None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    assert!(
        list[0].get("wasm").is_none(),
        "the bytes are not in the JSON"
    );
    let theirs = other.send(reqwest::Method::GET, "/plugins", None).await;
    assert_eq!(theirs.as_array().map(Vec::len), Some(0));
    let foreign = other
        .http
        .get(format!("{}/plugins/{id}", other.api))
        .bearer_auth(&other.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);

    tenant
        .send(reqwest::Method::GET, &format!("/plugins/{id}"), None)
        .await;
    tenant
        .send(reqwest::Method::DELETE, &format!("/plugins/{id}"), None)
        .await;
    let gone = http
        .get(format!("{api}/plugins/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        upload("1.0.0").await.expect("sent").status(),
        StatusCode::CREATED,
        "the version is free again"
    );
}

mod support;

use gatehouse_proxy::plugins::builtins::{TESTBED, TESTBED_0_1};
use serde_json::json;
use std::time::Duration;

use support::{
    ControlPlane, Node, Scratch, Stage, Tenant, eventually, eventually_within, logged_line,
    until_status, upstream,
};

/// A tenant plugin uploaded over REST, attached to a route, fetched by the
/// node over the gateway link and run on traffic: it changes requests,
/// answers them, and when it fails its failure policy decides.
/// The JSON body `url` answers.
async fn json_at(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.expect("sent");
    response.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_plugins_run_on_the_node_with_their_failure_policy() {
    let scratch = Scratch::new("tenant-plugins");
    let upstream = upstream().await;
    let control = ControlPlane::start(&scratch.0).await;
    let tenant = Tenant::register(&control.base).await;
    tenant.unlimited().await;
    let service = tenant.service(&upstream.url, 30_000).await;
    let plugin_id = tenant.upload_plugin("testbed", TESTBED).await;
    let route = tenant
        .send(reqwest::Method::POST, "/routes", Some(json!({
            "method": "GET", "pathPattern": "/things/:id", "serviceId": service, "authRequired": false,
            "plugins": [{ "pluginId": plugin_id, "config": { "mode": "header" } }],
        })))
        .await;
    assert_eq!(
        route["plugins"][0]["failurePolicy"], "closed",
        "fails closed by default"
    );
    let route_id = route["id"].as_str().expect("id").to_owned();
    tenant.route("GET", "/plain", &service, false).await;
    let node = Node::start_for(&scratch.0, &control, &tenant).await;
    let client = reqwest::Client::new();
    let url = format!("{}/things/1?x=2", node.base);

    // The plugin's header reaches the upstream (once the node has fetched it).
    eventually("the plugin to run", || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let Ok(response) = client.get(url).send().await else {
                return false;
            };
            let body: Value = response.json().await.unwrap_or(Value::Null);
            body["headers"]["x-testbed"] == "GET /things/1"
        }
    })
    .await;

    let set_plugins = |config: Value, policy: &str| {
        let body = json!({ "plugins": [{ "pluginId": plugin_id, "config": config, "failurePolicy": policy }] });
        let (tenant, path) = (&tenant, format!("/routes/{route_id}"));
        async move { tenant.send(reqwest::Method::PATCH, &path, Some(body)).await }
    };
    // It answers for the upstream.
    set_plugins(json!({ "mode": "deny" }), "closed").await;
    until_status(&client, url.clone(), None, StatusCode::FORBIDDEN).await;
    // It answers garbage (a spoofed X-Consumer-Id, headers that are not
    // HTTP): that is a failure, never forwarded.
    set_plugins(json!({ "mode": "garbage" }), "closed").await;
    until_status(&client, url.clone(), None, StatusCode::SERVICE_UNAVAILABLE).await;
    // (The 503s until the next change arrives may trip the breaker: a
    // plugin that answers well closes it again after its cooldown.)
    set_plugins(json!({ "mode": "header" }), "open").await;
    let runs = || {
        let (client, url) = (client.clone(), url.clone());
        async move { json_at(&client, &url).await["headers"]["x-testbed"] == "GET /things/1" }
    };
    eventually_within(Duration::from_secs(20), "the plugin to answer well", runs).await;
    // Failing open, the invalid answer is skipped, not forwarded.
    set_plugins(json!({ "mode": "garbage" }), "open").await;
    let body = loop {
        let body = json_at(&client, &url).await;
        if body["headers"]["x-testbed"].is_null() {
            break body;
        }
    };
    let forwarded = body["headers"].as_object().expect("headers");
    assert!(
        !forwarded.contains_key("x-consumer-id") && !forwarded.contains_key("injected"),
        "{body}"
    );
    // Invalid answers count against the plugin's on-request breaker: five
    // in a row open it, and the next call is refused without running.
    let circuit_open =
        "gatehouse_plugin_failures_total{plugin=\"testbed\",reason=\"circuit_open\"}";
    let refused_before = metric(&node.metrics().await, circuit_open);
    for _ in 0..5 {
        json_at(&client, &url).await;
    }
    assert!(metric(&node.metrics().await, circuit_open) > refused_before);
    // After its cooldown a call goes through again.
    set_plugins(json!({ "mode": "header" }), "open").await;
    eventually_within(Duration::from_secs(20), "the breaker to close", runs).await;

    // A failure in on-log (after the response went out) is counted and
    // recorded too; the request itself is unaffected.
    set_plugins(json!({ "mode": "log-panic" }), "open").await;
    eventually("an on-log failure on record", || async {
        let status = client.get(&url).send().await.map(|r| r.status());
        assert!(status.is_ok_and(|s| s == StatusCode::OK));
        plugin_failure_on_record(&tenant, &plugin_id, "(on-log)").await
    })
    .await;

    // (Last, as a hook that keeps failing trips its breaker, and its calls
    // are then refused without running.) It loops: failing closed answers 503, failing open skips it.
    set_plugins(json!({ "mode": "loop" }), "closed").await;
    until_status(&client, url.clone(), None, StatusCode::SERVICE_UNAVAILABLE).await;
    let body = json_at(&client, &url).await;
    assert_eq!(body["error"]["code"], "plugin_failed");
    // A route without the plugin answers as usual, also while a looping
    // call is in flight.
    let (looping, plain) = tokio::join!(
        client.get(&url).send(),
        client.get(format!("{}/plain", node.base)).send()
    );
    assert_eq!(
        looping.expect("sent").status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(plain.expect("sent").status(), StatusCode::OK);
    set_plugins(json!({ "mode": "hog" }), "open").await;
    until_status(&client, url.clone(), None, StatusCode::OK).await;
    // Other routes are unaffected, the node is healthy, and the failures are on record.
    let metrics = node.metrics().await;
    assert!(
        metrics.contains("gatehouse_plugin_failures_total{plugin=\"testbed\",reason=\"timeout\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "gatehouse_plugin_failures_total{plugin=\"testbed\",reason=\"invalid_output\"}"
        ),
        "{metrics}"
    );
    eventually("a plugin_failed error event naming the plugin", || async {
        let errors = tenant.send(reqwest::Method::GET, "/errors", None).await;
        errors.as_array().is_some_and(|e| {
            e.iter()
                .any(|e| e["kind"] == "plugin_failed" && e["pluginId"] == plugin_id.as_str())
        })
    })
    .await;

    // A plugin in use cannot be deleted.
    let delete = tenant
        .http
        .delete(format!("{}/plugins/{plugin_id}", tenant.api))
        .bearer_auth(&tenant.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(delete.status(), StatusCode::CONFLICT);
    node.process.terminate();
}

/// The value of the sample `series` (name and labels) in `metrics`, 0 when
/// absent.
fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Whether `tenant` has a `plugin_failed` error event of the plugin
/// `plugin_id` whose message says `saying`.
async fn plugin_failure_on_record(tenant: &Tenant, plugin_id: &str, saying: &str) -> bool {
    let errors = tenant.send(reqwest::Method::GET, "/errors", None).await;
    errors.as_array().is_some_and(|e| {
        e.iter().any(|e| {
            e["kind"] == "plugin_failed"
                && e["pluginId"] == plugin_id
                && e["message"].as_str().is_some_and(|m| m.contains(saying))
        })
    })
}

/// A stage whose tenant has the testbed uploaded and a route at `path`
/// running it as `attachment` says (its config and failure policy);
/// returns the stage and the plugin's id.
async fn testbed_route(name: &str, path: &str, mut attachment: Value) -> (Stage, String) {
    let stage = Stage::new(name).await;
    let plugin_id = stage.tenant.upload_plugin("testbed", TESTBED).await;
    attachment["pluginId"] = json!(plugin_id);
    stage
        .tenant
        .send(reqwest::Method::POST, "/routes", Some(json!({
            "method": "GET", "pathPattern": path, "serviceId": stage.service, "authRequired": false,
            "plugins": [attachment],
        })))
        .await;
    (stage, plugin_id)
}

/// A hook that keeps failing trips its own breaker: the successes of the
/// plugin's other hooks (on-response, on-log) do not reset it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_trips_its_own_breaker() {
    let attachment = json!({ "config": { "mode": "panic" }, "failurePolicy": "open" });
    let (stage, _) = testbed_route("plugin-breaker", "/panics", attachment).await;
    let node = stage.node(&[]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/panics", node.base);
    eventually("the plugin loaded and trapping", || async {
        let status = client.get(&url).send().await.expect("sent").status();
        assert_eq!(status, StatusCode::OK, "failing open");
        node.metrics()
            .await
            .contains("gatehouse_plugin_failures_total{plugin=\"testbed\",reason=\"trap\"}")
    })
    .await;
    for _ in 0..8 {
        let status = client.get(&url).send().await.expect("sent").status();
        assert_eq!(status, StatusCode::OK, "failing open");
    }
    let metrics = node.metrics().await;
    assert!(
        metrics.contains(
            "gatehouse_plugin_failures_total{plugin=\"testbed\",reason=\"circuit_open\"}"
        ),
        "{metrics}"
    );
    node.process.terminate();
}

/// `log.write` is one line of the node's log per call, tagged with the
/// plugin and the request (in every hook): a line break in the message
/// cannot write a second, forged line, and the 1 KiB limit counts bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_log_lines_are_its_own() {
    let attachment = json!({ "config": { "mode": "log-forge" } });
    let (stage, _) = testbed_route("plugin-log", "/logs-a-lot", attachment).await;
    let node = stage.node(&[]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/logs-a-lot", node.base);
    eventually("the plugin to run", || async {
        let response = client
            .get(&url)
            .header("x-request-id", "forge-check-1")
            .send()
            .await
            .expect("sent");
        response.status() == StatusCode::OK
    })
    .await;
    let forged = logged_line(&node.log, "testbed-forge").await;
    let long = logged_line(&node.log, "éééé").await;
    let response_hook = logged_line(&node.log, "testbed-on-response").await;
    let log_hook = logged_line(&node.log, "testbed-on-log").await;
    node.process.terminate();
    let log = std::fs::read_to_string(&node.log).expect("node log");
    for line in [&forged, &long, &response_hook, &log_hook] {
        assert!(
            line.contains("plugin=\"testbed\"") && line.contains("request_id=\"forge-check-1\""),
            "tagged with the plugin and the request: {line}"
        );
    }
    assert!(
        forged.contains(r"testbed-forge\n2026-01-01") && forged.contains("forged by a plugin"),
        "the line break is escaped, in the same line: {forged}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01")),
        "no line of the node's log was forged:\n{log}"
    );
    let message = long.chars().filter(|&c| c == 'é').count();
    assert_eq!(message, 512, "1 KiB of UTF-8 is 512 'é': {long}");
}

/// A stored component a node cannot load (as an older control plane may
/// have accepted): the route using it fails closed with the node's reason,
/// one error event names the plugin, and the node does not ask for it
/// again at the next config change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_no_node_can_load_is_an_error_event() {
    let (stage, plugin_id) = testbed_route("plugin-unloadable", "/guarded", json!({})).await;
    let (tenant, service) = (&stage.tenant, &stage.service);
    let unloadable = support::components::wrong_types();
    let sha256: String = Sha256::digest(&unloadable)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let database = format!("sqlite://{}/control.db", stage.scratch.0.display());
    let db = sqlx::SqlitePool::connect(&database)
        .await
        .expect("database");
    sqlx::query("UPDATE plugins SET wasm = $1, sha256 = $2, size_bytes = $3 WHERE id = $4")
        .bind(&unloadable)
        .bind(&sha256)
        .bind(i64::try_from(unloadable.len()).expect("size"))
        .bind(&plugin_id)
        .execute(&db)
        .await
        .expect("stored bytes swapped");
    db.close().await;
    let node = stage.node(&[]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/guarded", node.base);
    // Before any traffic: the node's own report, on no route.
    let reported = eventually_within(Duration::from_secs(15), "the node's report", || async {
        let errors = tenant.send(reqwest::Method::GET, "/errors", None).await;
        errors.as_array().is_some_and(|e| {
            e.iter().any(|e| {
                e["kind"] == "plugin_failed"
                    && e["pluginId"] == plugin_id.as_str()
                    && e["routeId"].is_null()
                    && e["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("plugin testbed: this node cannot load it:"))
            })
        })
    });
    reported.await;
    // The route fails closed, with the reason.
    let status = client.get(&url).send().await.expect("sent").status();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "fails closed");
    eventually("the route's failure on record", || {
        plugin_failure_on_record(
            tenant,
            &plugin_id,
            "(fails closed): this node cannot load the plugin",
        )
    })
    .await;
    // A config change: the node does not fetch and fail again.
    tenant.route("GET", "/later", service, false).await;
    until_status(
        &client,
        format!("{}/later", node.base),
        None,
        StatusCode::OK,
    )
    .await;
    // Time for a fetch it should not make to be answered and fail.
    tokio::time::sleep(Duration::from_secs(1)).await;
    node.process.terminate();
    let log = std::fs::read_to_string(&node.log).expect("node log");
    assert_eq!(
        log.matches("tenant plugin not installed").count(),
        1,
        "asked for and refused once:\n{log}"
    );
}

/// A route authenticated by a tenant plugin instead of the built-in key
/// check (attached with phase `auth`): the consumer it names is the
/// request's, for the upstream's `X-Consumer-Id`, the request log and the
/// rate limit by the consumer's tier; without one the route answers 401.
/// A plugin of the request phase naming a consumer gives an invalid answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_plugin_authenticates_a_route() {
    let stage = Stage::new("plugin-auth").await;
    let (tenant, service) = (&stage.tenant, &stage.service);
    tenant.limits(Some(2), None).await;
    let (consumer, _key) = tenant
        .consumer(json!({ "name": "partner", "rateLimitTier": "free" }))
        .await;
    let consumer_id = consumer["id"].as_str().expect("id").to_owned();
    let plugin_id = tenant.upload_plugin("testbed", TESTBED).await;
    let attach = |path: &str, phase: &str| {
        let body = json!({
            "method": "GET", "pathPattern": path, "serviceId": service,
            "authRequired": phase == "auth",
            "plugins": [{ "pluginId": plugin_id, "config": { "mode": "token" }, "phase": phase }],
        });
        async move {
            tenant
                .send(reqwest::Method::POST, "/routes", Some(body))
                .await
        }
    };
    let route = attach("/partner", "auth").await;
    assert_eq!(route["plugins"][0]["phase"], "auth", "{route}");
    // The same plugin on a route without authRequired.
    tenant
        .send(reqwest::Method::POST, "/routes", Some(json!({
            "method": "GET", "pathPattern": "/partner-open", "serviceId": service,
            "authRequired": false,
            "plugins": [{ "pluginId": plugin_id, "config": { "mode": "token" }, "phase": "auth" }],
        })))
        .await;
    // An open route whose plugin (of the request phase) names a consumer.
    attach("/misplaced", "request").await;
    let node = stage.node(&[]).await;
    let client = reqwest::Client::new();
    // The plugin's own credential, which the built-in key check would
    // refuse: a token naming the consumer.
    let get = |path: &str, token: Option<&str>| {
        let mut request = client.get(format!("{}{path}", node.base));
        if let Some(token) = token {
            request = request.header("x-partner-token", token);
        }
        request.send()
    };

    eventually("the plugin to identify the consumer", || async {
        get("/partner", Some(&consumer_id))
            .await
            .expect("sent")
            .status()
            == StatusCode::OK
    })
    .await;
    let echoed: Value = get("/partner", Some(&consumer_id))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let forwarded = &echoed["headers"];
    assert_eq!(forwarded["x-consumer-id"], consumer_id.as_str(), "{echoed}");
    let limited = get("/partner", Some(&consumer_id)).await.expect("sent");
    assert_eq!(
        limited.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the consumer's tier (2 a minute) applies"
    );
    // On the open route the consumer it names is limited by its tier too
    // (its bucket is spent); an anonymous request goes on.
    let open = get("/partner-open", Some(&consumer_id))
        .await
        .expect("sent");
    assert_eq!(open.status(), StatusCode::TOO_MANY_REQUESTS);
    let open = get("/partner-open", None).await.expect("sent");
    assert_eq!(open.status(), StatusCode::OK);
    let anonymous = get("/partner", None).await.expect("sent");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: Value = anonymous.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let wrong = get("/partner", Some("no-such-consumer"))
        .await
        .expect("sent");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // Naming a consumer is the auth phase's: from the request phase it is
    // an invalid answer (this route fails closed).
    let misplaced = get("/misplaced", Some(&consumer_id)).await.expect("sent");
    assert_eq!(misplaced.status(), StatusCode::SERVICE_UNAVAILABLE);
    eventually("the misplaced plugin's failure on record", || {
        plugin_failure_on_record(tenant, &plugin_id, "phase `auth`")
    })
    .await;

    // The request log has the consumer of the requests it identified,
    // those the limit then refused too.
    eventually("the partner's logs", || async {
        let logs = tenant.all_logs(&format!("?consumerId={consumer_id}")).await;
        let of = |path: &str, status: u16| {
            logs.iter()
                .any(|l| l["path"] == path && l["statusCode"] == status)
        };
        of("/partner", 200)
            && of("/partner", 429)
            && of("/partner-open", 429)
            && logs
                .iter()
                .all(|l| l["path"] == "/partner" || l["path"] == "/partner-open")
    })
    .await;
    node.process.terminate();
}

/// Each plugin keeps its own counters and key-value entries: the testbed
/// and a plugin built against the 0.1.0 release (accepted at upload, run
/// as before), on one route, count a counter of the same name and keep a
/// key of the same name apart. Entries expire; a full store answers
/// `full`, which the plugin sees; a restarted node starts empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_plugin_keeps_its_own_bounded_state() {
    let stage = Stage::new("plugin-state").await;
    let (tenant, service) = (&stage.tenant, &stage.service);
    let testbed = tenant.upload_plugin("testbed", TESTBED).await;
    let legacy = tenant.upload_plugin("testbed-0-1", TESTBED_0_1).await;
    let routes = [
        ("/ready", "header"),
        ("/state/:n", "state"),
        ("/expiring", "expiring"),
        ("/fill", "fill"),
    ];
    for (path, mode) in routes {
        tenant
            .send(reqwest::Method::POST, "/routes", Some(json!({
                "method": "GET", "pathPattern": path, "serviceId": service, "authRequired": false,
                "plugins": [
                    { "pluginId": testbed, "config": { "mode": mode } },
                    { "pluginId": legacy, "config": { "from": "test" } },
                ],
            })))
            .await;
    }
    // Filling 4 MiB through a debug build's host takes longer than the
    // default 10 ms deadline: the limits are what is tested here.
    let flags = ["--plugin-deadline-ms", "2000"];
    let mut node = stage.node(&flags).await;
    let client = reqwest::Client::new();
    let headers = |base: String, path: &str| {
        let url = format!("{base}{path}");
        let client = client.clone();
        async move {
            let response = client.get(url).send().await.expect("sent");
            assert_eq!(response.status(), StatusCode::OK);
            let body: Value = response.json().await.expect("json");
            body["headers"].clone()
        }
    };
    // Both loaded (the testbed's `header` mode keeps nothing).
    let ready = |base: String| {
        let client = client.clone();
        async move {
            eventually("both plugins to run", || async {
                let response = client.get(format!("{base}/ready")).send().await;
                let Ok(response) = response else { return false };
                let body: Value = response.json().await.unwrap_or(Value::Null);
                body["headers"]["x-legacy-hits"].is_string()
                    && body["headers"]["x-testbed"].is_string()
            })
            .await
        }
    };
    ready(node.base.clone()).await;
    let base = node.base.clone();
    let headers = |path: &'static str| headers(base.clone(), path);

    // The 0.1.0 plugin counted the `/ready` requests in its `hits`; the
    // testbed (whose `header` mode keeps nothing) starts its own at 1.
    let first = headers("/state/1").await;
    let second = headers("/state/2").await;
    let hits = |h: &Value, name: &str| h[name].as_str().and_then(|v| v.parse::<i64>().ok());
    assert_eq!(first["x-hits"], "1", "{first}");
    assert_eq!(second["x-hits"], "2", "{second}");
    let legacy = hits(&first, "x-legacy-hits").expect("a count");
    assert!(legacy >= 2, "it ran on /ready too: {first}");
    assert_eq!(hits(&second, "x-legacy-hits"), Some(legacy + 1), "{second}");
    assert_eq!(second["x-last"], "/state/1", "{second}");
    assert_eq!(
        second["x-legacy-last"], "/state/1",
        "its own `last`: {second}"
    );
    assert_eq!(second["x-legacy-config"], r#"{"from":"test"}"#);
    assert_eq!(second["x-legacy-consumer"], "-");

    assert_eq!(headers("/expiring").await["x-kv-t"], "absent");
    assert_eq!(headers("/expiring").await["x-kv-t"], "present");
    eventually("the entry to expire after its three seconds", || async {
        headers("/expiring").await["x-kv-t"] == "absent"
    })
    .await;

    let filled = headers("/fill").await;
    assert_eq!(filled["x-kv-refusal"], "full", "{filled}");
    assert_eq!(filled["x-kv-oversized"], "too-large", "{filled}");
    let stored = hits(&filled, "x-kv-stored").expect("a count");
    let bytes = hits(&filled, "x-kv-bytes").expect("bytes");
    assert!(
        (250..=256).contains(&stored) && bytes <= 4 << 20,
        "4 MiB of 16 KiB values: {filled}"
    );
    // The 0.1.0 plugin's store is another: it still writes (it ran on
    // `/fill` last, after the testbed filled its own).
    let after = headers("/state/3").await;
    assert_eq!(after["x-legacy-last"], "/fill", "{after}");
    let again = headers("/state/4").await;
    assert_eq!(again["x-legacy-last"], "/state/3", "{again}");

    // Nothing of it outlives the node.
    node.process.terminate();
    node = stage.node(&flags).await;
    ready(node.base.clone()).await;
    let restarted = json_at(&client, &format!("{}/state/5", node.base)).await;
    assert_eq!(restarted["headers"]["x-hits"], "1", "{restarted}");
    assert_eq!(restarted["headers"]["x-last"], "-", "{restarted}");
    assert_eq!(
        restarted["headers"]["x-legacy-last"], "/ready",
        "{restarted}"
    );
    node.process.terminate();
}

/// A plugin's store is kept across a new version of the plugin (here one
/// built against 0.1.0, which counts the same `hits`) and lasts while a
/// route has a plugin of that name attached; once none has, the node drops
/// it, and the plugin attached again starts afresh.
#[tokio::test]
async fn a_plugins_store_lasts_while_it_is_attached() {
    let stage = Stage::new("plugin-store-life").await;
    let (tenant, service) = (&stage.tenant, &stage.service);
    let first = tenant.upload_plugin("counter", TESTBED).await;
    let response = tenant
        .http
        .post(format!("{}/plugins?name=counter&version=2", tenant.api))
        .bearer_auth(&tenant.token)
        .header("content-type", "application/wasm")
        .body(TESTBED_0_1.to_vec())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::CREATED);
    let second = response.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let route = tenant.route("GET", "/state/:n", service, false).await;
    let attach = |plugin: Option<&str>| {
        let plugins = match plugin {
            Some(id) => json!([{ "pluginId": id, "config": { "mode": "state" } }]),
            None => json!([]),
        };
        let path = format!("/routes/{route}");
        async move {
            tenant
                .send(
                    reqwest::Method::PATCH,
                    &path,
                    Some(json!({ "plugins": plugins })),
                )
                .await
        }
    };
    attach(Some(&first)).await;
    let node = stage.node(&[]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/state/1", node.base);
    let seen = |header: &'static str| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let body = json_at(&client, &url).await;
            body["headers"][header].as_str().map(str::to_owned)
        }
    };
    eventually("the plugin to run", || async {
        seen("x-hits").await.is_some()
    })
    .await;
    let counted: i64 = seen("x-hits")
        .await
        .expect("hits")
        .parse()
        .expect("a count");

    attach(Some(&second)).await;
    eventually("the new version to run", || async {
        seen("x-legacy-hits").await.is_some()
    })
    .await;
    let after: i64 = seen("x-legacy-hits")
        .await
        .expect("hits")
        .parse()
        .expect("a count");
    assert!(
        after > counted + 1,
        "the same counter, counted on: {counted} then {after}"
    );

    attach(None).await;
    eventually("the plugin to be detached", || async {
        seen("x-legacy-hits").await.is_none()
    })
    .await;
    attach(Some(&first)).await;
    eventually("the plugin to run again", || async {
        seen("x-hits").await.is_some()
    })
    .await;
    let fresh: i64 = seen("x-hits")
        .await
        .expect("hits")
        .parse()
        .expect("a count");
    assert_eq!(
        fresh, 2,
        "a new store, which counted the request that saw it run, then this one ({after} before)"
    );
    node.process.terminate();
}

/// A plugin's `response-headers` are on the response whoever answers the
/// request after it proceeded: the upstream, a later plugin, the gateway's
/// 503 for a later plugin failing closed, or its 401 after an `auth`
/// plugin that named no consumer.
#[tokio::test]
async fn response_headers_reach_whoever_answers() {
    let stage = Stage::new("plugin-response-headers").await;
    let (tenant, service) = (&stage.tenant, &stage.service);
    // Two plugins from the same bytes: the stopper's failures are its own.
    let tagger = tenant.upload_plugin("tagger", TESTBED).await;
    let stopper = tenant.upload_plugin("stopper", TESTBED).await;
    let tag = json!({ "pluginId": tagger, "config": { "mode": "tag" } });
    let routes = [
        ("/tagged/upstream", false, json!([tag.clone()])),
        (
            "/tagged/answered",
            false,
            json!([tag.clone(), { "pluginId": stopper, "config": { "mode": "deny" } }]),
        ),
        (
            "/tagged/failed",
            false,
            json!([tag, { "pluginId": stopper, "config": { "mode": "panic" } }]),
        ),
        (
            "/tagged/unauthenticated",
            true,
            json!([{ "pluginId": tagger, "config": { "mode": "tag" }, "phase": "auth" }]),
        ),
        (
            "/tagged/limited",
            false,
            json!([{ "pluginId": tagger, "config": { "mode": "tag" }, "phase": "auth" }]),
        ),
    ];
    for (path, auth, plugins) in routes {
        let limit = (path == "/tagged/limited").then_some(1);
        tenant
            .send(
                reqwest::Method::POST,
                "/routes",
                Some(json!({
                    "method": "GET", "pathPattern": path, "serviceId": service,
                    "authRequired": auth, "plugins": plugins, "rateLimitOverride": limit,
                })),
            )
            .await;
    }
    let node = stage.node(&[]).await;
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let (client, url) = (client.clone(), format!("{}{path}", node.base));
        async move { client.get(url).send().await.expect("sent") }
    };
    eventually("the plugins to run", || async {
        get("/tagged/upstream")
            .await
            .headers()
            .contains_key("x-tagged")
    })
    .await;
    // The limit of one a minute: the second request is the 429.
    assert_eq!(get("/tagged/limited").await.status(), StatusCode::OK);
    for (path, status) in [
        ("/tagged/upstream", StatusCode::OK),
        ("/tagged/answered", StatusCode::FORBIDDEN),
        ("/tagged/failed", StatusCode::SERVICE_UNAVAILABLE),
        ("/tagged/unauthenticated", StatusCode::UNAUTHORIZED),
        ("/tagged/limited", StatusCode::TOO_MANY_REQUESTS),
    ] {
        let response = get(path).await;
        assert_eq!(response.status(), status, "{path}");
        let header = |name: &str| response.headers().get(name).map(|v| v.as_bytes().to_vec());
        assert_eq!(
            header("x-tagged"),
            Some(b"yes".to_vec()),
            "{path}: {:?}",
            response.headers()
        );
        // The node's own error JSON keeps its content type.
        let own = status.is_server_error()
            || status == StatusCode::UNAUTHORIZED
            || status == StatusCode::TOO_MANY_REQUESTS;
        if own {
            assert_eq!(
                header("content-type"),
                Some(b"application/json".to_vec()),
                "{path}"
            );
        }
    }
    node.process.terminate();
}
