//! Integrity under concurrency: PATCHes of different fields of one route
//! or service, sent at once, both survive; a plugin deleted while a route
//! attaches it ends either attached (the delete refused) or deleted (the
//! attachment refused), never a route pointing at a deleted plugin; and the
//! schema itself refuses a reference from one tenant's rows to another's.

use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::common::{Db, Harness, Tenant};
use crate::on_both_databases;

on_both_databases!(
    concurrent_patches_of_different_fields_both_survive,
    a_plugin_is_never_deleted_while_attached,
    the_schema_refuses_cross_tenant_references
);

const ROUNDS: i64 = 15;

async fn concurrent_patches_of_different_fields_both_survive(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("patchy").await;
    let service = h.service(&t, "svc").await;
    let route = h.route(&t, &service, "/patched").await;
    let route_path = t.path(&format!("/routes/{route}"));
    let service_path = t.path(&format!("/services/{service}"));
    for round in 1..=ROUNDS {
        let enabled = round % 2 == 0;
        let (a, b, c, d) = tokio::join!(
            h.patch(&route_path, &t.token, json!({ "enabled": enabled })),
            h.patch(&route_path, &t.token, json!({ "rateLimitOverride": round })),
            h.patch(
                &service_path,
                &t.token,
                json!({ "timeoutMs": 1000 + round })
            ),
            h.patch(
                &service_path,
                &t.token,
                json!({ "name": format!("svc-{round}") })
            ),
        );
        for reply in [a, b, c, d] {
            reply.expect(StatusCode::OK);
        }
        let routes = h.get(&t.path("/routes"), &t.token).await;
        let saved = &routes.list()[0];
        assert_eq!(saved["enabled"], enabled, "round {round}: {saved}");
        assert_eq!(saved["rateLimitOverride"], round, "round {round}: {saved}");
        let services = h.get(&t.path("/services"), &t.token).await;
        let saved = &services.list()[0];
        assert_eq!(saved["timeoutMs"], 1000 + round, "round {round}: {saved}");
        assert_eq!(
            saved["name"],
            format!("svc-{round}"),
            "round {round}: {saved}"
        );
    }
    h.finish().await;
}

/// A plugin row as an upload stores it (the bytes are not checked here).
async fn plugin(h: &Harness, t: &Tenant, name: &str) -> String {
    let id = Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO plugins (id, tenant_id, name, version, sha256, size_bytes, wasm, \
         created_at, updated_at) VALUES ($1, $2, $3, '1.0.0', $4, 8, $5, 1, 1)",
    )
    .bind(&id)
    .bind(&t.id)
    .bind(name)
    .bind(format!("{:064x}", Uuid::new_v4().as_u128()))
    .bind(b"\0asm\x0d\0\x01\0".to_vec())
    .execute(h.store().pool())
    .await
    .expect("plugin row");
    id
}

async fn a_plugin_is_never_deleted_while_attached(db: Db) {
    let h = Harness::start(db).await;
    let t = h.register("racy").await;
    let service = h.service(&t, "svc").await;
    let route = h.route(&t, &service, "/guarded").await;
    let route_path = t.path(&format!("/routes/{route}"));
    let (mut attached, mut deleted) = (0, 0);
    for round in 0..ROUNDS {
        let plugin_id = plugin(&h, &t, &format!("guard-{round}")).await;
        let attach = json!({ "plugins": [{ "pluginId": plugin_id, "failurePolicy": "closed" }] });
        let plugin_path = t.path(&format!("/plugins/{plugin_id}"));
        let (attach, delete) = tokio::join!(
            h.patch(&route_path, &t.token, attach),
            h.delete(&plugin_path, &t.token),
        );
        match (attach.status, delete.status) {
            (StatusCode::OK, StatusCode::CONFLICT) => attached += 1,
            (StatusCode::BAD_REQUEST, StatusCode::NO_CONTENT) => deleted += 1,
            (a, d) => panic!(
                "round {round}: attach {a} ({}), delete {d} ({})",
                attach.text, delete.text
            ),
        }
        let (dangling,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM route_plugins rp JOIN routes r ON r.id = rp.route_id \
             JOIN plugins p ON p.id = rp.plugin_id \
             WHERE r.deleted_at IS NULL AND p.deleted_at IS NOT NULL",
        )
        .fetch_one(h.store().pool())
        .await
        .expect("count");
        assert_eq!(
            dangling, 0,
            "round {round}: a route points at a deleted plugin"
        );
        // Detached again for the next round.
        h.patch(&route_path, &t.token, json!({ "plugins": [] }))
            .await
            .expect(StatusCode::OK);
    }
    eprintln!("races: {attached} attached first, {deleted} deleted first");
    h.call(Method::GET, &t.path("/plugins"), Some(&t.token), None)
        .await
        .expect(StatusCode::OK);
    h.finish().await;
}

/// Written straight into the database, past every handler's checks: a
/// route of one tenant on another's service, and a plugin entry tying one
/// tenant's route to another's plugin, are refused by the foreign keys.
async fn the_schema_refuses_cross_tenant_references(db: Db) {
    let h = Harness::start(db).await;
    let alice = h.register("alice").await;
    let bob = h.register("bob").await;
    let alice_service = h.service(&alice, "hers").await;
    let bob_service = h.service(&bob, "his").await;
    let bob_route = h.route(&bob, &bob_service, "/his").await;
    let alice_plugin = plugin(&h, &alice, "hers").await;
    let stolen_service = sqlx::query(
        "INSERT INTO routes (id, tenant_id, method, path_pattern, path_shape, service_id, \
         auth_required, enabled, created_at, updated_at) \
         VALUES ($1, $2, 'GET', '/x', '/x', $3, $4, $4, 1, 1)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(&bob.id)
    .bind(&alice_service)
    .bind(true)
    .execute(h.store().pool())
    .await;
    assert!(
        stolen_service.is_err(),
        "a route on another tenant's service"
    );
    let stolen_plugin = attach_directly(&h, &bob.id, &bob_route, &alice_plugin).await;
    assert!(stolen_plugin.is_err(), "another tenant's plugin on a route");
    // The same rows within one tenant are accepted.
    let own = plugin(&h, &bob, "his").await;
    attach_directly(&h, &bob.id, &bob_route, &own)
        .await
        .expect("a tenant's own plugin on its own route");
    // Were the plugin deleted under the route anyway (the API refuses it),
    // the snapshot still names it: a node fails that route as its policy
    // says, never runs it without the plugin.
    sqlx::query("UPDATE plugins SET deleted_at = 1 WHERE id = $1")
        .bind(&own)
        .execute(h.store().pool())
        .await
        .expect("buried under the route");
    let snapshot = gatehouse_control::gateway::snapshot::build(h.store(), &bob.id)
        .await
        .expect("snapshot");
    let route = snapshot
        .routes
        .iter()
        .find(|r| r.id == bob_route)
        .expect("the route");
    assert_eq!(route.plugins.len(), 1, "the attachment is kept");
    assert_eq!(route.plugins[0].plugin_id, own);
    h.finish().await;
}

/// Writes a route's plugin entry straight into the database, as
/// `tenant_id`'s.
async fn attach_directly(
    h: &Harness,
    tenant_id: &str,
    route_id: &str,
    plugin_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO route_plugins (route_id, position, plugin_id, config, failure_policy, \
         tenant_id) VALUES ($1, 0, $2, '{}', 'closed', $3)",
    )
    .bind(route_id)
    .bind(plugin_id)
    .bind(tenant_id)
    .execute(h.store().pool())
    .await
    .map(|_| ())
}
