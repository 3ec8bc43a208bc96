//! The config document (`GET/PUT .../config`): a round trip that changes
//! nothing the second time, one config version a change, `If-Match` and
//! 412, dry runs, errors that name the item and leave everything as it
//! was, deletion of what the document lacks, plugins by name and version,
//! and `whoami` for the tokens clients hold.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Db, Harness, Reply, Tenant};
use crate::on_both_databases;

on_both_databases!(
    a_document_round_trips_in_one_version,
    if_match_refuses_a_stale_document,
    an_invalid_item_changes_nothing,
    replacing_deletes_what_the_document_lacks,
    plugins_are_named_by_name_and_version,
    a_route_of_a_deleted_service_names_none,
    whoami_says_whose_a_token_is,
);

async fn version(h: &Harness, t: &Tenant) -> i64 {
    let (version,): (i64,) = sqlx::query_as("SELECT config_version FROM tenants WHERE id = $1")
        .bind(&t.id)
        .fetch_one(h.store().pool())
        .await
        .expect("tenant");
    version
}

async fn get_config(h: &Harness, t: &Tenant) -> (Value, String) {
    let reply = h.get(&t.path("/config"), &t.token).await;
    reply.expect(StatusCode::OK);
    let etag = reply
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("an ETag")
        .to_owned();
    (reply.body, etag)
}

async fn put_config(
    h: &Harness,
    t: &Tenant,
    doc: &Value,
    query: &str,
    if_match: Option<&str>,
) -> Reply {
    let mut request = h
        .http
        .put(format!("{}{}", h.base, t.path(&format!("/config{query}"))))
        .bearer_auth(&t.token)
        .json(doc);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    Reply::read(request.send().await.expect("sent")).await
}

fn document() -> Value {
    json!({
        "services": [
            { "name": "users", "targetUrl": "http://10.0.0.1:8080/v1", "healthCheckPath": "/health" },
            { "name": "billing", "targetUrl": "https://billing.internal", "timeoutMs": 5000 },
        ],
        "routes": [
            { "method": "get", "pathPattern": "/users/:id", "service": "users", "authRequired": true },
            { "method": "POST", "pathPattern": "/users", "service": "users", "authRequired": true,
              "rateLimitOverride": 10 },
            { "method": "ANY", "pathPattern": "/billing/*", "service": "billing", "authRequired": false,
              "enabled": false },
            { "method": "GET", "pathPattern": "/health", "service": "users", "authRequired": false },
        ],
        "consumers": [
            { "name": "alice", "rateLimitTier": "gold" },
            { "name": "bob" },
        ],
        "rateLimits": {
            "tiers": [{ "name": "free", "requestsPerMinute": 60 }, { "name": "gold", "requestsPerMinute": 900 }],
            "anonymousRequestsPerMinute": 30,
        },
    })
}

fn keys(changes: &Value) -> Vec<String> {
    changes["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["action"].as_str().unwrap_or_default(),
                c["kind"].as_str().unwrap_or_default(),
                c["key"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

async fn a_document_round_trips_in_one_version(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("doc").await;
    let (empty, _) = get_config(&h, &t).await;
    assert_eq!(empty["services"], json!([]));
    assert_eq!(
        empty["rateLimits"]["tiers"].as_array().map(Vec::len),
        Some(4)
    );
    let before = version(&h, &t).await;

    // A dry run answers the plan and changes nothing.
    let dry = put_config(&h, &t, &document(), "?dryRun=true", None).await;
    dry.expect(StatusCode::OK);
    assert_eq!(dry.body["dryRun"], true);
    assert_eq!(
        dry.body["summary"],
        json!({ "created": 8, "updated": 1, "deleted": 0 })
    );
    assert_eq!(dry.body["createdConsumers"], json!([]));
    assert_eq!(version(&h, &t).await, before);
    assert!(
        h.get(&t.path("/services"), &t.token)
            .await
            .list()
            .is_empty()
    );

    let applied = put_config(&h, &t, &document(), "", None).await;
    applied.expect(StatusCode::OK);
    assert_eq!(
        applied.body["summary"],
        json!({ "created": 8, "updated": 1, "deleted": 0 })
    );
    assert_eq!(
        version(&h, &t).await,
        before + 1,
        "one version for the whole change"
    );
    assert_eq!(applied.body["configVersion"], before + 1);
    let route = applied.body["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["key"] == "POST /users")
        .expect("the route's creation")
        .clone();
    assert!(
        route["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .any(|f| f["field"] == "rateLimitOverride" && f["to"] == 10),
        "{route}"
    );

    // New consumers' keys: in this answer only, stored hashed, working.
    let created = applied.body["createdConsumers"].as_array().expect("keys");
    assert_eq!(created.len(), 2);
    let alice_key = created
        .iter()
        .find(|c| c["name"] == "alice")
        .expect("alice")["apiKey"]
        .as_str()
        .expect("key")
        .to_owned();
    assert!(alice_key.starts_with("ck_"));
    let (hash,): (String,) = sqlx::query_as(
        "SELECT api_key_hash FROM consumers WHERE name = 'alice' AND tenant_id = $1",
    )
    .bind(&t.id)
    .fetch_one(h.store().pool())
    .await
    .expect("alice");
    assert_eq!(hash, gatehouse_control::secrets::sha256_hex(&alice_key));

    // The entities are what the document says, each route on its service.
    let services = h.get(&t.path("/services"), &t.token).await;
    let users = services
        .list()
        .iter()
        .find(|s| s["name"] == "users")
        .expect("users");
    assert_eq!(users["targetUrl"], "http://10.0.0.1:8080/v1");
    assert_eq!(users["timeoutMs"], 30000);
    let routes = h.get(&t.path("/routes"), &t.token).await;
    assert_eq!(routes.list().len(), 4);
    let by_key = |method: &str, pattern: &str| {
        routes
            .list()
            .iter()
            .find(|r| r["method"] == method && r["pathPattern"] == pattern)
            .unwrap_or_else(|| panic!("{method} {pattern}"))
            .clone()
    };
    assert_eq!(by_key("GET", "/users/:id")["serviceId"], users["id"]);
    assert_eq!(by_key("ANY", "/billing/*")["enabled"], false);
    let consumers = h.get(&t.path("/consumers"), &t.token).await;
    assert!(
        consumers
            .list()
            .iter()
            .any(|c| c["name"] == "alice" && c["rateLimitTier"] == "gold")
    );

    // The document comes back normalised, with the answer's digest.
    let (live, etag) = get_config(&h, &t).await;
    assert_eq!(etag, format!("\"{}\"", applied.str("etag")));
    assert_eq!(
        applied.headers.get("etag").and_then(|v| v.to_str().ok()),
        Some(etag.as_str())
    );
    assert_eq!(
        live["routes"][0]["method"], "ANY",
        "routes in key order: {live}"
    );
    assert_eq!(live["rateLimits"]["anonymousRequestsPerMinute"], 30);

    // The same document again, or the document read back: nothing changes.
    for doc in [document(), live.clone()] {
        let again = put_config(&h, &t, &doc, "", Some(&etag)).await;
        again.expect(StatusCode::OK);
        assert_eq!(again.body["changes"], json!([]), "{}", again.text);
        assert_eq!(again.body["configVersion"], before + 1);
        assert_eq!(again.body["createdConsumers"], json!([]));
    }
    assert_eq!(version(&h, &t).await, before + 1);
    let consumers_after = h.get(&t.path("/consumers"), &t.token).await;
    assert_eq!(
        consumers_after.list(),
        consumers.list(),
        "no consumer made again"
    );

    // A field change is an update of that field.
    let mut changed = live.clone();
    changed["services"][1]["timeoutMs"] = json!(1000);
    let update = put_config(&h, &t, &changed, "", Some(&etag)).await;
    update.expect(StatusCode::OK);
    assert_eq!(keys(&update.body), ["update service users"]);
    assert_eq!(
        update.body["changes"][0]["fields"],
        json!([{ "field": "timeoutMs", "from": 30000, "to": 1000 }])
    );
    assert_eq!(version(&h, &t).await, before + 2);
    h.finish().await;
}

async fn if_match_refuses_a_stale_document(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("stale").await;
    put_config(&h, &t, &document(), "", None)
        .await
        .expect(StatusCode::OK);
    let (doc, etag) = get_config(&h, &t).await;
    let services = h.get(&t.path("/services"), &t.token).await;
    let users = services
        .list()
        .iter()
        .find(|s| s["name"] == "users")
        .expect("users")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Rotating the gateway key is no change of the document.
    h.call(Method::POST, &t.path("/gateway-key"), Some(&t.token), None)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(get_config(&h, &t).await.1, etag);

    // A change through the REST API makes the digest stale.
    h.patch(
        &t.path(&format!("/services/{users}")),
        &t.token,
        json!({ "timeoutMs": 42 }),
    )
    .await
    .expect(StatusCode::OK);
    let before = version(&h, &t).await;
    let mut mine = doc.clone();
    mine["consumers"] = json!([]);
    for query in ["", "?dryRun=true"] {
        let stale = put_config(&h, &t, &mine, query, Some(&etag)).await;
        stale.expect_error(StatusCode::PRECONDITION_FAILED, "precondition_failed");
        let (_, current) = get_config(&h, &t).await;
        assert!(
            stale.text.contains(current.trim_matches('"')),
            "names the current ETag: {}",
            stale.text
        );
    }
    assert_eq!(version(&h, &t).await, before);
    assert_eq!(h.get(&t.path("/consumers"), &t.token).await.list().len(), 2);

    // A weak tag never matches; a list with the current one does; so does `*`.
    let (_, current) = get_config(&h, &t).await;
    put_config(&h, &t, &mine, "", Some(&format!("W/{current}")))
        .await
        .expect_error(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    put_config(&h, &t, &doc, "", Some("not-quoted"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_if_match");
    let listed = put_config(&h, &t, &mine, "", Some(&format!("{etag}, {current}"))).await;
    listed.expect(StatusCode::OK);
    assert_eq!(
        keys(&listed.body),
        [
            "update service users",
            "delete consumer alice",
            "delete consumer bob"
        ]
    );
    put_config(&h, &t, &document(), "", Some("*"))
        .await
        .expect(StatusCode::OK);
    h.finish().await;
}

/// What breaks one item of a document.
type Breakage = Box<dyn Fn(&mut Value)>;

async fn an_invalid_item_changes_nothing(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("invalid").await;
    put_config(&h, &t, &document(), "", None)
        .await
        .expect(StatusCode::OK);
    let (before, etag) = get_config(&h, &t).await;
    let version_before = version(&h, &t).await;
    // Each case changes a service and adds a consumer too, which must not
    // stay behind when another item fails.
    let cases: Vec<(&str, Breakage)> = vec![
        (
            "routes[3].pathPattern",
            Box::new(|d| d["routes"][3]["pathPattern"] = json!("no-slash")),
        ),
        (
            "routes[1].service",
            Box::new(|d| d["routes"][1]["service"] = json!("ghost")),
        ),
        (
            "routes[2].pathPattern",
            Box::new(
                |d| d["routes"][2] = json!({ "method": "GET", "pathPattern": "/users/:name", "service": "users", "authRequired": false }),
            ),
        ),
        (
            "services[1].targetUrl",
            Box::new(|d| d["services"][1]["targetUrl"] = json!("ftp://x")),
        ),
        (
            "services[0].timeoutMs",
            Box::new(|d| d["services"][0]["timeoutMs"] = json!(0)),
        ),
        (
            "consumers[0].rateLimitTier",
            Box::new(|d| d["consumers"][0]["rateLimitTier"] = json!("platinum")),
        ),
        (
            "consumers[0].rateLimitTier",
            Box::new(|d| {
                d["rateLimits"]["tiers"] = json!([{ "name": "free", "requestsPerMinute": 60 }])
            }),
        ),
        (
            "routes[0].plugins[0].name",
            Box::new(|d| d["routes"][0]["plugins"] = json!([{ "name": "nope", "version": "1" }])),
        ),
        (
            "routes[0].plugins[0]",
            Box::new(|d| {
                d["routes"][0]["plugins"] =
                    json!([{ "name": "nope", "version": "1", "phase": "later" }])
            }),
        ),
        (
            "consumers[2].name",
            Box::new(|d| d["consumers"][2] = json!({ "name": " alice " })),
        ),
    ];
    for (field, break_it) in cases {
        let mut doc = document();
        doc["services"][0]["targetUrl"] = json!("http://10.9.9.9/");
        doc["consumers"]
            .as_array_mut()
            .expect("consumers")
            .push(json!({ "name": "carol" }));
        break_it(&mut doc);
        let refused = put_config(&h, &t, &doc, "", Some(&etag)).await;
        refused.expect_error(StatusCode::BAD_REQUEST, "validation_failed");
        assert_eq!(refused.body["error"]["field"], field, "{}", refused.text);
        assert_eq!(get_config(&h, &t).await.0, before, "after {field}");
    }
    // Malformed and mistyped documents: 400, nothing changed.
    for body in [
        json!({ "services": [{ "name": "x" }] }),
        json!({ "service": [] }),
        json!({ "routes": {} }),
    ] {
        put_config(&h, &t, &body, "", None)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    }
    let malformed = h
        .call_raw(
            Method::PUT,
            &t.path("/config"),
            Some(&t.token),
            "application/json",
            "{\"services\": [",
        )
        .await;
    malformed.expect_error(StatusCode::BAD_REQUEST, "malformed_json");
    // Larger than the document limit: 413 naming that limit.
    // One byte over the limit (as the plugin upload's test does): the
    // server reads it all but that byte before it answers.
    let (head, tail) = ("{\"consumers\": [{\"name\": \"", "\"}]}");
    let limit = gatehouse_control::declarative::MAX_DOCUMENT_BYTES;
    let huge = format!(
        "{head}{}{tail}",
        "x".repeat(limit + 1 - head.len() - tail.len())
    );
    assert_eq!(huge.len(), limit + 1);
    // On a connection of its own: the server answers before reading the
    // whole body and closes it, which a pooled connection would carry into
    // the next request.
    let sent = reqwest::Client::new()
        .put(format!("{}{}", h.base, t.path("/config")))
        .bearer_auth(&t.token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("sent");
    let too_large = Reply::read(sent).await;
    too_large.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(
        too_large
            .text
            .contains(&gatehouse_control::declarative::MAX_DOCUMENT_BYTES.to_string()),
        "{}",
        too_large.text
    );
    assert_eq!(get_config(&h, &t).await.0, before);
    assert_eq!(version(&h, &t).await, version_before);
    h.finish().await;
}

async fn replacing_deletes_what_the_document_lacks(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("prune").await;
    put_config(&h, &t, &document(), "", None)
        .await
        .expect(StatusCode::OK);
    let billing_route = h
        .get(&t.path("/routes"), &t.token)
        .await
        .list()
        .iter()
        .find(|r| r["pathPattern"] == "/billing/*")
        .expect("billing route")["id"]
        .clone();
    let mut doc = document();
    doc["services"]
        .as_array_mut()
        .expect("services")
        .retain(|s| s["name"] != "billing");
    doc["routes"]
        .as_array_mut()
        .expect("routes")
        .retain(|r| r["service"] != "billing");
    doc["consumers"] = json!([{ "name": "alice", "rateLimitTier": "gold" }]);
    doc.as_object_mut().expect("doc").remove("rateLimits");
    let pruned = put_config(&h, &t, &doc, "", None).await;
    pruned.expect(StatusCode::OK);
    assert_eq!(
        keys(&pruned.body),
        [
            "delete service billing",
            "delete route ANY /billing/*",
            "delete consumer bob"
        ]
    );
    // Soft-deleted and revoked, not erased; the rest untouched.
    let (deleted_at,): (Option<i64>,) =
        sqlx::query_as("SELECT deleted_at FROM routes WHERE id = $1")
            .bind(billing_route.as_str())
            .fetch_one(h.store().pool())
            .await
            .expect("route row");
    assert!(deleted_at.is_some());
    let (revoked,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM consumers WHERE tenant_id = $1 AND name = 'bob' AND revoked_at IS NOT NULL")
        .bind(&t.id)
        .fetch_one(h.store().pool())
        .await
        .expect("bob");
    assert_eq!(revoked, 1);
    let (live, _) = get_config(&h, &t).await;
    assert_eq!(
        live["rateLimits"]["anonymousRequestsPerMinute"], 30,
        "absent rate limits stay"
    );
    assert_eq!(live["services"].as_array().map(Vec::len), Some(1));
    assert_eq!(live["routes"].as_array().map(Vec::len), Some(3));
    // A tenant whose names are not unique has no document until renamed.
    h.service(&t, "users").await;
    h.get(&t.path("/config"), &t.token)
        .await
        .expect_error(StatusCode::CONFLICT, "ambiguous_names");
    h.finish().await;
}

async fn plugins_are_named_by_name_and_version(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("plugins").await;
    // A plugin row as an upload stores it (uploads of real components, and
    // their upload by path, are tested end to end in tests/config_cli.rs).
    let sha256 = "ab".repeat(32);
    let plugin = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO plugins (id, tenant_id, name, version, sha256, size_bytes, wasm, \
         created_at, updated_at) VALUES ($1, $2, 'stamp', '1.0', $3, 8, $4, 1, 1)",
    )
    .bind(&plugin)
    .bind(&t.id)
    .bind(&sha256)
    .bind(b"\0asm\x0d\0\x01\0".to_vec())
    .execute(h.store().pool())
    .await
    .expect("plugin row");
    let mut doc = document();
    doc["routes"][0]["plugins"] =
        json!([{ "name": "stamp", "version": "1.0", "config": { "v": 1 }, "sha256": sha256 }]);
    put_config(&h, &t, &doc, "", None)
        .await
        .expect(StatusCode::OK);
    let routes = h.get(&t.path("/routes"), &t.token).await;
    let route = routes
        .list()
        .iter()
        .find(|r| r["pathPattern"] == "/users/:id")
        .expect("route");
    assert_eq!(
        route["plugins"],
        json!([{ "pluginId": plugin, "config": { "v": 1 }, "failurePolicy": "closed", "phase": "request" }])
    );
    let (live, _) = get_config(&h, &t).await;
    let listed = &live["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["pathPattern"] == "/users/:id")
        .expect("route")["plugins"];
    assert_eq!(
        listed,
        &json!([{ "name": "stamp", "version": "1.0", "config": { "v": 1 }, "failurePolicy": "closed", "phase": "request" }])
    );

    // Other bytes under the same name and version are refused.
    doc["routes"][0]["plugins"][0]["sha256"] = json!("cd".repeat(32));
    put_config(&h, &t, &doc, "?dryRun=true", None)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    // A plugin not stored yet: in a dry run, an upload to come when its
    // hash is given; otherwise an error at the item.
    doc["routes"][0]["plugins"][0] =
        json!({ "name": "stamp", "version": "2.0", "sha256": "cd".repeat(32) });
    let dry = put_config(&h, &t, &doc, "?dryRun=true", None).await;
    dry.expect(StatusCode::OK);
    assert_eq!(keys(&dry.body)[0], "create plugin stamp@2.0");
    let refused = put_config(&h, &t, &doc, "", None).await;
    refused.expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    assert_eq!(refused.body["error"]["field"], "routes[0].plugins[0].name");
    // The route still has version 1.0.
    assert_eq!(get_config(&h, &t).await.0, live);
    h.finish().await;
}

async fn whoami_says_whose_a_token_is(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("who").await;
    let session = h.get("/api/auth/whoami", &t.token).await;
    session.expect(StatusCode::OK);
    assert_eq!(
        session.body,
        json!({ "tenantId": t.id, "kind": "session", "scope": "write" })
    );
    let made = h
        .post(
            &t.path("/api-tokens"),
            &t.token,
            json!({ "name": "ci", "scope": "read" }),
        )
        .await;
    let token = made.str("token");
    // A write refused to it is no use of the token.
    let refused = h
        .http
        .put(format!("{}{}", h.base, t.path("/config")))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    Reply::read(refused)
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    let listed = h.get(&t.path("/api-tokens"), &t.token).await;
    assert_eq!(
        listed.list()[0]["lastUsedAt"],
        Value::Null,
        "{}",
        listed.text
    );
    let automation = h.get("/api/auth/whoami", &token).await;
    automation.expect(StatusCode::OK);
    assert_eq!(
        automation.body,
        json!({ "tenantId": t.id, "kind": "automation", "scope": "read", "tokenName": "ci" })
    );
    // A read token reads the document and cannot replace it.
    let (doc, _) = {
        let reply = h.get(&t.path("/config"), &token).await;
        reply.expect(StatusCode::OK);
        (reply.body.clone(), ())
    };
    let mut request = h
        .http
        .put(format!("{}{}", h.base, t.path("/config")))
        .bearer_auth(&token)
        .json(&doc);
    request = request.header("if-match", "*");
    Reply::read(request.send().await.expect("sent"))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    // A dry run is a read: the read token may plan (a CI drift check).
    let dry = h
        .http
        .put(format!("{}{}", h.base, t.path("/config?dryRun=true")))
        .bearer_auth(&token)
        .json(&json!({ "consumers": [{ "name": "someone" }] }))
        .send()
        .await
        .expect("sent");
    let dry = Reply::read(dry).await;
    dry.expect(StatusCode::OK);
    assert_eq!(keys(&dry.body), ["create consumer someone"]);
    assert!(
        h.get(&t.path("/consumers"), &t.token)
            .await
            .list()
            .is_empty()
    );
    h.delete(
        &t.path(&format!("/api-tokens/{}", made.str("id"))),
        &t.token,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    h.get("/api/auth/whoami", &token)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    h.call(Method::GET, "/api/auth/whoami", None, None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "missing_token");
    h.get("/api/auth/whoami", "garbage")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    h.finish().await;
}

async fn a_route_of_a_deleted_service_names_none(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("orphan").await;
    put_config(&h, &t, &document(), "", None)
        .await
        .expect(StatusCode::OK);
    let services = h.get(&t.path("/services"), &t.token).await;
    let billing = services
        .list()
        .iter()
        .find(|s| s["name"] == "billing")
        .expect("billing")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    h.delete(&t.path(&format!("/services/{billing}")), &t.token)
        .await
        .expect(StatusCode::NO_CONTENT);
    // A new service of the old name is not the route's service.
    let again = h
        .post(
            &t.path("/services"),
            &t.token,
            json!({ "name": "billing", "targetUrl": "http://10.0.0.2/" }),
        )
        .await;
    again.expect(StatusCode::CREATED);
    let (live, _) = get_config(&h, &t).await;
    assert_eq!(live["routes"][0]["pathPattern"], "/billing/*");
    assert_eq!(live["routes"][0]["service"], Value::Null, "{live}");
    // Sent back as it is: refused at the route.
    let refused = put_config(&h, &t, &live, "", None).await;
    refused.expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    assert_eq!(refused.body["error"]["field"], "routes[0].service");
    assert!(refused.text.contains("deleted"), "{}", refused.text);
    // Pointed at a service: an update of that field.
    let mut fixed = live.clone();
    fixed["routes"][0]["service"] = json!("billing");
    let repaired = put_config(&h, &t, &fixed, "", None).await;
    repaired.expect(StatusCode::OK);
    assert_eq!(keys(&repaired.body), ["update route ANY /billing/*"]);
    assert_eq!(
        repaired.body["changes"][0]["fields"],
        json!([{ "field": "service", "from": null, "to": "billing" }])
    );
    let routes = h.get(&t.path("/routes"), &t.token).await;
    let route = routes
        .list()
        .iter()
        .find(|r| r["pathPattern"] == "/billing/*")
        .expect("route");
    assert_eq!(route["serviceId"], again.body["id"]);
    h.finish().await;
}
