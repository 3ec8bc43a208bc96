//! HTTP conventions: JSON errors for unknown paths, wrong methods, bad
//! bodies and oversized ones; request ids; health; the OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{Db, Harness};
use crate::on_both_databases;

on_both_databases!(
    errors_are_json_everywhere,
    openapi_covers_every_endpoint,
    the_book_is_served_and_covers_every_endpoint
);

async fn errors_are_json_everywhere(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("http").await;

    let health = h.call(Method::GET, "/healthz", None, None).await;
    health.expect(StatusCode::OK);
    assert_eq!(health.body["status"], "ok");

    h.call(Method::GET, "/nope", None, None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    h.call(Method::PUT, &t.path("/routes"), Some(&t.token), None)
        .await
        .expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    h.call(
        Method::GET,
        &t.path("/routes/not-a-uuid"),
        Some(&t.token),
        None,
    )
    .await
    .expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    h.call(
        Method::DELETE,
        &t.path("/routes/not-a-uuid"),
        Some(&t.token),
        None,
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");

    let raw = |body: &'static str, content_type: &'static str| {
        let h = &h;
        let url = format!("{}{}", h.base, t.path("/services"));
        let token = t.token.clone();
        async move {
            crate::common::Reply::read(
                h.http
                    .post(url)
                    .bearer_auth(token)
                    .header("content-type", content_type)
                    .body(body)
                    .send()
                    .await
                    .expect("sent"),
            )
            .await
        }
    };
    raw("{\"name\": ", "application/json")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "malformed_json");
    raw("{\"name\": \"a\"}", "text/plain")
        .await
        .expect_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    let huge = json!({ "name": "x".repeat(1024 * 1024 + 10), "targetUrl": "http://h" });
    h.post(&t.path("/services"), &t.token, huge)
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // A huge string under the limit is a validation error, not a crash.
    let big = json!({ "name": "x".repeat(100_000), "targetUrl": "http://h" });
    h.post(&t.path("/services"), &t.token, big)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_failed");
    let unicode = h
        .post(
            &t.path("/services"),
            &t.token,
            json!({ "name": "Zürich ✓ 東京", "targetUrl": "http://h" }),
        )
        .await;
    unicode.expect(StatusCode::CREATED);
    assert_eq!(unicode.body["name"], "Zürich ✓ 東京");

    // Every response carries a request id; a client's own is kept.
    let reply = h.call(Method::GET, "/healthz", None, None).await;
    assert!(reply.headers.contains_key("x-request-id"));
    let mine = h
        .http
        .get(format!("{}/healthz", h.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("sent");
    assert_eq!(mine.headers()["x-request-id"], "abc-123");
    h.finish().await;
}

async fn openapi_covers_every_endpoint(db: Db) {
    let h = Harness::start(db).await;
    let doc = h.call(Method::GET, "/api/openapi.json", None, None).await;
    doc.expect(StatusCode::OK);
    let expected = [
        ("post", "/api/auth/register"),
        ("post", "/api/auth/login"),
        ("post", "/api/auth/forgot-password"),
        ("post", "/api/auth/reset-password"),
        ("get", "/api/auth/whoami"),
        ("get", "/api/tenants/{tenantId}/config"),
        ("put", "/api/tenants/{tenantId}/config"),
        ("get", "/api/tenants/{tenantId}/api-tokens"),
        ("post", "/api/tenants/{tenantId}/api-tokens"),
        ("delete", "/api/tenants/{tenantId}/api-tokens/{id}"),
        ("get", "/api/tenants/{tenantId}/routes"),
        ("post", "/api/tenants/{tenantId}/routes"),
        ("patch", "/api/tenants/{tenantId}/routes/{id}"),
        ("delete", "/api/tenants/{tenantId}/routes/{id}"),
        ("get", "/api/tenants/{tenantId}/services"),
        ("post", "/api/tenants/{tenantId}/services"),
        ("patch", "/api/tenants/{tenantId}/services/{id}"),
        ("delete", "/api/tenants/{tenantId}/services/{id}"),
        ("get", "/api/tenants/{tenantId}/consumers"),
        ("post", "/api/tenants/{tenantId}/consumers"),
        ("patch", "/api/tenants/{tenantId}/consumers/{id}"),
        ("delete", "/api/tenants/{tenantId}/consumers/{id}"),
        ("get", "/api/tenants/{tenantId}/logs"),
        ("get", "/api/tenants/{tenantId}/errors"),
        ("patch", "/api/tenants/{tenantId}/errors/{id}"),
        ("get", "/api/tenants/{tenantId}/health"),
        ("get", "/api/tenants/{tenantId}/metrics"),
        ("get", "/api/tenants/{tenantId}/metrics/summary"),
        ("get", "/api/tenants/{tenantId}/gateway-status"),
        ("post", "/api/tenants/{tenantId}/gateway-key"),
        ("get", "/api/tenants/{tenantId}/rate-limit-tiers"),
        ("put", "/api/tenants/{tenantId}/rate-limit-tiers"),
        ("get", "/api/tenants/{tenantId}/plugins"),
        ("post", "/api/tenants/{tenantId}/plugins"),
        ("get", "/api/tenants/{tenantId}/plugins/{id}"),
        ("delete", "/api/tenants/{tenantId}/plugins/{id}"),
    ];
    let paths = doc.body["paths"].as_object().expect("paths");
    let documented: usize = paths
        .values()
        .map(|p| p.as_object().expect("ops").len())
        .sum();
    assert_eq!(
        documented,
        expected.len(),
        "no undocumented extras, no gaps"
    );
    for (method, path) in expected {
        let op = &doc.body["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
    }
    assert_eq!(
        doc.body["components"]["securitySchemes"]["jwt"]["scheme"],
        "bearer"
    );
    assert!(
        doc.body["components"]["schemas"]["RouteEntity"]["properties"]["pathPattern"].is_object()
    );
    h.finish().await;
}

/// The book at `/docs/` (built into the binary by `make docs`, which `make
/// test` runs first), and its REST API chapter naming every endpoint of the
/// OpenAPI document as `METHOD path`.
async fn the_book_is_served_and_covers_every_endpoint(db: Db) {
    let h = Harness::start(db).await;
    let index = h.call(Method::GET, "/docs/", None, None).await;
    index.expect(StatusCode::OK);
    assert!(
        !index.text.contains("not built into this binary"),
        "the book is not embedded: run `make docs`, then the tests again"
    );
    assert!(index.text.contains("Gatehouse"), "{}", index.text);
    let guide = h
        .call(Method::GET, "/docs/getting-started.html", None, None)
        .await;
    guide.expect(StatusCode::OK);
    assert!(
        guide.text.contains("SERVICE=$(curl"),
        "the steps are included"
    );
    assert!(
        guide.headers["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/html"))
    );
    let stylesheet = index
        .text
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|href| href.starts_with("css/") && href.ends_with(".css"))
        .expect("a stylesheet of the book");
    let css = h
        .call(Method::GET, &format!("/docs/{stylesheet}"), None, None)
        .await;
    css.expect(StatusCode::OK);
    assert!(
        css.headers["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/css"))
    );
    // The interactive API reference, its assets from the binary itself.
    let reference = h.call(Method::GET, "/docs/api/", None, None).await;
    reference.expect(StatusCode::OK);
    assert!(
        reference.text.contains("swagger-ui-bundle.js"),
        "{}",
        reference.text
    );
    let init = h.call(Method::GET, "/docs/api/init.js", None, None).await;
    assert!(init.text.contains("/api/openapi.json"), "{}", init.text);
    let bundle = h
        .call(Method::GET, "/docs/api/swagger-ui-bundle.js", None, None)
        .await;
    bundle.expect(StatusCode::OK);
    assert!(
        bundle.headers["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/javascript"))
    );
    // At /docs/api too, as the contract names it, not redirected.
    let bare = h.call(Method::GET, "/docs/api", None, None).await;
    bare.expect(StatusCode::OK);
    assert_eq!(bare.text, reference.text);
    h.call(Method::GET, "/docs/no-such-page.html", None, None)
        .await
        .expect(StatusCode::NOT_FOUND);
    let bare = h
        .http
        .get(format!("{}/docs", h.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(bare.url().path(), "/docs/", "redirected");

    let chapter = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md"))
        .expect("docs/api.md");
    let doc = h.call(Method::GET, "/api/openapi.json", None, None).await;
    for (path, ops) in doc.body["paths"].as_object().expect("paths") {
        let shown = path
            .replace("/api/tenants/{tenantId}", "$API")
            .replace("{id}", ":id");
        for method in ops.as_object().expect("ops").keys() {
            let named = format!("`{} {shown}", method.to_uppercase());
            // The path ends there, or a query follows.
            let documented = [format!("{named}`"), format!("{named}?")]
                .iter()
                .any(|form| chapter.contains(form.as_str()));
            assert!(documented, "docs/api.md does not document {named}`");
        }
    }
    h.finish().await;
}
