//! Plugin uploads: what is not a component of the plugin world is refused
//! with a clear reason and nothing is stored. (Uploads of real plugins are
//! tested end to end in `tests/plugins.rs`, where the built components are.)

use reqwest::{Method, StatusCode};

use crate::common::{Db, Harness, Reply, Tenant};
use crate::on_both_databases;

on_both_databases!(bad_uploads_are_refused);

async fn upload(h: &Harness, t: &Tenant, query: &str, content_type: &str, body: Vec<u8>) -> Reply {
    let path = t.path(&format!("/plugins{query}"));
    h.call_raw(Method::POST, &path, Some(&t.token), content_type, body)
        .await
}

async fn bad_uploads_are_refused(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("plugins").await;
    let q = "?name=my-plugin&version=1.0.0";
    let cases: [(&str, &[u8], &str); 4] = [
        ("not wasm", b"hello world", "not a WebAssembly component"),
        (
            "core module",
            b"\0asm\x01\0\0\0",
            "not a WebAssembly component",
        ),
        (
            "empty component",
            b"\0asm\x0d\0\x01\0",
            "missing export `describe`",
        ),
        (
            "truncated component",
            b"\0asm\x0d\0\x01\0\x07",
            "invalid component",
        ),
    ];
    for (what, body, reason) in cases {
        let reply = upload(&h, &t, q, "application/wasm", body.to_vec()).await;
        reply.expect_error(StatusCode::BAD_REQUEST, "invalid_plugin");
        let message = reply.body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(reason), "{what}: {message}");
    }
    upload(
        &h,
        &t,
        q,
        "application/octet-stream",
        b"\0asm\x0d\0\x01\0".to_vec(),
    )
    .await
    .expect_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    for bad_query in [
        "?name=My Plugin&version=1",
        "?name=ok&version=",
        "?version=1",
        "?name=ok",
    ] {
        let reply = upload(
            &h,
            &t,
            bad_query,
            "application/wasm",
            b"\0asm\x0d\0\x01\0".to_vec(),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad_query}: {}",
            reply.text
        );
    }
    let huge = vec![0u8; gatehouse_control::plugins::MAX_PLUGIN_BYTES + 1];
    upload(&h, &t, q, "application/wasm", huge)
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let list = h.get(&t.path("/plugins"), &t.token).await;
    list.expect(StatusCode::OK);
    assert!(list.list().is_empty(), "nothing was stored");
    h.finish().await;
}
