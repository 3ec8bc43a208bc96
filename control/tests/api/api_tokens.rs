//! Automation tokens: shown once and stored hashed, accepted wherever a
//! tenant JWT is, `read` refused on every write, revocation at once, the
//! last use kept, and no reach into another tenant.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::accounts::{reset_token_in, wait_for_mail};
use crate::common::{Db, Harness};
use crate::on_both_databases;

on_both_databases!(
    tokens_are_scoped_and_revocable,
    the_token_limit_holds_when_tokens_are_made_at_once
);

async fn tokens_are_scoped_and_revocable(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("tokens").await;
    let make = |scope: &'static str| {
        let (h, t) = (&h, &t);
        async move {
            let created = h
                .post(
                    &t.path("/api-tokens"),
                    &t.token,
                    json!({ "name": format!("ci {scope}"), "scope": scope }),
                )
                .await;
            created.expect(StatusCode::CREATED);
            created
        }
    };
    let read = make("read").await;
    let write = make("write").await;
    let read_token = read.str("token");
    let write_token = write.str("token");
    assert!(
        read_token.starts_with("gt_") && read_token.len() >= 3 + 40,
        "{read_token}"
    );
    assert!(read_token.starts_with(&read.str("tokenPrefix")));
    assert_eq!(read.body["scope"], "read");
    assert!(read.body["lastUsedAt"].is_null());

    // Stored as SHA-256 only; the list shows no secret.
    let (hash,): (String,) = sqlx::query_as("SELECT token_hash FROM api_tokens WHERE id = $1")
        .bind(read.str("id"))
        .fetch_one(h.store().pool())
        .await
        .expect("row");
    assert_eq!(hash, gatehouse_control::secrets::sha256_hex(&read_token));
    let listed = h
        .call(Method::GET, &t.path("/api-tokens"), Some(&t.token), None)
        .await;
    listed.expect(StatusCode::OK);
    assert_eq!(listed.body.as_array().expect("list").len(), 2);
    assert!(!listed.text.contains(&read_token) && !listed.text.contains(&hash));
    assert!(listed.body[0].get("token").is_none());

    // A read token reads, and is refused every write.
    h.call(Method::GET, &t.path("/services"), Some(&read_token), None)
        .await
        .expect(StatusCode::OK);
    h.post(
        &t.path("/services"),
        &read_token,
        json!({ "name": "x", "targetUrl": "http://h" }),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");
    h.call(
        Method::POST,
        &t.path("/gateway-key"),
        Some(&read_token),
        None,
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");
    let refused = h
        .post(
            &t.path("/api-tokens"),
            &read_token,
            json!({ "name": "more", "scope": "write" }),
        )
        .await;
    refused.expect_error(StatusCode::FORBIDDEN, "forbidden");
    assert!(refused.text.contains("read-only"), "{}", refused.text);
    // A write token does what a JWT does.
    let service = h
        .post(
            &t.path("/services"),
            &write_token,
            json!({ "name": "x", "targetUrl": "http://h" }),
        )
        .await;
    service.expect(StatusCode::CREATED);
    h.call(
        Method::PATCH,
        &t.path(&format!("/services/{}", service.str("id"))),
        Some(&write_token),
        Some(json!({ "name": "y" })),
    )
    .await
    .expect(StatusCode::OK);

    // Only a session makes or revokes tokens: a leaked one cannot mint
    // its own successor.
    let minted = h
        .post(
            &t.path("/api-tokens"),
            &write_token,
            json!({ "name": "more", "scope": "write" }),
        )
        .await;
    minted.expect_error(StatusCode::FORBIDDEN, "forbidden");
    assert!(minted.text.contains("session token"), "{}", minted.text);
    h.call(
        Method::DELETE,
        &t.path(&format!("/api-tokens/{}", read.str("id"))),
        Some(&write_token),
        None,
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");

    // Its last use is kept.
    let listed = h
        .call(Method::GET, &t.path("/api-tokens"), Some(&t.token), None)
        .await;
    assert!(
        listed
            .body
            .as_array()
            .expect("list")
            .iter()
            .all(|token| token["lastUsedAt"].is_string()),
        "{}",
        listed.text
    );

    // Another tenant's paths are out of reach, its tokens unknown here.
    let other = h.register("other").await;
    h.call(
        Method::GET,
        &other.path("/services"),
        Some(&write_token),
        None,
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");
    h.call(
        Method::DELETE,
        &other.path(&format!("/api-tokens/{}", write.str("id"))),
        Some(&other.token),
        None,
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");

    // Bad input is refused at its field.
    h.post(
        &t.path("/api-tokens"),
        &t.token,
        json!({ "name": "x", "scope": "admin" }),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    h.post(
        &t.path("/api-tokens"),
        &t.token,
        json!({ "name": " ", "scope": "read" }),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_failed");

    // Revoked: 401 at once, gone from the list, a second revoke 404.
    let path = t.path(&format!("/api-tokens/{}", write.str("id")));
    h.call(Method::DELETE, &path, Some(&t.token), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    h.call(Method::GET, &t.path("/services"), Some(&write_token), None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    h.call(Method::DELETE, &path, Some(&t.token), None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let listed = h
        .call(Method::GET, &t.path("/api-tokens"), Some(&t.token), None)
        .await;
    assert_eq!(listed.body.as_array().expect("list").len(), 1);
    // An unknown token of the right shape is no better.
    h.call(
        Method::GET,
        &t.path("/services"),
        Some("gt_not-a-token"),
        None,
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");

    // A password reset revokes the tokens left, as it ends sessions.
    h.call(Method::GET, &t.path("/services"), Some(&read_token), None)
        .await
        .expect(StatusCode::OK);
    h.call(
        Method::POST,
        "/api/auth/forgot-password",
        None,
        Some(json!({ "email": t.email })),
    )
    .await
    .expect(StatusCode::OK);
    let reset = reset_token_in(&wait_for_mail(&h).await);
    h.call(
        Method::POST,
        "/api/auth/reset-password",
        None,
        Some(json!({ "token": reset, "password": "a new long password" })),
    )
    .await
    .expect(StatusCode::OK);
    h.call(Method::GET, &t.path("/services"), Some(&read_token), None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    h.finish().await;
}

/// Tokens made at once near the limit: exactly as many succeed as there are
/// places left (the count and the insert are one serialized transaction).
async fn the_token_limit_holds_when_tokens_are_made_at_once(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("token-limit").await;
    let path = t.path("/api-tokens");
    let make = |i: usize| {
        let (h, t, path) = (&h, &t, &path);
        async move {
            h.post(
                path,
                &t.token,
                json!({ "name": format!("ci {i}"), "scope": "read" }),
            )
            .await
            .status
        }
    };
    let limit = usize::try_from(gatehouse_control::api_tokens::MAX_TOKENS).expect("a count");
    let places_left = 3;
    for i in 0..limit - places_left {
        assert_eq!(make(i).await, StatusCode::CREATED);
    }
    let statuses = futures_util::future::join_all((0..24).map(|i| make(1000 + i))).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(created, places_left, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
    let listed = h.get(&path, &t.token).await;
    listed.expect(StatusCode::OK);
    assert_eq!(listed.body.as_array().map(Vec::len), Some(limit));
}
