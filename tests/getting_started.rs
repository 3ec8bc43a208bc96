//! The getting-started guide as a newcomer follows it: `gatehouse dev`
//! starts, its banner's commands are pasted into a shell (they are
//! `docs/getting-started.sh`, which the guide explains), and each step does
//! what the guide says; started again, `gatehouse dev` shows what the
//! tenant has instead of making it again.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Process, Scratch};

/// A port nothing listens on now (the kernel's pick, released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// `gatehouse dev` with everything of its own in `dir`, its banner in
/// `banner`; the node on `proxy`, the echo upstream on `echo`.
fn dev(dir: &Path, (proxy, echo): (u16, u16), banner: &Path) -> Process {
    let stdout = std::fs::File::create(banner).expect("banner file");
    let stderr = std::fs::File::create(dir.join("dev.log")).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "dev".to_owned(),
            "--listen=127.0.0.1:0".to_owned(),
            format!("--proxy-listen=127.0.0.1:{proxy}"),
            format!("--admin-listen=127.0.0.1:{}", free_port()),
            format!("--echo-listen=127.0.0.1:{echo}"),
            format!("--database-url=sqlite://{}/dev.db", dir.display()),
            format!("--data-dir={}/data", dir.display()),
            format!("--mail-outbox={}/outbox", dir.display()),
            format!("--state-dir={}/state", dir.display()),
        ])
        .env("RUST_LOG", "info,pingora=warn")
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("gatehouse dev starts");
    Process { child, name: "dev" }
}

/// The banner in `file`, once it is whole.
async fn banner(file: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains("(Ctrl-C stops Gatehouse dev.)") {
            return text;
        }
        assert!(Instant::now() < deadline, "no banner:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The commands the banner gives to paste into a shell.
fn pasted(banner: &str) -> String {
    banner
        .lines()
        .skip_while(|line| *line != "In a shell:")
        .skip(1)
        .take_while(|line| !line.starts_with("(Ctrl-C"))
        .filter_map(|line| line.strip_prefix("  "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `script` in `sh` (for 2 minutes at most); its output.
fn shell(script: &str) -> String {
    let output = Command::new("timeout")
        .args(["120", "sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the pasted commands failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banners_first_steps_work_and_a_restart_shows_what_exists() {
    let scratch = Scratch::new("getting-started");
    let ports = (free_port(), free_port());
    let proxy = ports.0;
    let first = scratch.0.join("banner-1.txt");
    let process = dev(&scratch.0, ports, &first);
    let text = banner(&first).await;
    assert!(text.contains("echo upstream  http://127.0.0.1:"), "{text}");
    let script = pasted(&text);
    assert!(script.contains("SERVICE=$(curl"), "{text}");
    // The node serves once it has its first config.
    support::wait_for(&format!("http://127.0.0.1:{proxy}/hello"), 404).await;

    let started = Instant::now();
    let out = shell(&script);
    eprintln!("the first steps ran in {:.1?}:\n{out}", started.elapsed());
    let line = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in:\n{out}"))
            .trim()
            .to_owned()
    };
    assert_eq!(line("service: ").len(), 36, "a service id");
    assert!(line("alice's key: ").starts_with("ck_"));
    // The echo upstream answered through the node, with the gateway's headers.
    let echoed: serde_json::Value = serde_json::from_str(
        out.lines()
            .find(|l| l.starts_with('{'))
            .expect("the echo's JSON"),
    )
    .expect("JSON");
    assert_eq!(echoed["path"], "/hello");
    assert_eq!(echoed["query"], "from=getting-started");
    assert!(echoed["headers"]["x-request-id"].is_string(), "{echoed}");
    assert_eq!(line("without a key: "), "401");
    assert_eq!(line("with alice's key: "), "200");
    assert!(
        out.contains("200 200 200 200 429"),
        "the limit of 5:\n{out}"
    );
    // The log lines of the keyed requests, with alice as their consumer.
    let logs: serde_json::Value =
        serde_json::from_str(out.lines().last().expect("logs")).expect("the logs' JSON");
    let logs = logs.as_array().expect("a list");
    assert!(
        logs.iter()
            .any(|l| l["statusCode"] == 429 && l["consumerId"].is_string()),
        "{logs:?}"
    );
    process.terminate();

    // Started again: what exists is shown, nothing is made twice.
    let second = scratch.0.join("banner-2.txt");
    let process = dev(&scratch.0, ports, &second);
    let text = banner(&second).await;
    assert!(!text.contains("SERVICE=$(curl"), "{text}");
    assert!(
        text.contains("service   echo -> http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("route     GET /hello (open)"), "{text}");
    assert!(
        text.contains("route     ANY /private/* (needs an API key)"),
        "{text}"
    );
    assert!(text.contains("consumer  alice (key ck_"), "{text}");
    // Its commands still work: the open route answers through the node.
    support::wait_for(&format!("http://127.0.0.1:{proxy}/hello"), 200).await;
    let script = pasted(&text);
    let exports: Vec<&str> = script
        .lines()
        .filter(|l| l.starts_with("export "))
        .collect();
    let curl = script
        .lines()
        .find(|l| l.starts_with("curl -sS http://"))
        .expect("a curl of the open route");
    let out = shell(&format!("{}\n{curl}", exports.join("\n")));
    assert!(out.contains("\"path\":\"/hello\""), "{out}");
    let services = shell(&format!(
        "{}\ncurl -sS -H \"Authorization: Bearer $GATEHOUSE_TOKEN\" \
         \"$GATEHOUSE_URL/api/tenants/$GATEHOUSE_TENANT/services\"",
        exports.join("\n")
    ));
    let services: serde_json::Value = serde_json::from_str(&services).expect("JSON");
    assert_eq!(services.as_array().map(Vec::len), Some(1), "{services}");
    process.terminate();
}
