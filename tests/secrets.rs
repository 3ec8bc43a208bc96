//! Secrets never reach a log: a full run of both binaries at debug level
//! (register, a failed and a good login, a password reset by mail,
//! consumers and their keys in both headers (never passed on to the
//! service), a wrong key, a gateway-key
//! rotation and a node restarted with the new key), then every log the
//! binaries wrote is searched for every secret that went by.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{ControlPlane, JWT_SECRET, Node, PASSWORD, Scratch, Tenant, VERBOSE_LOGS, upstream};

const WRONG_PASSWORD: &str = "not-the-password-9183";
const NEW_PASSWORD: &str = "brand-new-password-5521";
const WRONG_KEY: &str = "ck_thisIsNotAKeyButLooksLikeOne0000000000000";

async fn post(http: &reqwest::Client, url: String, body: Value) -> (StatusCode, Value) {
    support::call_json(http, Method::POST, &url, None, Some(body)).await
}

/// The reset token of the first reset mail in `outbox`.
async fn reset_token(outbox: &std::path::Path) -> String {
    for _ in 0..200 {
        let mail = std::fs::read_dir(outbox)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.ok()?.path()).ok());
        if let Some(mail) = mail.filter(|m| m.contains("reset token")) {
            return mail
                .lines()
                .find(|line| {
                    line.starts_with("    ") && !line.trim().is_empty() && !line.contains("://")
                })
                .map(|line| line.trim().to_owned())
                .expect("a token line");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no reset mail in {}", outbox.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_ever_logged() {
    VERBOSE_LOGS.store(true, Ordering::SeqCst);
    let scratch = Scratch::new("secrets");
    let upstream = upstream().await;
    let control = ControlPlane::start(&scratch.0).await;
    let http = reqwest::Client::new();
    let auth = |path: &str| format!("{}/api/auth/{path}", control.base);
    let mut tenant = Tenant::register(&control.base).await;
    tenant.unlimited().await;

    let (status, _) = post(
        &http,
        auth("login"),
        json!({ "email": tenant.email, "password": WRONG_PASSWORD }),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, login) = post(
        &http,
        auth("login"),
        json!({ "email": tenant.email, "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let login_token = login["token"].as_str().expect("token").to_owned();

    let (status, _) = post(
        &http,
        auth("forgot-password"),
        json!({ "email": tenant.email }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let reset = reset_token(&scratch.0.join("outbox")).await;
    let (status, body) = post(
        &http,
        auth("reset-password"),
        json!({ "token": reset, "password": NEW_PASSWORD }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, relogin) = post(
        &http,
        auth("login"),
        json!({ "email": tenant.email, "password": NEW_PASSWORD }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let relogin_token = relogin["token"].as_str().expect("token").to_owned();
    // The reset revoked every token issued before it, on every endpoint.
    let first_token = std::mem::replace(&mut tenant.token, login_token.clone());
    let (status, body) = tenant.call(Method::GET, "/routes", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "token_revoked");
    tenant.token = relogin_token.clone();

    let service = tenant.service(&upstream.url, 30_000).await;
    tenant.route("GET", "/private", &service, true).await;
    let (_, key) = tenant.consumer(json!({ "name": "app" })).await;
    let node = Node::start_for(&scratch.0, &control, &tenant).await;
    let private = format!("{}/private", node.base);
    // The key authenticates the call but is not passed on to the service.
    // Every spelling the auth plugin accepts is stripped.
    for request in [
        http.get(&private).header("x-api-key", &key),
        http.get(&private).bearer_auth(&key),
        http.get(&private)
            .header("authorization", format!("bearer {key}")),
        http.get(&private)
            .header("authorization", format!("BEARER   {key}  ")),
    ] {
        let response = request.send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
        let echoed = response.text().await.expect("body");
        assert!(echoed.contains("x-consumer-id"), "{echoed}");
        assert!(!echoed.contains(&key), "the upstream saw the key: {echoed}");
    }
    let sent = http
        .get(&private)
        .header("x-api-key", WRONG_KEY)
        .send()
        .await;
    assert_eq!(sent.expect("sent").status(), StatusCode::UNAUTHORIZED);

    // The key is rotated; the node is restarted with the new one.
    let rotated = tenant.send(Method::POST, "/gateway-key", None).await;
    let new_gateway_key = rotated["gatewayApiKey"].as_str().expect("key").to_owned();
    node.process.terminate();
    let node = Node::start(
        &scratch.0,
        &control.base,
        &new_gateway_key,
        &scratch.0.join("node"),
    )
    .await;
    let sent = http
        .get(format!("{}/private", node.base))
        .header("x-api-key", &key)
        .send()
        .await;
    assert_eq!(sent.expect("sent").status(), StatusCode::OK);
    node.process.terminate();
    control.process.terminate();

    let logged: u64 = std::fs::read_dir(&scratch.0)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(logged > 20_000, "debug logs were written ({logged} bytes)");
    support::assert_logs_free_of(
        &scratch.0,
        &[
            PASSWORD,
            WRONG_PASSWORD,
            NEW_PASSWORD,
            JWT_SECRET,
            &first_token,
            &login_token,
            &relogin_token,
            &reset,
            &tenant.gateway_key,
            &new_gateway_key,
            &key,
            WRONG_KEY,
        ],
    );
}
