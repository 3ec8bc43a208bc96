//! Uploading real plugin components (the built-ins the proxy's build script
//! makes) to the real control plane: stored with their SHA-256, listed,
//! versioned, deleted; another tenant sees none of them.

use clap::Parser;
use gatehouse_control::{Control, ControlArgs};
use gatehouse_proxy::plugins::builtins::API_KEY_AUTH;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

async fn control(dir: &std::path::Path) -> Control {
    let args = ControlArgs::try_parse_from([
        "control".to_owned(),
        "--listen=127.0.0.1:0".to_owned(),
        format!("--database-url=sqlite://{}/db.sqlite", dir.display()),
        "--jwt-secret=plugin-test-secret-plugin-test-secret".to_owned(),
        format!("--mail-outbox={}/outbox", dir.display()),
        format!("--data-dir={}/data", dir.display()),
    ])
    .expect("flags");
    Control::start(&args).await.expect("control plane starts")
}

async fn register(http: &reqwest::Client, base: &str, email: &str) -> (String, String) {
    let body: Value = http
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({ "name": "p", "email": email, "password": "long-enough-pw" }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    (
        format!(
            "{base}/api/tenants/{}",
            body["tenantId"].as_str().expect("id")
        ),
        body["token"].as_str().expect("token").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_components_are_stored_listed_and_deleted() {
    let dir = std::env::temp_dir().join(format!("gatehouse-plugins-{}", std::process::id()));
    let control = control(&dir).await;
    let base = format!("http://{}", control.addr);
    let http = reqwest::Client::new();
    let (api, token) = register(&http, &base, "plugins@example.com").await;
    let (other_api, other_token) = register(&http, &base, "other@example.com").await;
    let upload = |version: &str| {
        http.post(format!("{api}/plugins?name=api-key-auth&version={version}"))
            .bearer_auth(&token)
            .header("content-type", "application/wasm")
            .body(API_KEY_AUTH.to_vec())
            .send()
    };

    let created = upload("1.0.0").await.expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    let plugin: Value = created.json().await.expect("json");
    let expected: String = Sha256::digest(API_KEY_AUTH)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(plugin["sha256"], expected.as_str());
    assert_eq!(plugin["sizeBytes"], API_KEY_AUTH.len());
    assert_eq!(plugin["name"], "api-key-auth");
    let id = plugin["id"].as_str().expect("id").to_owned();

    assert_eq!(
        upload("1.0.0").await.expect("sent").status(),
        StatusCode::CONFLICT,
        "same name and version"
    );
    assert_eq!(
        upload("1.1.0").await.expect("sent").status(),
        StatusCode::CREATED,
        "a new version"
    );

    let list: Value = http
        .get(format!("{api}/plugins"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    assert!(
        list[0].get("wasm").is_none(),
        "the bytes are not in the JSON"
    );
    let other: Value = http
        .get(format!("{other_api}/plugins"))
        .bearer_auth(&other_token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(other.as_array().map(Vec::len), Some(0));
    let theirs = http
        .get(format!("{other_api}/plugins/{id}"))
        .bearer_auth(&other_token)
        .send()
        .await
        .expect("sent");
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);

    let got = http
        .get(format!("{api}/plugins/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(got.status(), StatusCode::OK);
    let deleted = http
        .delete(format!("{api}/plugins/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = http
        .get(format!("{api}/plugins/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        upload("1.0.0").await.expect("sent").status(),
        StatusCode::CREATED,
        "the version is free again"
    );
    control.stop().await.expect("stops");
    std::fs::remove_dir_all(dir).ok();
}
