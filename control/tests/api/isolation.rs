//! Tenant isolation on every tenant-scoped operation of the OpenAPI
//! document: no token or a bad one is 401, another tenant's token 403,
//! another tenant's ids 404 (in paths), nothing (in filters) or 400 (in
//! bodies: a service or plugin of another tenant on a route).

use gatehouse_control::error_events;
use gatehouse_control::store::Timestamp;
use gatehouse_protocol::telemetry::ErrorOccurrence;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Db, Harness, JWT_SECRET, Tenant};
use crate::on_both_databases;

on_both_databases!(every_endpoint_is_isolated);

/// Every tenant-scoped operation of the OpenAPI document, with its path's
/// `{id}` filled with Alice's entity of that collection and a body the
/// handler accepts. An operation the test cannot fill fails the test, so a
/// new endpoint is isolated-tested from the day it is documented.
async fn endpoints(h: &Harness, ids: &Ids) -> Vec<Endpoint> {
    let document = h
        .call(Method::GET, "/api/openapi.json", None, None)
        .await
        .body;
    let paths = document["paths"].as_object().expect("paths");
    let mut endpoints = Vec::new();
    for (template, operations) in paths {
        let Some(rest) = template.strip_prefix("/api/tenants/{tenantId}") else {
            continue;
        };
        let collection = rest.split('/').nth(1).unwrap_or_default().to_owned();
        for (method, operation) in operations.as_object().expect("operations") {
            let method: Method = method.to_uppercase().parse().expect("a method");
            let params: Vec<&str> = operation["parameters"]
                .as_array()
                .map(|list| list.iter().filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            let mut path = rest.to_owned();
            if params.contains(&"id") {
                let id = ids.of(&collection).unwrap_or_else(|| {
                    panic!("no entity to name in {method} {template}: add one to populate()")
                });
                path = path.replace("{id}", id);
            }
            assert!(!path.contains('{'), "unfilled parameter in {template}");
            let body = body_for(&method, &collection, ids).unwrap_or_else(|| {
                panic!("no body for {method} {template}: add one to body_for()")
            });
            endpoints.push(Endpoint {
                method,
                path,
                names_an_id: params.contains(&"id"),
                body,
            });
        }
    }
    assert!(endpoints.len() >= 24, "{} operations", endpoints.len());
    endpoints
}

/// One tenant-scoped operation, ready to call.
struct Endpoint {
    method: Method,
    path: String,
    names_an_id: bool,
    body: Body,
}

/// What an operation is sent.
#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    Wasm(&'static str),
}

/// A body `method` on `collection` accepts; `None` for an operation this
/// test does not know yet.
fn body_for(method: &Method, collection: &str, ids: &Ids) -> Option<Body> {
    Some(match (method.as_str(), collection) {
        ("GET" | "DELETE", _) => Body::None,
        ("POST", "gateway-key") => Body::None,
        ("POST", "routes") => Body::Json(
            json!({ "method": "GET", "pathPattern": "/x", "serviceId": ids.service, "authRequired": true }),
        ),
        ("POST", "services") => Body::Json(json!({ "name": "x", "targetUrl": "http://h" })),
        ("POST", "consumers") => Body::Json(json!({ "name": "x" })),
        ("POST", "api-tokens") => Body::Json(json!({ "name": "x", "scope": "read" })),
        ("POST", "plugins") => Body::Wasm("?name=p&version=1.0.0"),
        ("PATCH", "routes") => Body::Json(json!({ "enabled": false })),
        ("PATCH", "services" | "consumers") => Body::Json(json!({ "name": "y" })),
        ("PATCH", "errors") => Body::Json(json!({ "resolved": true })),
        // The empty document: accepted from the wrong token, it would
        // delete everything of Alice's, which the end of the test checks.
        ("PUT", "config") => Body::Json(json!({})),
        ("PUT", "rate-limit-tiers") => Body::Json(
            json!({ "tiers": [{ "name": "free", "requestsPerMinute": 1 }], "anonymousRequestsPerMinute": null }),
        ),
        _ => return None,
    })
}

impl Endpoint {
    async fn call(
        &self,
        h: &Harness,
        tenant: &Tenant,
        token: Option<&str>,
    ) -> crate::common::Reply {
        let path = tenant.path(&self.path);
        match &self.body {
            Body::None => h.call(self.method.clone(), &path, token, None).await,
            Body::Json(body) => {
                h.call(self.method.clone(), &path, token, Some(body.clone()))
                    .await
            }
            Body::Wasm(query) => {
                h.call_raw(
                    self.method.clone(),
                    &format!("{path}{query}"),
                    token,
                    "application/wasm",
                    b"\0asm\x0d\0\x01\0".to_vec(),
                )
                .await
            }
        }
    }
}

struct Ids {
    service: String,
    route: String,
    consumer: String,
    error: String,
    plugin: String,
    api_token: String,
}

impl Ids {
    /// The entity of `collection` (a path's first segment).
    fn of(&self, collection: &str) -> Option<&str> {
        Some(match collection {
            "services" => &self.service,
            "routes" => &self.route,
            "consumers" => &self.consumer,
            "errors" => &self.error,
            "plugins" => &self.plugin,
            "api-tokens" => &self.api_token,
            _ => return None,
        })
    }
}

async fn populate(h: &Harness, t: &Tenant) -> Ids {
    let service = h.service(t, "svc").await;
    let route = h.route(t, &service, "/a").await;
    let consumer = h.consumer(t, "c").await;
    let error = error_events::record(
        h.store(),
        &t.id,
        &ErrorOccurrence {
            kind: "upstream_unavailable".into(),
            detail: None,
            message: "refused".into(),
            route_id: Some(route.clone()),
            service_id: Some(service.clone()),
            plugin_id: None,
            status_code: Some(502),
            at_ms: Timestamp::now().millis(),
        },
    )
    .await
    .expect("record");
    // A plugin row as an upload stores it (uploads of real components are
    // tested in tests/plugins.rs).
    let plugin = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO plugins (id, tenant_id, name, version, sha256, size_bytes, wasm, \
         created_at, updated_at) VALUES ($1, $2, 'guard', '1.0.0', $3, 8, $4, 1, 1)",
    )
    .bind(&plugin)
    .bind(&t.id)
    .bind(format!("{:064x}", uuid::Uuid::new_v4().as_u128()))
    .bind(b"\0asm\x0d\0\x01\0".to_vec())
    .execute(h.store().pool())
    .await
    .expect("plugin row");
    let api_token = h
        .post(
            &t.path("/api-tokens"),
            &t.token,
            json!({ "name": "ci", "scope": "write" }),
        )
        .await
        .str("id");
    Ids {
        service,
        route,
        consumer,
        error,
        plugin,
        api_token,
    }
}

/// A token with `"alg": "none"` and no signature.
fn unsigned(claims: Value) -> String {
    use base64::Engine;
    let encode = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        encode(json!({ "alg": "none", "typ": "JWT" })),
        encode(claims)
    )
}

fn signed(claims: Value, algorithm: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

async fn every_endpoint_is_isolated(db: Db) {
    let h = Harness::start(db).await;
    let alice = h.register("alice").await;
    let bob = h.register("bob").await;
    let alice_ids = populate(&h, &alice).await;
    populate(&h, &bob).await;

    let now = jsonwebtoken::get_current_timestamp();
    let bad_tokens = [
        "garbage".to_owned(),
        unsigned(json!({ "sub": alice.id, "iat": now, "exp": now + 600 })),
        signed(
            json!({ "sub": alice.id, "iat": now - 100_000, "exp": now - 10_000 }),
            Algorithm::HS256,
            JWT_SECRET,
        ),
        signed(
            json!({ "sub": alice.id, "iat": now, "exp": now + 600 }),
            Algorithm::HS256,
            "some-other-secret-of-enough-length!!",
        ),
        signed(
            json!({ "sub": alice.id, "iat": now, "exp": now + 600 }),
            Algorithm::HS384,
            JWT_SECRET,
        ),
        signed(
            json!({ "sub": alice.id, "iat": now }),
            Algorithm::HS256,
            JWT_SECRET,
        ),
    ];
    let token = |tenant: &Tenant, scope: &'static str| {
        let h = &h;
        let tenant = tenant.clone();
        async move {
            h.post(
                &tenant.path("/api-tokens"),
                &tenant.token,
                json!({ "name": format!("sweep {scope}"), "scope": scope }),
            )
            .await
            .str("token")
        }
    };
    let alice_read = token(&alice, "read").await;
    let bob_write = token(&bob, "write").await;
    let endpoints = endpoints(&h, &alice_ids).await;
    for endpoint in &endpoints {
        let (method, rest) = (&endpoint.method, &endpoint.path);
        let reply = endpoint.call(&h, &alice, None).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{method} {rest} without a token"
        );
        assert_eq!(reply.body["error"]["code"], "missing_token");
        for token in &bad_tokens {
            let reply = endpoint.call(&h, &alice, Some(token)).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{method} {rest} with a bad token"
            );
            assert_eq!(reply.body["error"]["code"], "invalid_token");
        }
        // Bob's valid token on Alice's tenant.
        let reply = endpoint.call(&h, &alice, Some(&bob.token)).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{method} {rest} with another tenant's token: {}",
            reply.text
        );
        assert_eq!(reply.body["error"]["code"], "forbidden");
        // Bob's automation token on Alice's tenant.
        let reply = endpoint.call(&h, &alice, Some(&bob_write)).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{method} {rest} with another tenant's automation token: {}",
            reply.text
        );
        // Alice's read token: every write refused, every read let through.
        if *method != Method::GET {
            let reply = endpoint.call(&h, &alice, Some(&alice_read)).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{method} {rest} with a read token: {}",
                reply.text
            );
            assert_eq!(reply.body["error"]["code"], "forbidden");
        } else {
            let reply = endpoint.call(&h, &alice, Some(&alice_read)).await;
            assert!(
                !matches!(
                    reply.status,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ),
                "{method} {rest} with a read token: {} {}",
                reply.status,
                reply.text
            );
        }
        // Bob's token on his own tenant, naming Alice's ids.
        if endpoint.names_an_id {
            let reply = endpoint.call(&h, &bob, Some(&bob.token)).await;
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{method} {rest} on Alice's id: {}",
                reply.text
            );
        }
    }
    // A dry run is a read for Alice's read token, and nothing for Bob's.
    for token in [&bob.token, &bob_write] {
        let reply = h
            .call(
                Method::PUT,
                &alice.path("/config?dryRun=true"),
                Some(token),
                Some(json!({})),
            )
            .await;
        reply.expect_error(StatusCode::FORBIDDEN, "forbidden");
    }
    h.call(
        Method::PUT,
        &alice.path("/config?dryRun=true"),
        Some(&alice_read),
        Some(json!({})),
    )
    .await
    .expect(StatusCode::OK);
    // Ids in query strings and bodies: Bob's logs filtered by Alice's
    // consumer are empty, and his routes cannot point at her service or
    // attach her plugin.
    let filtered = h
        .get(
            &bob.path(&format!("/logs?consumerId={}", alice_ids.consumer)),
            &bob.token,
        )
        .await;
    filtered.expect(StatusCode::OK);
    assert!(filtered.list().is_empty());
    let bob_service = h.service(&bob, "mine").await;
    h.post(&bob.path("/routes"), &bob.token,
        json!({ "method": "GET", "pathPattern": "/borrow", "serviceId": bob_service, "authRequired": false,
            "plugins": [{ "pluginId": alice_ids.plugin }] }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    // A route of Bob's cannot point at Alice's service.
    h.post(&bob.path("/routes"), &bob.token,
        json!({ "method": "GET", "pathPattern": "/steal", "serviceId": alice_ids.service, "authRequired": false }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_failed");

    // Nothing of Alice's changed, and Bob's lists show only Bob's rows.
    for rest in ["/routes", "/services", "/consumers", "/errors"] {
        let mine = h.get(&alice.path(rest), &alice.token).await;
        assert_eq!(mine.list().len(), 1, "{rest}: {}", mine.text);
        let theirs = h.get(&bob.path(rest), &bob.token).await;
        assert!(
            theirs
                .list()
                .iter()
                .all(|row| row["tenantId"] == bob.id.as_str()),
            "{rest}"
        );
        assert!(
            !theirs.text.contains(&alice.id),
            "{rest} leaks Alice's rows"
        );
    }
    // Not one of the writes above touched Alice's rows: each still reads as
    // populate() left it.
    let first = |rest: &'static str| {
        let (h, alice) = (&h, &alice);
        async move { h.get(&alice.path(rest), &alice.token).await.list()[0].clone() }
    };
    assert_eq!(first("/services").await["name"], "svc");
    let route = first("/routes").await;
    assert_eq!(route["enabled"], true, "{route}");
    assert_eq!(route["id"], alice_ids.route.as_str());
    let consumer = first("/consumers").await;
    assert_eq!(consumer["name"], "c", "{consumer}");
    let error = first("/errors").await;
    assert_eq!(error["resolved"], false, "{error}");
    let plugins = h.get(&alice.path("/plugins"), &alice.token).await;
    assert_eq!(plugins.list().len(), 1, "{}", plugins.text);
    assert_eq!(plugins.list()[0]["id"], alice_ids.plugin.as_str());
    h.finish().await;
}
