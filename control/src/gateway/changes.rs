//! Config versioning: every successful change to a tenant's routes, services
//! or consumers bumps the tenant's config version and wakes its nodes, here
//! and (through PostgreSQL NOTIFY) on every other replica.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use sqlx::postgres::PgListener;

use crate::state::AppState;
use crate::store::{Dialect, Store};

use super::ConfigHub;

/// The PostgreSQL channel replicas announce config versions on.
pub const NOTIFY_CHANNEL: &str = "gatehouse_config";

/// Middleware for the config endpoints: after a successful write, bump the
/// tenant's version and push it to connected nodes.
pub async fn bump_on_change(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let writes = request.method() != Method::GET && request.method() != Method::HEAD;
    let tenant_id = tenant_in_path(request.uri().path());
    let response = next.run(request).await;
    if writes
        && response.status().is_success()
        && let Some(tenant_id) = tenant_id
        && let Err(err) = bump_version(state.store(), state.hub(), &tenant_id).await
    {
        // The change is committed; nodes catch up at the next change
        // or reconnect.
        tracing::error!(error = %err, tenant_id, "config version not bumped");
    }
    response
}

fn tenant_in_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/tenants/")?;
    rest.split('/').next().map(str::to_owned)
}

/// Bumps `tenant_id`'s config version and announces it.
pub async fn bump_version(
    store: &Store,
    hub: &ConfigHub,
    tenant_id: &str,
) -> Result<i64, sqlx::Error> {
    let (version,): (i64,) = sqlx::query_as(
        "UPDATE tenants SET config_version = config_version + 1 WHERE id = $1 \
         RETURNING config_version",
    )
    .bind(tenant_id)
    .fetch_one(store.pool())
    .await?;
    hub.publish(tenant_id, version);
    if store.dialect() == Dialect::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(NOTIFY_CHANNEL)
            .bind(format!("{tenant_id}:{version}"))
            .execute(store.pool())
            .await?;
    }
    Ok(version)
}

/// On PostgreSQL: relays other replicas' announcements into `hub`, for as
/// long as the process runs, reconnecting when the database goes away.
pub fn spawn_listener(database_url: String, hub: ConfigHub) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match listen(&database_url, &hub).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "config notifications lost; reconnecting in 1 s");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    })
}

async fn listen(database_url: &str, hub: &ConfigHub) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect(database_url).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    loop {
        let notification = listener.recv().await?;
        let parsed = notification
            .payload()
            .rsplit_once(':')
            .and_then(|(tenant, version)| Some((tenant, version.parse::<i64>().ok()?)));
        match parsed {
            Some((tenant, version)) => hub.publish(tenant, version),
            None => tracing::warn!(
                payload = notification.payload(),
                "malformed config notification"
            ),
        }
    }
}
