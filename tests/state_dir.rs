//! Two tenants' real nodes taking turns on one `--state-dir`, on SQLite and
//! on PostgreSQL. Tenant B's node, started where tenant A's node left its
//! saved config and spilled telemetry, serves nothing of A's (404 on A's
//! route once connected, no config at all while the control plane is
//! away), serves its own config of the same version, ships none of A's
//! traffic as B's, and says so in its log. A's node, back on the folder,
//! ships what it spilled to A.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use support::throwaway_db::ThrowawayDb;
use support::{
    ControlPlane, Front, Node, Scratch, Tenant, eventually, eventually_within, upstream, wait_for,
};

/// The node's `/healthz` answer.
async fn health(node: &Node) -> Value {
    reqwest::get(format!("{}/healthz", node.admin))
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json")
}

async fn status(node: &Node, path: &str) -> StatusCode {
    reqwest::get(format!("{}{path}", node.base))
        .await
        .expect("sent")
        .status()
}

/// `tenant`'s stored request logs, as `path status`.
async fn logged(tenant: &Tenant) -> Vec<String> {
    let logs = tenant.all_logs("").await;
    logs.iter()
        .map(|log| {
            format!(
                "{} {}",
                log["path"].as_str().expect("path"),
                log["statusCode"]
            )
        })
        .collect()
}

/// Whether a log of `logged` is of A's traffic: A's route, served.
fn of_a(log: &str) -> bool {
    log == "/a-only 200"
}

async fn tenants_take_turns_on_one_state_dir(scratch: &Scratch, database_url: &str) {
    let control = ControlPlane::start_on(&scratch.0, database_url).await;
    let front = Front::to(control.port).await;
    let upstream = upstream().await;
    let a = Tenant::register(&front.url()).await;
    let b = Tenant::register(&front.url()).await;
    // The same changes for both, so their configs have the same version.
    for (tenant, path) in [(&a, "/a-only"), (&b, "/b-only")] {
        tenant.unlimited().await;
        let service = tenant.service(&upstream.url, 30_000).await;
        tenant.route("GET", path, &service, false).await;
    }
    let state = scratch.0.join("shared-state");

    // A's node serves A's route; with the control plane cut off it goes on
    // serving, and spills what it could not ship when it stops.
    let node = Node::start(&scratch.0, &front.url(), &a.gateway_key, &state).await;
    let version_a = health(&node).await["configVersion"].clone();
    for _ in 0..5 {
        assert_eq!(status(&node, "/a-only").await, StatusCode::OK);
    }
    eventually("A's first logs", || async { logged(&a).await.len() == 5 }).await;
    front.point_to(None);
    for _ in 0..7 {
        assert_eq!(status(&node, "/a-only").await, StatusCode::OK);
    }
    node.process.terminate();
    let spilled = std::fs::read_dir(a.outbox_in(&state))
        .expect("A's outbox")
        .count();
    assert!(spilled > 0, "A's undelivered logs were kept on disk");

    // B's node on the same folder, the control plane still away: A's saved
    // config is not B's, so it serves nothing.
    let node = Node::spawn(&scratch.0, &front.url(), &b.gateway_key, &state).await;
    eventually("B's node to name A's folder as not its own", || async {
        let log = std::fs::read_to_string(&node.log).unwrap_or_default();
        log.contains("other tenants' config and telemetry") && log.contains(a.id())
    })
    .await;
    // Once it listens (the log line above may come first).
    wait_for(&format!("{}/healthz", node.admin), 503).await;
    node.accepting().await;
    let offline = health(&node).await;
    assert_eq!(offline["status"], "no_config", "{offline}");
    let refused = reqwest::get(format!("{}/a-only", node.base))
        .await
        .expect("sent");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "gateway_not_configured", "{body}");

    // Connected, it serves B's config (the same version as A's was) and
    // answers 404 on A's route.
    front.point_to(Some(control.port));
    // Within the longest reconnect backoff.
    eventually_within(Duration::from_secs(20), "B's config", || async {
        health(&node).await["status"] == "ok"
    })
    .await;
    assert_eq!(health(&node).await["configVersion"], version_a);
    assert_eq!(status(&node, "/a-only").await, StatusCode::NOT_FOUND);
    assert_eq!(status(&node, "/b-only").await, StatusCode::OK);
    eventually("B's own log", || async {
        logged(&b).await.iter().any(|log| log == "/b-only 200")
    })
    .await;
    // Long enough for a shipment of A's spill to have arrived, had it gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b_logs = logged(&b).await;
    assert!(
        !b_logs.iter().any(|log| of_a(log)),
        "A's traffic shipped as B's: {b_logs:?}"
    );
    assert_eq!(logged(&a).await.len(), 5, "A's spill stays A's");
    node.process.terminate();

    // A's node back on the folder, the control plane away: B's turn left
    // A's saved config as it was, and A's node serves it.
    front.point_to(None);
    let node = Node::start(&scratch.0, &front.url(), &a.gateway_key, &state).await;
    assert_eq!(health(&node).await["configVersion"], version_a);
    assert_eq!(status(&node, "/a-only").await, StatusCode::OK);
    assert_eq!(status(&node, "/b-only").await, StatusCode::NOT_FOUND);
    // Connected again, it ships its spill (and that request) to A, once.
    front.point_to(Some(control.port));
    eventually_within(Duration::from_secs(20), "A's spilled logs", || async {
        logged(&a).await.len() >= 14
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a_logs = logged(&a).await;
    let b_only = a_logs.iter().filter(|log| *log == "/b-only 404").count();
    assert!(
        a_logs.len() == 14 && b_only == 1 && a_logs.iter().filter(|log| of_a(log)).count() == 13,
        "nothing lost, nothing twice: {a_logs:?}"
    );
    let b_logs = logged(&b).await;
    assert!(!b_logs.iter().any(|log| of_a(log)), "{b_logs:?}");
    eprintln!(
        "cross-tenant: 0 of A's requests served by B's node, 0 of A's {} logs shipped as B's",
        a_logs.len()
    );
    node.process.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_take_turns_on_one_state_dir_on_sqlite() {
    let scratch = Scratch::new("state-turns-sqlite");
    let database = format!("sqlite://{}/control.db", scratch.0.display());
    tenants_take_turns_on_one_state_dir(&scratch, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_take_turns_on_one_state_dir_on_postgres() {
    let scratch = Scratch::new("state-turns-postgres");
    let db = ThrowawayDb::create().await;
    tenants_take_turns_on_one_state_dir(&scratch, &db.url).await;
    db.remove().await;
}
