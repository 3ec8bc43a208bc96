//! Consumers: keys shown once and stored hashed, tiers, revocation.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Db, Harness};
use crate::on_both_databases;

on_both_databases!(consumer_lifecycle, tiers_are_per_tenant_and_checked);

async fn consumer_lifecycle(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("cons").await;
    let created = h
        .post(
            &t.path("/consumers"),
            &t.token,
            json!({ "name": "mobile app" }),
        )
        .await;
    created.expect(StatusCode::CREATED);
    let id = created.str("id");
    let key = created.str("apiKey");
    assert!(key.starts_with("ck_") && key.len() >= 3 + 22, "{key}");
    assert_eq!(created.body["rateLimitTier"], "free", "default tier");
    assert!(key.starts_with(&created.str("apiKeyPrefix")));
    assert!(created.body["revokedAt"].is_null());

    // Stored as SHA-256 only: no column holds the key.
    let (hash, prefix): (String, String) =
        sqlx::query_as("SELECT api_key_hash, api_key_prefix FROM consumers WHERE id = $1")
            .bind(&id)
            .fetch_one(h.store().pool())
            .await
            .expect("row");
    assert_eq!(hash, gatehouse_control::secrets::sha256_hex(&key));
    assert!(prefix.len() < key.len());

    let list = h.get(&t.path("/consumers"), &t.token).await;
    list.expect(StatusCode::OK);
    assert_eq!(list.list().len(), 1);
    assert!(
        list.list()[0].get("apiKey").is_none(),
        "the key is shown once"
    );
    assert!(!list.text.contains(&key));

    let pro = h
        .post(
            &t.path("/consumers"),
            &t.token,
            json!({ "name": "partner", "rateLimitTier": "pro" }),
        )
        .await;
    pro.expect(StatusCode::CREATED);
    assert_ne!(pro.str("apiKey"), key);
    let reply = h
        .post(
            &t.path("/consumers"),
            &t.token,
            json!({ "name": "x", "rateLimitTier": "platinum" }),
        )
        .await;
    reply.expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    assert_eq!(reply.body["error"]["field"], "rateLimitTier");

    let updated = h
        .patch(
            &t.path(&format!("/consumers/{id}")),
            &t.token,
            json!({ "rateLimitTier": "enterprise" }),
        )
        .await;
    updated.expect(StatusCode::OK);
    assert_eq!(updated.body["rateLimitTier"], "enterprise");
    assert_eq!(updated.body["name"], "mobile app");
    h.patch(
        &t.path(&format!("/consumers/{id}")),
        &t.token,
        json!({ "rateLimitTier": "gold" }),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_failed");

    h.delete(&t.path(&format!("/consumers/{id}")), &t.token)
        .await
        .expect(StatusCode::NO_CONTENT);
    let list = h.get(&t.path("/consumers"), &t.token).await;
    assert_eq!(list.list().len(), 1, "revoked consumers leave the list");
    assert_eq!(list.list()[0]["name"], "partner");
    h.delete(&t.path(&format!("/consumers/{id}")), &t.token)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let (revoked,): (Option<i64>,) =
        sqlx::query_as("SELECT revoked_at FROM consumers WHERE id = $1")
            .bind(&id)
            .fetch_one(h.store().pool())
            .await
            .expect("row kept");
    assert!(revoked.is_some());
    h.finish().await;
}

async fn tiers_are_per_tenant_and_checked(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("tiers").await;
    let other = h.register("other").await;
    let defaults = h.get(&t.path("/rate-limit-tiers"), &t.token).await;
    defaults.expect(StatusCode::OK);
    assert_eq!(
        defaults.body,
        json!({
            "tiers": [
                { "name": "enterprise", "requestsPerMinute": 6000 },
                { "name": "free", "requestsPerMinute": 60 },
                { "name": "pro", "requestsPerMinute": 600 },
                { "name": "unlimited", "requestsPerMinute": null },
            ],
            "anonymousRequestsPerMinute": 60,
        })
    );

    let custom = json!({
        "tiers": [
            { "name": "free", "requestsPerMinute": 30 },
            { "name": "gold", "requestsPerMinute": 1200 },
            { "name": "unlimited", "requestsPerMinute": null },
        ],
        "anonymousRequestsPerMinute": 10,
    });
    let put = h
        .call(
            reqwest::Method::PUT,
            &t.path("/rate-limit-tiers"),
            Some(&t.token),
            Some(custom.clone()),
        )
        .await;
    put.expect(StatusCode::OK);
    assert_eq!(put.body["tiers"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        h.get(&t.path("/rate-limit-tiers"), &t.token).await.body["anonymousRequestsPerMinute"],
        10
    );
    // The other tenant keeps the defaults.
    assert_eq!(
        h.get(&other.path("/rate-limit-tiers"), &other.token)
            .await
            .body["tiers"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );

    // Consumers pick among the tenant's tiers.
    h.post(
        &t.path("/consumers"),
        &t.token,
        json!({ "name": "g", "rateLimitTier": "gold" }),
    )
    .await
    .expect(StatusCode::CREATED);
    h.post(
        &t.path("/consumers"),
        &t.token,
        json!({ "name": "p", "rateLimitTier": "pro" }),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    h.post(
        &other.path("/consumers"),
        &other.token,
        json!({ "name": "g", "rateLimitTier": "gold" }),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_failed");

    // A tier in use cannot go; bad documents are refused whole.
    let without_gold = json!({ "tiers": [{ "name": "free", "requestsPerMinute": 30 }], "anonymousRequestsPerMinute": null });
    h.call(
        reqwest::Method::PUT,
        &t.path("/rate-limit-tiers"),
        Some(&t.token),
        Some(without_gold),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "tier_in_use");
    for bad in [
        json!({ "tiers": [], "anonymousRequestsPerMinute": null }),
        json!({ "tiers": [{ "name": "Gold!", "requestsPerMinute": 5 }], "anonymousRequestsPerMinute": null }),
        json!({ "tiers": [{ "name": "a", "requestsPerMinute": 0 }], "anonymousRequestsPerMinute": null }),
        json!({ "tiers": [{ "name": "a", "requestsPerMinute": 60_000_001 }], "anonymousRequestsPerMinute": null }),
        json!({ "tiers": [{ "name": "a", "requestsPerMinute": 5 }, { "name": "a", "requestsPerMinute": 6 }], "anonymousRequestsPerMinute": null }),
        json!({ "tiers": [{ "name": "a", "requestsPerMinute": 5 }], "anonymousRequestsPerMinute": -1 }),
        json!({ "tiers": [{ "name": "a", "requestsPerMinute": "fast" }], "anonymousRequestsPerMinute": null }),
    ] {
        h.call(
            reqwest::Method::PUT,
            &t.path("/rate-limit-tiers"),
            Some(&t.token),
            Some(bad.clone()),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    }
    assert_eq!(
        h.get(&t.path("/rate-limit-tiers"), &t.token).await.body,
        put.body,
        "nothing changed"
    );
    h.finish().await;
}
