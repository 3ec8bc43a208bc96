//! The gateway connection: gateway-key auth, the first snapshot (up to date
//! only for the exact config), changes pushed as they happen (also across
//! replicas on PostgreSQL), changes whose announcement was lost (or a
//! database restored to an older version) delivered within a heartbeat,
//! heartbeats and gateway-status.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gatehouse_control::Control;
use gatehouse_protocol::sync::{self, CONNECT_PATH, ControlMessage, NodeMessage};
use gatehouse_protocol::{ConfigIdentity, ConfigSnapshot};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::common::{Db, Harness, Tenant};
use crate::on_both_databases;

on_both_databases!(
    gateway_keys_are_checked,
    nodes_get_snapshots_and_changes,
    rotating_the_key_cuts_off_old_nodes,
    large_snapshots_come_in_parts,
    only_the_exact_config_is_up_to_date,
    lost_announcements_are_repaired_within_a_heartbeat,
    a_node_behind_is_sent_its_config_again,
    deltas_carry_every_kind_of_change,
    a_node_reconnecting_is_sent_what_changed_since_its_config,
    the_control_planes_metrics_count_what_it_does
);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn dial(base: &str, key: &str, have: Option<ConfigIdentity>) -> Socket {
    dial_as(base, key, have, false).await
}

/// Dials as a node that applies deltas or not.
async fn dial_as(
    base: &str,
    key: &str,
    have: Option<ConfigIdentity>,
    accepts_deltas: bool,
) -> Socket {
    let url = format!("{}{CONNECT_PATH}", base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connects");
    let hello = NodeMessage::Hello {
        node_name: "test-node".into(),
        have_version: have.as_ref().map(|c| c.version),
        have_config: have,
        accepts_deltas,
    };
    socket
        .send(Message::text(serde_json::to_string(&hello).expect("json")))
        .await
        .expect("hello");
    socket
}

/// The next frame, within 10 s.
async fn frame(socket: &mut Socket) -> Message {
    tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a frame within 10 s")
        .expect("open")
        .expect("frame")
}

/// The next message that is not a heartbeat (put back together when it
/// comes in parts, as a node does).
async fn next(socket: &mut Socket) -> ControlMessage {
    let mut parted: Option<sync::Assembly> = None;
    loop {
        let text = match frame(socket).await {
            Message::Text(text) => {
                assert!(parted.is_none(), "a text frame amid parts");
                text.to_string()
            }
            Message::Binary(part) => {
                assert!(part.len() <= sync::PART_BYTES, "{} bytes", part.len());
                let assembly = parted.as_mut().expect("parts announced");
                match assembly.add(&part).expect("fits") {
                    Some(text) => text,
                    None => continue,
                }
            }
            _ => continue,
        };
        parted = None;
        match sync::decode_control(&text).expect("decodes") {
            ControlMessage::Heartbeat { .. } => continue,
            ControlMessage::Parts { bytes } => {
                parted = Some(sync::Assembly::new(bytes).expect("accepted"));
            }
            other => return other,
        }
    }
}

async fn snapshot(socket: &mut Socket) -> ConfigSnapshot {
    match next(socket).await {
        ControlMessage::Snapshot(snapshot) => snapshot,
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

/// `snapshot` with its lists in id order: a delta puts a new entity last,
/// the database lists them by creation time.
fn by_id(mut snapshot: ConfigSnapshot) -> ConfigSnapshot {
    snapshot.services.sort_by(|a, b| a.id.cmp(&b.id));
    snapshot.routes.sort_by(|a, b| a.id.cmp(&b.id));
    snapshot.consumers.sort_by(|a, b| a.id.cmp(&b.id));
    snapshot
}

/// The tenant's config as the database has it now.
async fn truth(h: &Harness, t: &Tenant) -> ConfigSnapshot {
    gatehouse_control::gateway::snapshot::build(h.store(), &t.id)
        .await
        .expect("built")
}

/// Applies the delta the node is sent next to `config`, which must then be
/// the tenant's config.
async fn follow(h: &Harness, t: &Tenant, node: &mut Socket, config: &mut ConfigSnapshot) {
    match next(node).await {
        ControlMessage::Delta(delta) => config.apply(delta).expect("starts from the node's config"),
        other => panic!("expected a delta, got {other:?}"),
    }
    assert_eq!(by_id(config.clone()), by_id(truth(h, t).await));
}

/// The close frame `socket` ends with, skipping other messages.
async fn closed(socket: &mut Socket) -> Option<CloseFrame> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("closed within 10 s");
        match frame {
            Some(Ok(Message::Close(frame))) => return frame,
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return None,
        }
    }
}

async fn connect_status(h: &Harness, key: &str) -> StatusCode {
    h.http
        .get(format!("{}{CONNECT_PATH}", h.base))
        .bearer_auth(key)
        .send()
        .await
        .expect("sent")
        .status()
}

async fn online(h: &Harness, t: &Tenant) -> bool {
    h.get(&t.path("/gateway-status"), &t.token).await.body["online"] == true
}

async fn gateway_keys_are_checked(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("gk").await;
    let url = |h: &Harness| format!("{}{CONNECT_PATH}", h.base);
    let missing = crate::common::Reply::read(h.http.get(url(&h)).send().await.expect("sent")).await;
    missing.expect_error(StatusCode::UNAUTHORIZED, "invalid_gateway_key");
    for key in ["gk_not-a-real-key", t.token.as_str()] {
        let reply = crate::common::Reply::read(
            h.http
                .get(url(&h))
                .bearer_auth(key)
                .send()
                .await
                .expect("sent"),
        )
        .await;
        reply.expect_error(StatusCode::UNAUTHORIZED, "invalid_gateway_key");
    }
    // The right key, but not a WebSocket.
    let reply = crate::common::Reply::read(
        h.http
            .get(url(&h))
            .bearer_auth(&t.gateway_key)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    reply.expect_error(StatusCode::BAD_REQUEST, "websocket_required");
    h.finish().await;
}

async fn nodes_get_snapshots_and_changes(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("node").await;
    let other = h.register("other").await;
    let service = h.service(&t, "users").await;
    let consumer = h
        .post(
            &t.path("/consumers"),
            &t.token,
            json!({ "name": "app", "rateLimitTier": "pro" }),
        )
        .await;
    let key = consumer.str("apiKey");
    h.service(&other, "not-mine").await;

    assert!(!online(&h, &t).await);
    let mut node = dial(&h.base, &t.gateway_key, None).await;
    let first = snapshot(&mut node).await;
    assert_eq!(first.tenant_id, t.id);
    assert_eq!(first.services.len(), 1, "only this tenant's services");
    assert_eq!(first.services[0].id, service);
    assert_eq!(first.consumers.len(), 1);
    assert_eq!(
        first.consumers[0].api_key_hash,
        gatehouse_control::secrets::sha256_hex(&key)
    );
    assert_eq!(first.consumers[0].rate_limit_tier, "pro");
    assert!(
        !serde_json::to_string(&first).expect("json").contains(&key),
        "never the key itself"
    );
    assert!(online(&h, &t).await);

    // A change over REST reaches the node at once.
    let started = Instant::now();
    let route = h
        .post(&t.path("/routes"), &t.token,
            json!({ "method": "GET", "pathPattern": "/users/:id", "serviceId": service, "authRequired": true }))
        .await;
    route.expect(StatusCode::CREATED);
    let pushed = snapshot(&mut node).await;
    eprintln!(
        "config propagation (REST call + push): {:?}",
        started.elapsed()
    );
    assert!(pushed.version > first.version);
    assert_eq!(pushed.routes.len(), 1);
    assert_eq!(pushed.routes[0].path_pattern, "/users/:id");

    h.delete(
        &t.path(&format!("/consumers/{}", consumer.str("id"))),
        &t.token,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let revoked = snapshot(&mut node).await;
    assert!(
        revoked.consumers.is_empty(),
        "a revoked key leaves the node's config"
    );
    h.delete(&t.path(&format!("/services/{service}")), &t.token)
        .await
        .expect(StatusCode::NO_CONTENT);
    let deleted = snapshot(&mut node).await;
    assert!(deleted.services.is_empty());
    assert_eq!(deleted.routes.len(), 1, "its route stays, to answer 503");
    // Failed writes and reads change nothing.
    h.post(
        &t.path("/services"),
        &t.token,
        json!({ "name": "bad", "targetUrl": "ftp://x" }),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    h.get(&t.path("/routes"), &t.token)
        .await
        .expect(StatusCode::OK);
    // Other tenants' changes are not pushed here.
    h.service(&other, "still-not-mine").await;

    node.send(Message::text(
        serde_json::to_string(&NodeMessage::Heartbeat { config: None }).expect("json"),
    ))
    .await
    .expect("heartbeat");
    node.close(None).await.expect("close");
    let deadline = Instant::now() + Duration::from_secs(5);
    while online(&h, &t).await {
        assert!(
            Instant::now() < deadline,
            "still online after a clean close"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A node that already has the current config is told so, not re-sent.
    let mut again = dial(&h.base, &t.gateway_key, Some(deleted.identity())).await;
    assert_eq!(
        next(&mut again).await,
        ControlMessage::UpToDate {
            version: deleted.version,
            config: Some(deleted.identity()),
        }
    );
    h.call(
        Method::PATCH,
        &t.path(&format!("/routes/{}", route.str("id"))),
        Some(&t.token),
        Some(json!({ "enabled": false })),
    )
    .await
    .expect(StatusCode::OK);
    let disabled = snapshot(&mut again).await;
    assert!(!disabled.routes[0].enabled);

    if matches!(db, Db::Postgres) {
        // A change committed through another replica reaches this node too.
        let replica = Control::start(&h.args).await.expect("second replica");
        let via_replica = format!("http://{}", replica.addr);
        let reply = h
            .http
            .post(format!("{via_replica}{}", t.path("/services")))
            .bearer_auth(&t.token)
            .json(&json!({ "name": "from-b", "targetUrl": "http://127.0.0.1:1" }))
            .send()
            .await
            .expect("sent");
        assert_eq!(reply.status(), StatusCode::CREATED);
        let relayed = snapshot(&mut again).await;
        assert!(
            relayed
                .services
                .iter()
                .any(|s| s.target_url == "http://127.0.0.1:1/")
        );
        replica.stop().await.expect("stops");
    }
    again.close(None).await.ok();
    h.finish().await;
}

async fn rotating_the_key_cuts_off_old_nodes(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("rotor").await;
    let other = h.register("bystander").await;
    h.service(&t, "users").await;
    let mut old_node = dial(&h.base, &t.gateway_key, None).await;
    snapshot(&mut old_node).await;
    let mut bystander = dial(&h.base, &other.gateway_key, None).await;
    snapshot(&mut bystander).await;

    let rotated = h.post(&t.path("/gateway-key"), &t.token, json!({})).await;
    rotated.expect(StatusCode::CREATED);
    let new_key = rotated.str("gatewayApiKey");
    assert!(new_key.starts_with("gk_") && new_key != t.gateway_key);
    assert!(new_key.starts_with(&rotated.str("gatewayKeyPrefix")));
    assert_eq!(rotated.str("tenantId"), t.id);

    // The node on the old key is closed with the rotation code, not sent
    // the config again; the old key no longer connects, the new one does.
    let frame = closed(&mut old_node).await.expect("a close frame");
    assert_eq!(u16::from(frame.code), sync::KEY_ROTATED_CLOSE_CODE);
    assert_eq!(
        connect_status(&h, &t.gateway_key).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        connect_status(&h, &new_key).await,
        StatusCode::BAD_REQUEST,
        "known key, not a WebSocket"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while online(&h, &t).await {
        assert!(
            Instant::now() < deadline,
            "the cut-off node still counts as online"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut new_node = dial(&h.base, &new_key, None).await;
    assert_eq!(snapshot(&mut new_node).await.services.len(), 1);
    assert!(online(&h, &t).await);

    // A key replaced without a version bump (as a node connecting during a
    // rotation sees it) is caught at the next heartbeat.
    let mut racing = dial(&h.base, &new_key, None).await;
    snapshot(&mut racing).await;
    sqlx::query("UPDATE tenants SET gateway_key_hash = 'replaced' WHERE id = $1")
        .bind(&t.id)
        .execute(h.store().pool())
        .await
        .expect("update");
    let frame = closed(&mut racing).await.expect("a close frame");
    assert_eq!(u16::from(frame.code), sync::KEY_ROTATED_CLOSE_CODE);

    // Another tenant's node is untouched and still follows its changes.
    h.service(&other, "mine").await;
    assert_eq!(snapshot(&mut bystander).await.services.len(), 1);
    assert!(online(&h, &other).await);
    new_node.close(None).await.ok();
    bystander.close(None).await.ok();
    h.finish().await;
}

/// A snapshot over [`sync::PART_BYTES`] (12,000 consumers, put in the
/// database directly) is announced and sent as binary parts, none longer
/// than a part, which make up the whole snapshot.
async fn large_snapshots_come_in_parts(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("big").await;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12000) \
         INSERT INTO consumers (id, tenant_id, name, api_key_hash, api_key_prefix, \
         rate_limit_tier, created_at, updated_at) \
         SELECT 'bulk-' || i, $1, 'bulk', \
         'hash-' || i || '-0123456789abcdef0123456789abcdef0123456789abcdef0123456789', \
         'ck_bulk', 'free', i, i FROM n",
    )
    .bind(&t.id)
    .execute(h.store().pool())
    .await
    .expect("consumers inserted");
    let mut socket = dial(&h.base, &t.gateway_key, None).await;
    let first = frame(&mut socket).await;
    let Message::Text(announce) = first else {
        panic!("expected the announcement, got {first:?}");
    };
    let ControlMessage::Parts { bytes } = sync::decode_control(&announce).expect("decodes") else {
        panic!("expected parts, got {announce}");
    };
    assert!(bytes > sync::PART_BYTES as u64, "{bytes}");
    let mut assembly = sync::Assembly::new(bytes).expect("accepted");
    let mut parts = 0;
    let text = loop {
        let next = frame(&mut socket).await;
        let Message::Binary(part) = next else {
            panic!("expected a binary part, got {next:?}");
        };
        assert!(part.len() <= sync::PART_BYTES);
        parts += 1;
        if let Some(text) = assembly.add(&part).expect("fits") {
            break text;
        }
    };
    assert_eq!(parts, (bytes as usize).div_ceil(sync::PART_BYTES));
    let ControlMessage::Snapshot(whole) = sync::decode_control(&text).expect("decodes") else {
        panic!("expected a snapshot");
    };
    assert_eq!(whole.consumers.len(), 12_000);
    assert!(whole.consumers.iter().any(|c| c.id == "bulk-12000"));
    // Changes pushed later come the same way (each is a large snapshot).
    let service = h.service(&t, "svc").await;
    h.route(&t, &service, "/after").await;
    loop {
        let pushed = snapshot(&mut socket).await;
        assert_eq!(pushed.consumers.len(), 12_000);
        if pushed.routes.iter().any(|r| r.path_pattern == "/after") {
            break;
        }
    }
    h.finish().await;
}

/// Two tenants that made the same number of changes are at the same
/// version: a node that names another tenant's config, or this tenant's
/// version with another revision (a database restored and changed again),
/// is sent the tenant's config, never told it is up to date.
async fn only_the_exact_config_is_up_to_date(db: Db) {
    let h = Harness::start(db).await;
    let a = h.register("tenant-a").await;
    let b = h.register("tenant-b").await;
    h.service(&a, "a-only").await;
    h.service(&b, "b-only").await;
    let mut node_a = dial(&h.base, &a.gateway_key, None).await;
    let config_a = snapshot(&mut node_a).await;
    let mut node_b = dial(&h.base, &b.gateway_key, None).await;
    let config_b = snapshot(&mut node_b).await;
    assert_eq!(
        config_a.version, config_b.version,
        "the same number of changes"
    );

    // B's key on a node that serves A's config (a shared state dir).
    let mut confused = dial(&h.base, &b.gateway_key, Some(config_a.identity())).await;
    let sent = snapshot(&mut confused).await;
    assert_eq!(sent.tenant_id, b.id);
    assert_eq!(sent.services.len(), 1);
    assert_eq!(sent.services[0].target_url, config_b.services[0].target_url);

    let other_revision = ConfigIdentity {
        revision: "from-before-a-restore".into(),
        ..config_a.identity()
    };
    let mut restored = dial(&h.base, &a.gateway_key, Some(other_revision)).await;
    assert_eq!(
        snapshot(&mut restored).await.identity(),
        config_a.identity()
    );

    let mut current = dial(&h.base, &a.gateway_key, Some(config_a.identity())).await;
    assert!(matches!(
        next(&mut current).await,
        ControlMessage::UpToDate { .. }
    ));
    for socket in [
        &mut node_a,
        &mut node_b,
        &mut confused,
        &mut restored,
        &mut current,
    ] {
        socket.close(None).await.ok();
    }
    h.finish().await;
}

/// Sends a node heartbeat naming `serving`.
async fn beat(socket: &mut Socket, serving: Option<ConfigIdentity>) {
    let beat = NodeMessage::Heartbeat {
        config: Some(serving),
    };
    socket
        .send(Message::text(serde_json::to_string(&beat).expect("json")))
        .await
        .expect("heartbeat");
}

/// A node whose heartbeat names another config than the one it was sent a
/// heartbeat earlier (or none: it installed nothing) is sent it again; a
/// node that names it, or predates config identities and names nothing
/// (no `config` field), is not.
async fn a_node_behind_is_sent_its_config_again(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("behind").await;
    h.service(&t, "svc").await;
    let mut node = dial(&h.base, &t.gateway_key, None).await;
    let sent = snapshot(&mut node).await;
    let heartbeat = Duration::from_millis(sync::HEARTBEAT_INTERVAL_MS);

    let again = async |node: &mut Socket| {
        tokio::time::timeout(heartbeat, snapshot(node))
            .await
            .expect("sent again at once")
            .identity()
    };

    tokio::time::sleep(heartbeat).await;
    beat(&mut node, None).await;
    assert_eq!(again(&mut node).await, sent.identity());

    tokio::time::sleep(heartbeat).await;
    let stale = ConfigIdentity {
        revision: "stale".into(),
        ..sent.identity()
    };
    beat(&mut node, Some(stale)).await;
    assert_eq!(again(&mut node).await, sent.identity());

    // Up to date, or silent about it: the next answer is the one to a
    // request sent after the heartbeats (a connection handles its messages
    // in order).
    tokio::time::sleep(heartbeat).await;
    beat(&mut node, Some(sent.identity())).await;
    node.send(Message::text(r#"{"type":"heartbeat"}"#))
        .await
        .expect("a bare heartbeat");
    let fetch = NodeMessage::FetchPlugin {
        sha256: "0".repeat(64),
    };
    node.send(Message::text(serde_json::to_string(&fetch).expect("json")))
        .await
        .expect("fetch");
    assert!(matches!(
        next(&mut node).await,
        ControlMessage::Plugin {
            wasm_base64: None,
            ..
        }
    ));
    node.close(None).await.ok();
    h.finish().await;
}

/// A change committed behind the hub's back (as when a NOTIFY is lost) and
/// a database sent back to an older version (a restore) both reach a
/// connected node within a heartbeat. On PostgreSQL, killing the LISTEN
/// connections of both replicas loses no change made through one of them
/// while the node is connected to the other.
async fn lost_announcements_are_repaired_within_a_heartbeat(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("lossy").await;
    let service = h.service(&t, "svc").await;
    let mut node = dial(&h.base, &t.gateway_key, None).await;
    let first = snapshot(&mut node).await;
    let limit = Duration::from_millis(sync::HEARTBEAT_INTERVAL_MS + 2_500);

    // Written in the database directly: nothing announces it. (After the
    // connection's first heartbeat check, so the repair is a later one.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    sqlx::query("UPDATE services SET target_url = 'http://127.0.0.1:2/' WHERE id = $1")
        .bind(&service)
        .execute(h.store().pool())
        .await
        .expect("update");
    sqlx::query(
        "UPDATE tenants SET config_version = config_version + 1, config_revision = 'direct' \
         WHERE id = $1",
    )
    .bind(&t.id)
    .execute(h.store().pool())
    .await
    .expect("bump");
    let repaired = snapshot(&mut node).await;
    let took = started.elapsed();
    eprintln!("unannounced change delivered in {took:?}");
    assert!(took < limit, "{took:?}");
    assert_eq!(repaired.services[0].target_url, "http://127.0.0.1:2/");
    assert_eq!(repaired.version, first.version + 1);

    // A restore: the version goes back, with the old content.
    let started = Instant::now();
    sqlx::query("UPDATE services SET target_url = $1 WHERE id = $2")
        .bind(&first.services[0].target_url)
        .bind(&service)
        .execute(h.store().pool())
        .await
        .expect("update");
    sqlx::query(
        "UPDATE tenants SET config_version = $1, config_revision = 'restored' WHERE id = $2",
    )
    .bind(first.version)
    .bind(&t.id)
    .execute(h.store().pool())
    .await
    .expect("restore");
    let back = snapshot(&mut node).await;
    let took = started.elapsed();
    eprintln!("restored (older) config delivered in {took:?}");
    assert!(took < limit, "{took:?}");
    assert_eq!(back.version, first.version);
    assert_eq!(back.services[0].target_url, first.services[0].target_url);

    if matches!(db, Db::Postgres) {
        let replica = Control::start(&h.args).await.expect("second replica");
        let mut remote = dial(&format!("http://{}", replica.addr), &t.gateway_key, None).await;
        snapshot(&mut remote).await;
        let mut times = Vec::new();
        for round in 0..5 {
            // The listeners killed in the round before may still be making
            // their connections again: a round starts once one listens.
            let deadline = Instant::now() + Duration::from_secs(10);
            let killed = loop {
                let killed: Vec<(bool,)> = sqlx::query_as(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND query LIKE 'LISTEN%'",
                )
                .fetch_all(h.store().pool())
                .await
                .expect("terminate");
                if !killed.is_empty() || Instant::now() > deadline {
                    break killed;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert!(
                !killed.is_empty(),
                "the replicas' LISTEN connections were found within 10 s"
            );
            let started = Instant::now();
            let name = format!("after-kill-{round}");
            h.service(&t, &name).await;
            loop {
                let pushed = snapshot(&mut remote).await;
                if pushed.services.len() == 2 + round {
                    break;
                }
            }
            times.push(started.elapsed());
        }
        eprintln!("changes delivered across replicas after a killed LISTEN connection: {times:?}");
        // Well inside a heartbeat: the LISTEN connection, made again,
        // re-checks every connection, not the heartbeat after.
        assert!(
            times.iter().all(|t| *t < Duration::from_millis(2_500)),
            "{times:?}"
        );
        remote.close(None).await.ok();
        replica.stop().await.expect("stops");
    }
    node.close(None).await.ok();
    h.finish().await;
}

/// The value of the sample `name` (with its labels, as rendered) in
/// Prometheus text; `None` when there is no such sample.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn the_control_planes_metrics_count_what_it_does(db: Db) {
    let h = Harness::start_with(db, &["--metrics-listen=127.0.0.1:0"]).await;
    let addr = h
        .control
        .as_ref()
        .and_then(|c| c.metrics_addr)
        .expect("metrics served");
    let metrics = || async move {
        let response = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("metrics");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .is_ok_and(|t| t.starts_with("text/plain")),
        );
        response.text().await.expect("text")
    };
    let before = metrics().await;
    assert_eq!(
        sample(&before, "gatehouse_control_gateway_connections"),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "gatehouse_control_config_writes_total"),
        Some(0.0)
    );
    assert!(sample(&before, "gatehouse_control_db_pool_max_connections").is_some_and(|n| n >= 1.0));

    let t = h.register("metered").await;
    h.service(&t, "svc").await;
    let text = metrics().await;
    assert_eq!(
        sample(&text, "gatehouse_control_config_writes_total"),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, "gatehouse_control_db_write_begins_total").is_some_and(|n| n >= 2.0));
    assert!(sample(&text, "gatehouse_control_db_write_wait_seconds_total").is_some());
    assert!(sample(&text, r#"gatehouse_control_db_connections{state="idle"}"#).is_some());

    // A node: connected, sent its snapshot, its telemetry counted.
    let mut node = dial(&h.base, &t.gateway_key, None).await;
    snapshot(&mut node).await;
    let text = metrics().await;
    assert_eq!(
        sample(&text, "gatehouse_control_gateway_connections"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "gatehouse_control_config_snapshots_sent_total"),
        Some(1.0)
    );
    let now = gatehouse_control::store::Timestamp::now().millis();
    let batch = gatehouse_protocol::telemetry::TelemetryBatch {
        batch_id: uuid::Uuid::new_v4().to_string(),
        node_id: "test-node".into(),
        logs: (0..3)
            .map(|i| gatehouse_protocol::telemetry::LogRecord {
                id: uuid::Uuid::new_v4().to_string(),
                request_id: uuid::Uuid::new_v4().to_string(),
                method: "GET".into(),
                path: "/metered".into(),
                route_id: None,
                service_id: None,
                consumer_id: None,
                status_code: 200,
                latency_ms: 1.0,
                client_ip: "127.0.0.1".into(),
                bytes_in: 0,
                bytes_out: 0,
                at_ms: now - 2_000 + i,
            })
            .collect(),
        ..Default::default()
    };
    let frame = serde_json::to_string(&NodeMessage::Telemetry(batch)).expect("json");
    node.send(Message::text(frame)).await.expect("sent");
    match next(&mut node).await {
        ControlMessage::Ack { .. } => {}
        other => panic!("expected an ack, got {other:?}"),
    }
    let text = metrics().await;
    assert_eq!(
        sample(
            &text,
            r#"gatehouse_control_telemetry_batches_total{outcome="stored"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"gatehouse_control_telemetry_rows_total{kind="logs"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "gatehouse_control_telemetry_lag_seconds_count"),
        Some(1.0)
    );
    // Two seconds old when stored: not in the 1 s bucket, in the 5 s one.
    assert_eq!(
        sample(
            &text,
            r#"gatehouse_control_telemetry_lag_seconds_bucket{le="1"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"gatehouse_control_telemetry_lag_seconds_bucket{le="5"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "gatehouse_control_telemetry_batches_in_flight"),
        Some(0.0)
    );
    node.close(None).await.ok();
    drop(node);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(&metrics().await, "gatehouse_control_gateway_connections") != Some(0.0) {
        assert!(Instant::now() < deadline, "the node never counted as gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.finish().await;
}

async fn deltas_carry_every_kind_of_change(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("deltas").await;
    let mut node = dial_as(&h.base, &t.gateway_key, None, true).await;
    // A node that names no config gets the whole of it.
    let mut config = snapshot(&mut node).await;

    let service = h.service(&t, "users").await;
    follow(&h, &t, &mut node, &mut config).await;
    h.patch(
        &t.path(&format!("/services/{service}")),
        &t.token,
        json!({ "timeoutMs": 1234 }),
    )
    .await
    .expect(StatusCode::OK);
    follow(&h, &t, &mut node, &mut config).await;
    let route = h.route(&t, &service, "/users/:id").await;
    follow(&h, &t, &mut node, &mut config).await;
    h.patch(
        &t.path(&format!("/routes/{route}")),
        &t.token,
        json!({ "enabled": false }),
    )
    .await
    .expect(StatusCode::OK);
    follow(&h, &t, &mut node, &mut config).await;
    let consumer = h.consumer(&t, "app").await;
    follow(&h, &t, &mut node, &mut config).await;
    h.patch(
        &t.path(&format!("/consumers/{consumer}")),
        &t.token,
        json!({ "rateLimitTier": "pro" }),
    )
    .await
    .expect(StatusCode::OK);
    follow(&h, &t, &mut node, &mut config).await;
    let tiers = json!({
        "tiers": [{ "name": "free", "requestsPerMinute": 60 }, { "name": "pro", "requestsPerMinute": 600 }],
        "anonymousRequestsPerMinute": 5,
    });
    h.call(
        Method::PUT,
        &t.path("/rate-limit-tiers"),
        Some(&t.token),
        Some(tiers),
    )
    .await
    .expect(StatusCode::OK);
    follow(&h, &t, &mut node, &mut config).await;
    assert_eq!(config.rate_limits.anonymous_per_minute, Some(5));
    h.delete(&t.path(&format!("/consumers/{consumer}")), &t.token)
        .await
        .expect(StatusCode::NO_CONTENT);
    follow(&h, &t, &mut node, &mut config).await;
    assert!(
        config.consumers.is_empty(),
        "a revoked consumer leaves the node's config"
    );
    h.delete(&t.path(&format!("/routes/{route}")), &t.token)
        .await
        .expect(StatusCode::NO_CONTENT);
    follow(&h, &t, &mut node, &mut config).await;
    h.delete(&t.path(&format!("/services/{service}")), &t.token)
        .await
        .expect(StatusCode::NO_CONTENT);
    follow(&h, &t, &mut node, &mut config).await;
    assert!(config.services.is_empty() && config.routes.is_empty());

    // The config document: many changes in one write, one delta.
    let document = json!({
        "services": [{ "name": "billing", "targetUrl": "http://10.0.0.2:8080" }],
        "routes": [
            { "method": "GET", "pathPattern": "/bills/*", "service": "billing", "authRequired": true },
            { "method": "POST", "pathPattern": "/bills", "service": "billing", "authRequired": false },
        ],
        "consumers": [{ "name": "alice", "rateLimitTier": "pro" }, { "name": "bob" }],
        "rateLimits": {
            "tiers": [{ "name": "free", "requestsPerMinute": 60 }, { "name": "pro", "requestsPerMinute": 600 }],
            "anonymousRequestsPerMinute": null,
        },
    });
    h.call(
        Method::PUT,
        &t.path("/config"),
        Some(&t.token),
        Some(document),
    )
    .await
    .expect(StatusCode::OK);
    follow(&h, &t, &mut node, &mut config).await;
    assert_eq!(
        (
            config.services.len(),
            config.routes.len(),
            config.consumers.len()
        ),
        (1, 2, 2)
    );
    h.finish().await;
}

async fn a_node_reconnecting_is_sent_what_changed_since_its_config(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("reconnect").await;
    let service = h.service(&t, "users").await;
    let mut old = truth(&h, &t).await;
    h.route(&t, &service, "/a").await;
    h.consumer(&t, "app").await;

    // A config of this database's history, two changes back: what changed since.
    let stale = old.identity();
    let mut node = dial_as(&h.base, &t.gateway_key, Some(stale.clone()), true).await;
    follow(&h, &t, &mut node, &mut old).await;
    // The node cannot apply a delta after all: it asks, and gets the whole config.
    node.send(Message::text(encode(&NodeMessage::Resync)))
        .await
        .expect("sent");
    let mut whole = snapshot(&mut node).await;
    assert_eq!(by_id(whole.clone()), by_id(truth(&h, &t).await));
    // Asked again at once, it is not sent again (a whole config is the
    // dearest read): the next message is the next change's delta.
    node.send(Message::text(encode(&NodeMessage::Resync)))
        .await
        .expect("sent");
    h.route(&t, &service, "/c").await;
    follow(&h, &t, &mut node, &mut whole).await;
    drop(node);

    // The same version of another revision (a config from before a
    // restore), a newer one, another tenant's: the whole config.
    let current = truth(&h, &t).await.identity();
    let other = h.register("other").await;
    for have in [
        ConfigIdentity {
            revision: "restored".into(),
            ..current.clone()
        },
        ConfigIdentity {
            version: current.version + 5,
            ..current.clone()
        },
        ConfigIdentity {
            tenant_id: other.id.clone(),
            ..current.clone()
        },
    ] {
        let mut node = dial_as(&h.base, &t.gateway_key, Some(have.clone()), true).await;
        assert_eq!(
            snapshot(&mut node).await.identity(),
            current,
            "from {have:?}"
        );
    }
    // A node that does not take deltas is sent snapshots, as before.
    let mut node = dial_as(&h.base, &t.gateway_key, Some(stale), false).await;
    assert_eq!(snapshot(&mut node).await.identity(), current);
    h.route(&t, &service, "/b").await;
    assert_eq!(snapshot(&mut node).await.routes.len(), 3);
    h.finish().await;
}

fn encode(message: &NodeMessage) -> String {
    serde_json::to_string(message).expect("json")
}
