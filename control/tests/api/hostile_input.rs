//! Hostile input on every endpoint that takes some: each field of a valid
//! body missing or replaced by a wrong type, a huge string, odd unicode, a
//! negative or enormous number; whole bodies that are not objects or not
//! JSON; seeded random mixes of all of these; bad query strings and ids.
//! Whatever the input, the answer is never a 5xx, and a 4xx carries the
//! error JSON (`{"error":{"code","message"}}`).

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::common::{Db, Harness, Reply, Tenant};
use crate::on_both_databases;

on_both_databases!(no_input_gets_a_server_error, pages_past_the_cap_are_refused);

/// Values that fit no field, or fit one in a hostile way.
fn hostile_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1e308),
        json!(-0.5),
        json!(""),
        json!("   "),
        json!("a".repeat(100_000)),
        json!("名前 🚀 \u{202e}txet\u{0301}"),
        json!("nul\u{0000}byte"),
        json!("../../etc/passwd"),
        json!("' OR 1=1; --"),
        json!([]),
        json!([1, "two", null]),
        json!({}),
        json!({ "nested": { "deeper": [1, 2, 3] } }),
    ]
}

/// Bodies that are not a JSON object of the endpoint's shape, sent raw.
fn hostile_raw_bodies() -> Vec<String> {
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    vec![
        String::new(),
        "{".to_owned(),
        "{\"name\":".to_owned(),
        "null".to_owned(),
        "[]".to_owned(),
        "42".to_owned(),
        "\"a string\"".to_owned(),
        "\u{feff}{}".to_owned(),
        "{\"a\":1,\"a\":2}".to_owned(),
        deep,
        // Just over the 1 MiB limit (small enough to be written whole before
        // the server answers 413).
        format!("{{\"name\":\"{}\"}}", "x".repeat((1 << 20) + 1024)),
        "\u{fffd}\u{fffd}".to_owned(),
    ]
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

/// Asserts the reply is no server error, and that an error has the JSON.
fn check(what: &str, reply: &Reply) {
    assert!(
        !reply.status.is_server_error(),
        "{what}: {} {}",
        reply.status,
        reply.text.chars().take(300).collect::<String>()
    );
    if reply.status.is_client_error() {
        assert!(
            reply.body["error"]["code"].is_string() && reply.body["error"]["message"].is_string(),
            "{what}: {} without the error JSON: {}",
            reply.status,
            reply.text.chars().take(300).collect::<String>()
        );
    }
}

struct Endpoint {
    method: Method,
    path: String,
    token: Option<String>,
    valid: Value,
    /// Random mixes to try (fewer where a valid body costs a password hash).
    random: usize,
}

async fn send_json(h: &Harness, e: &Endpoint, body: Value) -> Reply {
    h.call(e.method.clone(), &e.path, e.token.as_deref(), Some(body))
        .await
}

async fn send_raw(h: &Harness, e: &Endpoint, body: String) -> Reply {
    let token = e.token.as_deref();
    h.call_raw(e.method.clone(), &e.path, token, "application/json", body)
        .await
}

fn endpoints(t: &Tenant, service: &str, route: &str, consumer: &str) -> Vec<Endpoint> {
    let auth = |path: &str, valid: Value| Endpoint {
        method: Method::POST,
        path: path.to_owned(),
        token: None,
        valid,
        random: 15,
    };
    let tenant = |method: Method, rest: &str, valid: Value| Endpoint {
        method,
        path: t.path(rest),
        token: Some(t.token.clone()),
        valid,
        random: 120,
    };
    vec![
        auth(
            "/api/auth/register",
            json!({ "name": "n", "email": "hostile@example.com", "password": "long-enough-pw" }),
        ),
        auth(
            "/api/auth/login",
            json!({ "email": t.email, "password": "wrong-password" }),
        ),
        auth(
            "/api/auth/forgot-password",
            json!({ "email": "nobody@example.com" }),
        ),
        auth(
            "/api/auth/reset-password",
            json!({ "token": "not-a-token", "password": "long-enough-pw" }),
        ),
        tenant(
            Method::POST,
            "/services",
            json!({ "name": "s", "targetUrl": "http://127.0.0.1:9/x", "healthCheckPath": "/h", "timeoutMs": 1000 }),
        ),
        tenant(
            Method::PATCH,
            &format!("/services/{service}"),
            json!({ "name": "s2", "targetUrl": "http://127.0.0.1:9/y", "healthCheckPath": "/h", "timeoutMs": 2000 }),
        ),
        tenant(
            Method::POST,
            "/routes",
            json!({ "method": "GET", "pathPattern": "/h/:id", "serviceId": service, "authRequired": true,
                    "rateLimitOverride": 10, "enabled": true, "plugins": [] }),
        ),
        tenant(
            Method::PATCH,
            &format!("/routes/{route}"),
            json!({ "method": "POST", "pathPattern": "/p/*rest", "serviceId": service, "authRequired": false,
                    "rateLimitOverride": null, "enabled": false, "plugins": [] }),
        ),
        tenant(
            Method::POST,
            "/consumers",
            json!({ "name": "c", "rateLimitTier": "free" }),
        ),
        tenant(
            Method::PATCH,
            &format!("/consumers/{consumer}"),
            json!({ "name": "c2", "rateLimitTier": "pro" }),
        ),
        tenant(
            Method::POST,
            "/api-tokens",
            json!({ "name": "t", "scope": "read" }),
        ),
        tenant(
            Method::PUT,
            "/rate-limit-tiers",
            json!({ "tiers": [{ "name": "free", "requestsPerMinute": 60 }], "anonymousRequestsPerMinute": 30 }),
        ),
        // Last: a valid document replaces the entities the others use.
        tenant(
            Method::PUT,
            "/config",
            json!({ "services": [{ "name": "s", "targetUrl": "http://127.0.0.1:9/x" }],
                    "routes": [{ "method": "GET", "pathPattern": "/h", "service": "s", "authRequired": true,
                                 "plugins": [{ "name": "p", "version": "1", "config": {} }] }],
                    "consumers": [{ "name": "c", "rateLimitTier": "free" }],
                    "rateLimits": { "tiers": [{ "name": "free", "requestsPerMinute": 60 }], "anonymousRequestsPerMinute": 30 } }),
        ),
    ]
}

/// Bad query strings and ids on the endpoints that read them.
fn hostile_paths(t: &Tenant) -> Vec<(Method, String)> {
    let huge = "9".repeat(5_000);
    let mut paths = Vec::new();
    for query in [
        "?page=-1".to_owned(),
        "?page=abc".to_owned(),
        format!("?page={huge}"),
        "?statusCode=abc".to_owned(),
        "?statusCode=-404".to_owned(),
        "?from=not-a-date&to=2020-13-45T99:99:99Z".to_owned(),
        "?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z".to_owned(),
        "?path=%00%ff%fe".to_owned(),
        format!("?path={}", "%F0%9F%9A%80".repeat(1_000)),
        "?consumerId=%27%20OR%201%3D1".to_owned(),
    ] {
        paths.push((Method::GET, t.path(&format!("/logs{query}"))));
    }
    for query in ["?resolved=maybe", "?resolved=", "?page=-5", "?page=1e9"] {
        paths.push((Method::GET, t.path(&format!("/errors{query}"))));
    }
    for query in ["", "?period=", "?period=1y", "?period=%F0%9F%9A%80"] {
        paths.push((Method::GET, t.path(&format!("/metrics{query}"))));
    }
    for id in [
        "not-a-uuid",
        "%00",
        "%F0%9F%9A%80",
        "..%2F..%2Fetc",
        huge.as_str(),
        "00000000-0000-0000-0000-000000000000",
    ] {
        for kind in ["routes", "services", "consumers", "errors", "plugins"] {
            paths.push((Method::GET, t.path(&format!("/{kind}/{id}"))));
            paths.push((Method::DELETE, t.path(&format!("/{kind}/{id}"))));
        }
        paths.push((Method::GET, format!("/api/tenants/{id}/routes")));
    }
    paths
}

async fn no_input_gets_a_server_error(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("hostile").await;
    let service = h.service(&t, "svc").await;
    let route = h.route(&t, &service, "/a").await;
    let consumer = h.consumer(&t, "c").await;
    let values = hostile_values();
    let mut tried = 0usize;
    let mut rng = Seeded(0x5eed_1234_abcd_ef01);
    for endpoint in endpoints(&t, &service, &route, &consumer) {
        let Value::Object(valid) = &endpoint.valid else {
            unreachable!("valid bodies are objects")
        };
        let fields: Vec<String> = valid.keys().cloned().collect();
        let label = format!("{} {}", endpoint.method, endpoint.path);
        // Each field missing, then each hostile value in its place.
        for field in &fields {
            let mut body = valid.clone();
            body.remove(field);
            let reply = send_json(&h, &endpoint, Value::Object(body)).await;
            check(&format!("{label} without {field}"), &reply);
            tried += 1;
            for value in &values {
                let mut body = valid.clone();
                body.insert(field.clone(), value.clone());
                let reply = send_json(&h, &endpoint, Value::Object(body)).await;
                let shown: String = value.to_string().chars().take(40).collect();
                check(&format!("{label} with {field} = {shown}"), &reply);
                tried += 1;
            }
        }
        // An unknown field beside valid ones.
        let mut extra = valid.clone();
        extra.insert("isAdmin".into(), json!(true));
        check(
            &format!("{label} with an unknown field"),
            &send_json(&h, &endpoint, Value::Object(extra)).await,
        );
        // Bodies that are not the endpoint's object at all.
        for raw in hostile_raw_bodies() {
            let shown: String = raw.chars().take(40).collect();
            let reply = send_raw(&h, &endpoint, raw).await;
            check(&format!("{label} with raw body {shown:?}"), &reply);
            tried += 1;
        }
        // Seeded random mixes: every field valid, hostile or missing.
        for round in 0..endpoint.random {
            let mut body = Map::new();
            for field in &fields {
                match rng.below(3) {
                    0 => {}
                    1 => {
                        body.insert(field.clone(), values[rng.below(values.len())].clone());
                    }
                    _ => {
                        body.insert(field.clone(), valid[field].clone());
                    }
                }
            }
            let reply = send_json(&h, &endpoint, Value::Object(body.clone())).await;
            check(&format!("{label} random #{round}: {body:?}"), &reply);
            tried += 1;
        }
    }
    for (method, path) in hostile_paths(&t) {
        let reply = h.call(method.clone(), &path, Some(&t.token), None).await;
        let shown: String = path.chars().take(80).collect();
        check(&format!("{method} {shown}"), &reply);
        tried += 1;
    }
    // The API still answers normally afterwards.
    h.get(&t.path("/routes"), &t.token)
        .await
        .expect(StatusCode::OK);
    eprintln!("hostile inputs tried: {tried}, none answered 5xx");
    assert!(tried > 1_500, "{tried}");
    h.finish().await;
}

/// Paging never asks the database to skip more than 200 pages of 50: a
/// page past that is a 400 naming the field, not a 50-million-row offset.
async fn pages_past_the_cap_are_refused(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("pager").await;
    for list in ["/logs", "/errors"] {
        h.get(&t.path(&format!("{list}?page=200")), &t.token)
            .await
            .expect(StatusCode::OK);
        for page in ["201", "1000000"] {
            let reply = h
                .get(&t.path(&format!("{list}?page={page}")), &t.token)
                .await;
            reply.expect_error(StatusCode::BAD_REQUEST, "validation_failed");
            assert_eq!(reply.body["error"]["field"], "page", "{}", reply.text);
        }
    }
    h.finish().await;
}
