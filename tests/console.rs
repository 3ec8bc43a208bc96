//! The console's browser tests (`console/tests/`, Playwright driving
//! Debian's chromium) against the real `gatehouse control` binary, the test
//! upstream and, started by the tests themselves with the key the console
//! showed, a real gateway node. `make test` installs what they need:
//! `scripts/console.sh --browser` builds the console into the binary,
//! installs its npm packages and chromium.

mod support;

use std::path::Path;
use std::process::Command;

use gatehouse_proxy::plugins::builtins::TESTBED;
use support::{ClosedPort, ControlPlane, Scratch, upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let console = root.join("console");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        console.join("node_modules/@playwright/test").is_dir() && Path::new(&chromium).exists(),
        "the browser tests need console/node_modules and {chromium}: \
         run `scripts/console.sh --browser` (make test does)"
    );
    let scratch = Scratch::new("console");
    let upstream = upstream().await;
    let dead = ClosedPort::new();
    let control = ControlPlane::start(&scratch.0).await;
    let page = reqwest::Client::new()
        .get(format!("{}/", control.base))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("control plane answers")
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("<div id=\"root\">"),
        "this binary was built without the console: run scripts/console.sh, then the tests again"
    );
    let plugin = scratch.0.join("testbed.wasm");
    std::fs::write(&plugin, TESTBED).expect("plugin written");
    // Relative to the repository (the tests run in console/).
    let screenshots = root.join(
        std::env::var_os("GATEHOUSE_SCREENSHOTS")
            .unwrap_or_else(|| "target/console-screenshots".into()),
    );
    std::fs::create_dir_all(&screenshots).expect("screenshot dir");

    let mut playwright = Command::new("npx");
    playwright
        .current_dir(&console)
        .args(["playwright", "test"])
        .env("GATEHOUSE_URL", &control.base)
        .env("GATEHOUSE_BIN", env!("CARGO_BIN_EXE_gatehouse"))
        .env("UPSTREAM_URL", &upstream.url)
        .env("DEAD_URL", dead.url())
        .env("PLUGIN_WASM", &plugin)
        .env("MAIL_OUTBOX", scratch.0.join("outbox"))
        .env("SCREENSHOT_DIR", &screenshots)
        .env("PLAYWRIGHT_OUTPUT_DIR", scratch.0.join("playwright"))
        .env("CHROMIUM", &chromium);
    let status = tokio::task::spawn_blocking(move || playwright.status())
        .await
        .expect("joined")
        .expect("npx runs");
    assert!(
        status.success(),
        "the browser tests failed (traces are in the scratch dir's playwright/)"
    );
    upstream.stop().await;
}
