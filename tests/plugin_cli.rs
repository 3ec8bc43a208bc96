//! `gatehouse plugin new | build | push`, as a plugin author runs them:
//! every template (Rust, JavaScript, Python) is made, built into a
//! component the upload check accepts, pushed to a route of a real control
//! plane with a config, and seen at work through a real node; pushing the
//! same build again changes nothing. Prints each language's time from
//! template to live (the first run of a machine includes installing the
//! JavaScript and Python toolchains).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_proxy::plugins::builtins::TESTBED;
use reqwest::Method;
use serde_json::{Value, json};
use support::Stage;

/// Runs `gatehouse plugin <args>`; its stderr when it fails.
fn gatehouse(args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command.arg("plugin").args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    // The Rust template's build shares one cached target dir across runs.
    command.env(
        "CARGO_TARGET_DIR",
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-templates-target"),
    );
    let output = command.output().expect("gatehouse runs");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    if output.status.success() {
        Ok(text(&output.stdout))
    } else {
        Err(text(&output.stderr))
    }
}

fn path(dir: &Path) -> &str {
    dir.to_str().expect("a UTF-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_template_builds_and_goes_live_on_a_route() {
    let stage = Stage::new("plugin-cli").await;
    let tenant = &stage.tenant;
    // Debug builds instantiate the language runtimes slowly: a roomier
    // deadline than the 10 ms default.
    let node = stage.node(&["--plugin-deadline-ms=2000"]).await;
    let client = reqwest::Client::new();
    let control = stage.front.url();
    let env = [
        ("GATEHOUSE_URL", control.as_str()),
        ("GATEHOUSE_TOKEN", tenant.token.as_str()),
    ];

    for lang in ["rust", "js", "python"] {
        let name = format!("hello-{lang}");
        let route = tenant
            .route("GET", &format!("/{name}"), &stage.service, false)
            .await;
        let dir = stage.scratch.0.join(&name);
        let started = Instant::now();

        gatehouse(&["new", &name, "--lang", lang, "--dir", path(&dir)], &[]).expect("new");
        gatehouse(&["build", "--dir", path(&dir)], &[])
            .unwrap_or_else(|err| panic!("{lang} build: {err}"));
        let built = started.elapsed();
        let component = std::fs::read(dir.join(format!("{name}.wasm"))).expect("the component");
        assert_eq!(
            gatehouse_control::plugin_check::check(&component),
            Ok(()),
            "the {lang} template passes the upload check"
        );
        let config = format!(r#"{{"header": "x-made-by", "value": "{name}"}}"#);
        let push = [
            "push",
            "--dir",
            path(&dir),
            "--route",
            &route,
            "--config",
            &config,
        ];
        let pushed = gatehouse(&push, &env).unwrap_or_else(|err| panic!("{lang} push: {err}"));
        assert!(pushed.contains("attached to route"), "{pushed}");

        let url = format!("{}/{name}", node.base);
        // Polled slowly: the node compiles the component meanwhile (a
        // language runtime takes a debug build a minute or more), and every
        // request it fails closed is logged.
        let live = async {
            loop {
                if let Ok(response) = client.get(&url).send().await {
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if body["headers"]["x-made-by"] == name.as_str() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(300), live)
            .await
            .unwrap_or_else(|_| panic!("{name} not live on the node within 300 s"));
        eprintln!(
            "{lang}: template to live in {:.1?} (new + build {:.1?})",
            started.elapsed(),
            built
        );

        // The same build pushed again: the stored plugin, attached once.
        gatehouse(&push, &env).unwrap_or_else(|err| panic!("{lang} push again: {err}"));
        let routes = tenant.send(Method::GET, "/routes", None).await;
        let ours = routes
            .as_array()
            .and_then(|r| r.iter().find(|r| r["id"] == route.as_str()))
            .expect("the route")
            .clone();
        assert_eq!(ours["plugins"].as_array().map(Vec::len), Some(1), "{ours}");
        assert_eq!(ours["plugins"][0]["failurePolicy"], "closed");
    }
    let plugins = tenant.send(Method::GET, "/plugins", None).await;
    assert_eq!(plugins.as_array().map(Vec::len), Some(3), "{plugins}");

    // A route with another plugin first: a new version pushed without
    // flags takes the old version's place with its settings, and the other
    // plugin stays first.
    let testbed = tenant.upload_plugin("testbed", TESTBED).await;
    let shared = tenant
        .send(
            Method::POST,
            "/routes",
            Some(json!({
                "method": "GET", "pathPattern": "/shared", "serviceId": stage.service,
                "authRequired": false,
                "plugins": [{ "pluginId": testbed, "config": { "mode": "header" } }],
            })),
        )
        .await;
    let shared = shared["id"].as_str().expect("id").to_owned();
    let dir = stage.scratch.0.join("hello-rust");
    let kept = r#"{"header": "x-made-by", "value": "kept"}"#;
    let first = [
        "push",
        "--dir",
        path(&dir),
        "--route",
        &shared,
        "--config",
        kept,
    ];
    let settings = ["--failure-policy", "open", "--phase", "auth"];
    gatehouse(&[&first[..], &settings[..]].concat(), &env).expect("push");
    let manifest = dir.join("gatehouse-plugin.json");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, text.replace("\"0.1.0\"", "\"0.2.0\"")).expect("write");
    gatehouse(&["push", "--dir", path(&dir), "--route", &shared], &env).expect("push 0.2.0");
    let plugins = tenant.send(Method::GET, "/plugins", None).await;
    let version_of = |id: &Value| {
        plugins
            .as_array()
            .and_then(|p| p.iter().find(|p| p["id"] == *id))
            .map(|p| p["version"].clone())
    };
    let routes = tenant.send(Method::GET, "/routes", None).await;
    let route = routes
        .as_array()
        .and_then(|r| r.iter().find(|r| r["id"] == shared.as_str()))
        .expect("the route");
    let attached = route["plugins"].as_array().expect("plugins");
    assert_eq!(attached.len(), 2, "{route}");
    assert_eq!(attached[0]["pluginId"], testbed.as_str(), "{route}");
    assert_eq!(
        version_of(&attached[1]["pluginId"]),
        Some(json!("0.2.0")),
        "{route}"
    );
    assert_eq!(
        attached[1]["config"],
        json!({ "header": "x-made-by", "value": "kept" })
    );
    assert_eq!(attached[1]["failurePolicy"], "open", "{route}");
    assert_eq!(attached[1]["phase"], "auth", "{route}");
    let url = format!("{}/shared", node.base);
    let live = async {
        loop {
            if let Ok(response) = client.get(&url).send().await {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let headers = &body["headers"];
                if headers["x-made-by"] == "kept" && headers["x-testbed"].is_string() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), live)
        .await
        .expect("both plugins live on /shared");

    // What a push is refused for, it says; a mistyped route stores nothing.
    let elsewhere = gatehouse(
        &["push", "--dir", path(&dir), "--route", "no-such-route"],
        &env,
    )
    .expect_err("no such route");
    assert!(elsewhere.contains("no route no-such-route"), "{elsewhere}");
    // Over HTTPS (a TLS-terminating front, as a load balancer is): with
    // the CA it is verified against, the same build again is reused.
    let pki = support::tls::Pki::new(&stage.scratch.0, "push");
    let tls_port = support::tls::tls_front(
        &pki.leaf("front"),
        std::net::SocketAddr::from(([127, 0, 0, 1], stage.front.port)),
    )
    .await;
    let https_url = format!("https://localhost:{tls_port}");
    let ca = pki.ca_pem.to_str().expect("a UTF-8 path");
    let https = gatehouse(
        &[
            "push",
            "--dir",
            path(&dir),
            "--url",
            &https_url,
            "--ca-file",
            ca,
        ],
        &env,
    )
    .expect("pushed over HTTPS");
    assert!(https.contains("pushed hello-rust"), "{https}");
    let untrusted = gatehouse(&["push", "--dir", path(&dir), "--url", &https_url], &env)
        .expect_err("a CA the system does not know");
    assert!(untrusted.contains("reaching"), "{untrusted}");
    let after = tenant.send(Method::GET, "/plugins", None).await;
    assert_eq!(after.as_array().map(Vec::len), Some(5), "{after}");
    // Another build under a stored version: refused, asking for a version.
    let js = stage.scratch.0.join("hello-js/hello-js.wasm");
    let clash = gatehouse(&["push", "--dir", path(&dir), "--wasm", path(&js)], &env)
        .expect_err("other bytes");
    assert!(clash.contains("stored with other bytes"), "{clash}");
    std::fs::write(dir.join("hello-rust.wasm"), b"not wasm").expect("write");
    let bad = gatehouse(&["push", "--dir", path(&dir)], &env).expect_err("not a component");
    assert!(bad.contains("invalid_plugin"), "{bad}");
    node.process.terminate();
}
