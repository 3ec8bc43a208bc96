//! Services: create, list, partial update, soft delete, validation.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Db, Harness};
use crate::on_both_databases;

on_both_databases!(service_lifecycle, service_validation);

async fn service_lifecycle(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("svc").await;
    let created = h
        .post(&t.path("/services"), &t.token,
            json!({ "name": "users", "targetUrl": "http://127.0.0.1:8081/v1", "healthCheckPath": "/health" }))
        .await;
    created.expect(StatusCode::CREATED);
    let id = created.str("id");
    assert_eq!(created.body["tenantId"], t.id.as_str());
    assert_eq!(created.body["timeoutMs"], 30000, "default timeout");
    assert_eq!(created.body["healthCheckPath"], "/health");
    assert!(created.body["deletedAt"].is_null());
    assert!(created.str("createdAt").ends_with('Z'));

    // Partial update: only the name changes.
    let renamed = h
        .patch(
            &t.path(&format!("/services/{id}")),
            &t.token,
            json!({ "name": "people" }),
        )
        .await;
    renamed.expect(StatusCode::OK);
    assert_eq!(renamed.body["name"], "people");
    assert_eq!(renamed.body["targetUrl"], "http://127.0.0.1:8081/v1");
    assert_eq!(renamed.body["healthCheckPath"], "/health");
    assert_eq!(renamed.body["createdAt"], created.body["createdAt"]);

    // null clears the health check; the entity itself can be sent back.
    let mut whole = renamed.body.clone();
    whole["healthCheckPath"] = serde_json::Value::Null;
    whole["timeoutMs"] = json!(1500);
    let cleared = h
        .patch(&t.path(&format!("/services/{id}")), &t.token, whole)
        .await;
    cleared.expect(StatusCode::OK);
    assert!(cleared.body["healthCheckPath"].is_null());
    assert_eq!(cleared.body["timeoutMs"], 1500);

    let list = h.get(&t.path("/services"), &t.token).await;
    list.expect(StatusCode::OK);
    assert_eq!(list.list().len(), 1);
    assert_eq!(list.list()[0]["name"], "people");

    h.delete(&t.path(&format!("/services/{id}")), &t.token)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(
        h.get(&t.path("/services"), &t.token)
            .await
            .list()
            .is_empty()
    );
    h.delete(&t.path(&format!("/services/{id}")), &t.token)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    h.patch(
        &t.path(&format!("/services/{id}")),
        &t.token,
        json!({ "name": "zombie" }),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    // The row is soft-deleted, not gone.
    let (deleted,): (Option<i64>,) =
        sqlx::query_as("SELECT deleted_at FROM services WHERE id = $1")
            .bind(&id)
            .fetch_one(h.store().pool())
            .await
            .expect("row kept");
    assert!(deleted.is_some());
    h.finish().await;
}

async fn service_validation(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("svc").await;
    let cases = [
        (json!({ "name": "a", "targetUrl": "ftp://x" }), "targetUrl"),
        (
            json!({ "name": "a", "targetUrl": "/relative" }),
            "targetUrl",
        ),
        (
            json!({ "name": "a", "targetUrl": "http://h/?q=1" }),
            "targetUrl",
        ),
        (
            json!({ "name": "a", "targetUrl": "http://h", "timeoutMs": 0 }),
            "timeoutMs",
        ),
        (
            json!({ "name": "a", "targetUrl": "http://h", "timeoutMs": 300001 }),
            "timeoutMs",
        ),
        (
            json!({ "name": "a", "targetUrl": "http://h", "timeoutMs": -5 }),
            "timeoutMs",
        ),
        (
            json!({ "name": "a", "targetUrl": "http://h", "healthCheckPath": "health" }),
            "healthCheckPath",
        ),
        (json!({ "name": "", "targetUrl": "http://h" }), "name"),
        (
            json!({ "name": "x".repeat(201), "targetUrl": "http://h" }),
            "name",
        ),
    ];
    for (body, field) in cases {
        let reply = h.post(&t.path("/services"), &t.token, body.clone()).await;
        reply.expect_error(StatusCode::BAD_REQUEST, "validation_failed");
        assert_eq!(reply.body["error"]["field"], field, "{body}");
    }
    for body in [
        json!({ "name": "a" }),
        json!({ "name": "a", "targetUrl": "http://h", "timeoutMs": "fast" }),
        json!({ "name": "a", "targetUrl": "http://h", "timeoutMs": 1.5 }),
        json!({ "name": "a", "targetUrl": "http://h", "targetURL": "typo" }),
        json!([1, 2, 3]),
    ] {
        h.post(&t.path("/services"), &t.token, body)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    }
    // Boundaries are accepted.
    for timeout in [1, 300000] {
        h.post(
            &t.path("/services"),
            &t.token,
            json!({ "name": "b", "targetUrl": "https://h.example", "timeoutMs": timeout }),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    let id = h.service(&t, "c").await;
    h.patch(
        &t.path(&format!("/services/{id}")),
        &t.token,
        json!({ "targetUrl": "nope" }),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    h.finish().await;
}
