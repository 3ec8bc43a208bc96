//! Routes: create against live services, duplicates, patterns, partial
//! updates, soft delete.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Db, Harness};
use crate::on_both_databases;

on_both_databases!(route_lifecycle, route_validation_and_conflicts);

async fn route_lifecycle(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("rt").await;
    let service = h.service(&t, "users").await;
    let other_service = h.service(&t, "orders").await;

    let created = h
        .post(&t.path("/routes"), &t.token,
            json!({ "method": "get", "pathPattern": "/users/:id", "serviceId": service, "authRequired": true }))
        .await;
    created.expect(StatusCode::CREATED);
    let id = created.str("id");
    assert_eq!(created.body["method"], "GET", "methods are normalised");
    assert_eq!(created.body["enabled"], true, "enabled defaults to true");
    assert_eq!(created.body["authRequired"], true);
    assert!(created.body["rateLimitOverride"].is_null());

    let updated = h
        .patch(
            &t.path(&format!("/routes/{id}")),
            &t.token,
            json!({ "rateLimitOverride": 120, "enabled": false, "serviceId": other_service }),
        )
        .await;
    updated.expect(StatusCode::OK);
    assert_eq!(updated.body["rateLimitOverride"], 120);
    assert_eq!(updated.body["enabled"], false);
    assert_eq!(updated.body["serviceId"], other_service.as_str());
    assert_eq!(
        updated.body["pathPattern"], "/users/:id",
        "untouched fields stay"
    );
    assert_eq!(updated.body["authRequired"], true);

    let cleared = h
        .patch(
            &t.path(&format!("/routes/{id}")),
            &t.token,
            json!({ "rateLimitOverride": null }),
        )
        .await;
    cleared.expect(StatusCode::OK);
    assert!(cleared.body["rateLimitOverride"].is_null());

    let list = h.get(&t.path("/routes"), &t.token).await;
    assert_eq!(list.list().len(), 1);

    h.delete(&t.path(&format!("/routes/{id}")), &t.token)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(h.get(&t.path("/routes"), &t.token).await.list().is_empty());
    h.delete(&t.path(&format!("/routes/{id}")), &t.token)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    // The pattern is free again once the route is deleted.
    h.post(&t.path("/routes"), &t.token,
        json!({ "method": "GET", "pathPattern": "/users/:id", "serviceId": service, "authRequired": false }))
        .await
        .expect(StatusCode::CREATED);
    h.finish().await;
}

async fn route_validation_and_conflicts(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("rt").await;
    let service = h.service(&t, "users").await;
    let deleted = h.service(&t, "gone").await;
    h.delete(&t.path(&format!("/services/{deleted}")), &t.token)
        .await
        .expect(StatusCode::NO_CONTENT);
    let stranger = h.register("stranger").await;
    let foreign = h.service(&stranger, "theirs").await;

    let base = |method: &str, pattern: &str, service: &str| json!({ "method": method, "pathPattern": pattern, "serviceId": service, "authRequired": true });
    let cases = [
        (base("TRACE", "/a", &service), "method"),
        (base("GET", "a", &service), "pathPattern"),
        (base("GET", "/a/*/b", &service), "pathPattern"),
        (base("GET", "/a/:1x", &service), "pathPattern"),
        (base("GET", "/a//b", &service), "pathPattern"),
        (base("GET", "/a", &deleted), "serviceId"),
        (base("GET", "/a", &foreign), "serviceId"),
        (base("GET", "/a", "not-a-uuid"), "serviceId"),
        (
            base("GET", "/a", "00000000-0000-4000-8000-000000000000"),
            "serviceId",
        ),
        (
            json!({ "method": "GET", "pathPattern": "/a", "serviceId": service, "authRequired": true, "rateLimitOverride": 0 }),
            "rateLimitOverride",
        ),
        (
            json!({ "method": "GET", "pathPattern": "/a", "serviceId": service, "authRequired": true, "rateLimitOverride": 60_000_001 }),
            "rateLimitOverride",
        ),
    ];
    for (body, field) in cases {
        let reply = h.post(&t.path("/routes"), &t.token, body.clone()).await;
        reply.expect_error(StatusCode::BAD_REQUEST, "validation_failed");
        assert_eq!(reply.body["error"]["field"], field, "{body}");
    }
    // Plugins must be live plugins of this tenant.
    let with_plugin = |plugin: &str| {
        json!({ "method": "GET", "pathPattern": "/p", "serviceId": service, "authRequired": false,
                "plugins": [{ "pluginId": plugin }] })
    };
    for plugin in ["00000000-0000-4000-8000-000000000000", "not-a-uuid"] {
        let reply = h
            .post(&t.path("/routes"), &t.token, with_plugin(plugin))
            .await;
        reply.expect_error(StatusCode::BAD_REQUEST, "validation_failed");
        assert_eq!(reply.body["error"]["field"], "plugins");
    }
    // authRequired is required; types are checked.
    for body in [
        json!({ "method": "GET", "pathPattern": "/a", "serviceId": service }),
        json!({ "method": "GET", "pathPattern": "/a", "serviceId": service, "authRequired": "yes" }),
    ] {
        h.post(&t.path("/routes"), &t.token, body)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    }

    h.post(
        &t.path("/routes"),
        &t.token,
        base("GET", "/users/:id", &service),
    )
    .await
    .expect(StatusCode::CREATED);
    for dup in ["/users/:id", "/users/:name"] {
        h.post(&t.path("/routes"), &t.token, base("GET", dup, &service))
            .await
            .expect_error(StatusCode::CONFLICT, "route_conflict");
    }
    // Another method, ANY, or another tenant: no conflict.
    h.post(
        &t.path("/routes"),
        &t.token,
        base("POST", "/users/:id", &service),
    )
    .await
    .expect(StatusCode::CREATED);
    h.post(
        &t.path("/routes"),
        &t.token,
        base("ANY", "/users/:id", &service),
    )
    .await
    .expect(StatusCode::CREATED);
    h.post(
        &stranger.path("/routes"),
        &stranger.token,
        base("GET", "/users/:id", &foreign),
    )
    .await
    .expect(StatusCode::CREATED);

    // Updating into a clash is a conflict too.
    let other = h
        .post(
            &t.path("/routes"),
            &t.token,
            base("GET", "/orders", &service),
        )
        .await;
    let other_id = other.str("id");
    h.patch(
        &t.path(&format!("/routes/{other_id}")),
        &t.token,
        json!({ "pathPattern": "/users/:uid" }),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "route_conflict");
    h.patch(
        &t.path(&format!("/routes/{other_id}")),
        &t.token,
        json!({ "serviceId": deleted }),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    h.finish().await;
}
