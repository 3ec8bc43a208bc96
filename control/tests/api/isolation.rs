//! Tenant isolation on every tenant-scoped endpoint: no token or a bad one
//! is 401, another tenant's token 403, another tenant's ids 404.

use gatehouse_control::error_events;
use gatehouse_control::store::Timestamp;
use gatehouse_protocol::telemetry::ErrorOccurrence;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Db, Harness, JWT_SECRET, Tenant};
use crate::on_both_databases;

on_both_databases!(every_endpoint_is_isolated);

/// Every tenant-scoped endpoint, with `{id}` for an entity id.
fn endpoints(ids: &Ids) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/routes".into(), None),
        (
            Method::POST,
            "/routes".into(),
            Some(
                json!({ "method": "GET", "pathPattern": "/x", "serviceId": ids.service, "authRequired": true }),
            ),
        ),
        (
            Method::PATCH,
            format!("/routes/{}", ids.route),
            Some(json!({ "enabled": false })),
        ),
        (Method::DELETE, format!("/routes/{}", ids.route), None),
        (Method::GET, "/services".into(), None),
        (
            Method::POST,
            "/services".into(),
            Some(json!({ "name": "x", "targetUrl": "http://h" })),
        ),
        (
            Method::PATCH,
            format!("/services/{}", ids.service),
            Some(json!({ "name": "y" })),
        ),
        (Method::DELETE, format!("/services/{}", ids.service), None),
        (Method::GET, "/consumers".into(), None),
        (
            Method::POST,
            "/consumers".into(),
            Some(json!({ "name": "x" })),
        ),
        (
            Method::PATCH,
            format!("/consumers/{}", ids.consumer),
            Some(json!({ "name": "y" })),
        ),
        (Method::DELETE, format!("/consumers/{}", ids.consumer), None),
        (Method::GET, "/logs".into(), None),
        (Method::GET, "/errors".into(), None),
        (
            Method::PATCH,
            format!("/errors/{}", ids.error),
            Some(json!({ "resolved": true })),
        ),
        (Method::GET, "/health".into(), None),
        (Method::GET, "/metrics?period=1h".into(), None),
        (Method::GET, "/gateway-status".into(), None),
        (Method::POST, "/gateway-key".into(), None),
        (Method::GET, "/plugins".into(), None),
        (Method::GET, format!("/plugins/{}", ids.service), None),
        (Method::DELETE, format!("/plugins/{}", ids.service), None),
        (Method::GET, "/rate-limit-tiers".into(), None),
        (
            Method::PUT,
            "/rate-limit-tiers".into(),
            Some(
                json!({ "tiers": [{ "name": "free", "requestsPerMinute": 1 }], "anonymousRequestsPerMinute": null }),
            ),
        ),
    ]
}

struct Ids {
    service: String,
    route: String,
    consumer: String,
    error: String,
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
    Ids {
        service,
        route,
        consumer,
        error,
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
    let endpoints = endpoints(&alice_ids);
    for (method, rest, body) in &endpoints {
        let path = alice.path(rest);
        let reply = h.call(method.clone(), &path, None, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{method} {rest} without a token"
        );
        assert_eq!(reply.body["error"]["code"], "missing_token");
        for token in &bad_tokens {
            let reply = h
                .call(method.clone(), &path, Some(token), body.clone())
                .await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{method} {rest} with a bad token"
            );
            assert_eq!(reply.body["error"]["code"], "invalid_token");
        }
        // Bob's valid token on Alice's tenant.
        let reply = h
            .call(method.clone(), &path, Some(&bob.token), body.clone())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{method} {rest} with another tenant's token: {}",
            reply.text
        );
        assert_eq!(reply.body["error"]["code"], "forbidden");
        // Bob's token on his own tenant, naming Alice's ids.
        if rest.contains(&alice_ids.service)
            || rest.contains(&alice_ids.route)
            || rest.contains(&alice_ids.consumer)
            || rest.contains(&alice_ids.error)
        {
            let reply = h
                .call(
                    method.clone(),
                    &bob.path(rest),
                    Some(&bob.token),
                    body.clone(),
                )
                .await;
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{method} {rest} on Alice's id: {}",
                reply.text
            );
        }
    }
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
    let service = h.get(&alice.path("/services"), &alice.token).await;
    assert_eq!(service.list()[0]["name"], "svc");
    h.finish().await;
}
