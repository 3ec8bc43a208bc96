//! Config changes: every write to a tenant's routes, services, consumers,
//! plugins on routes, rate limits or gateway key goes through a
//! [`ConfigWrite`], whose commit bumps the tenant's config version and
//! revision in the same transaction and records them in `config_history`
//! (on PostgreSQL also queueing the NOTIFY, which the database delivers at
//! commit and never for a rolled-back write). A committed change is thus always announced; an announcement that
//! is lost anyway (a dropped LISTEN connection, a database restart) is
//! repaired by the re-check every connection makes at each heartbeat and
//! every replica makes after its LISTEN connection comes back.

use std::ops::{Deref, DerefMut};

use sqlx::postgres::PgListener;
use sqlx::{Any, Transaction};
use uuid::Uuid;

use crate::state::AppState;
use crate::store::Dialect;

use super::ConfigHub;

/// The PostgreSQL channel replicas announce config changes on (payload
/// `tenant_id:version`).
pub const NOTIFY_CHANNEL: &str = "gatehouse_config";

/// How many versions back `config_history` names: a node further behind is
/// sent the whole config.
pub const HISTORY_KEPT: i64 = 1_000;

/// A transaction that changes `tenant_id`'s config. Use it as the
/// transaction (it derefs to one) and end it with [`commit`](Self::commit);
/// dropped without a commit, it rolls back and announces nothing.
pub struct ConfigWrite {
    tx: Transaction<'static, Any>,
    tenant_id: String,
    hub: ConfigHub,
    dialect: Dialect,
    writes: prometheus::IntCounter,
}

impl ConfigWrite {
    /// Begins a write to `tenant_id`'s config. The tenant's config writes
    /// run one at a time (SQLite's write lock, taken at the start; on
    /// PostgreSQL a lock on the tenant), so what a write checks in its
    /// transaction (a live service, a tier) still holds when it commits,
    /// and the rows it changes are stamped with the version it commits
    /// (the triggers of migration 13, see `snapshot::delta`).
    pub async fn begin(state: &AppState, tenant_id: &str) -> Result<Self, sqlx::Error> {
        let mut tx = state.store().begin_write().await?;
        state
            .store()
            .serialize_on(&mut tx, &format!("config:{tenant_id}"))
            .await?;
        Ok(Self {
            tx,
            tenant_id: tenant_id.to_owned(),
            hub: state.hub().clone(),
            dialect: state.store().dialect(),
            writes: state.instruments().config_writes.clone(),
        })
    }

    /// Bumps the config version and revision, records them in
    /// `config_history`, commits, and wakes this replica's connections of
    /// the tenant (other replicas hear the NOTIFY sent at commit). Returns
    /// the new version.
    pub async fn commit(mut self) -> Result<i64, sqlx::Error> {
        let revision = Uuid::new_v4().simple().to_string();
        let (version,): (i64,) = sqlx::query_as(
            "UPDATE tenants SET config_version = config_version + 1, config_revision = $1 \
             WHERE id = $2 RETURNING config_version",
        )
        .bind(&revision)
        .bind(&self.tenant_id)
        .fetch_one(&mut *self.tx)
        .await?;
        sqlx::query(
            "INSERT INTO config_history (tenant_id, version, revision) VALUES ($1, $2, $3)",
        )
        .bind(&self.tenant_id)
        .bind(version)
        .bind(&revision)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("DELETE FROM config_history WHERE tenant_id = $1 AND version <= $2")
            .bind(&self.tenant_id)
            .bind(version - HISTORY_KEPT)
            .execute(&mut *self.tx)
            .await?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(format!("{}:{version}", self.tenant_id))
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        self.writes.inc();
        self.hub.publish(&self.tenant_id);
        Ok(version)
    }
}

impl Deref for ConfigWrite {
    type Target = Transaction<'static, Any>;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for ConfigWrite {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// On PostgreSQL: relays other replicas' announcements into `hub`, for as
/// long as the process runs. Each time the LISTEN connection is (re)made,
/// every connection on this replica re-checks its tenant's config: what was
/// announced while the listener was away is not lost.
pub fn spawn_listener(database_url: String, hub: ConfigHub) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let err = listen(&database_url, &hub).await;
            tracing::warn!(error = %err, "config notifications lost; reconnecting in 1 s");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    })
}

/// Why the LISTEN connection ended.
#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error("{0}")]
    Database(#[from] sqlx::Error),
    #[error("the connection was lost")]
    Lost,
}

async fn listen(database_url: &str, hub: &ConfigHub) -> ListenError {
    let mut listener = match PgListener::connect(database_url).await {
        Ok(listener) => listener,
        Err(err) => return err.into(),
    };
    if let Err(err) = listener.listen(NOTIFY_CHANNEL).await {
        return err.into();
    }
    // Listening from here on: whatever was committed before is read now.
    hub.publish_all();
    loop {
        // `try_recv`, not `recv`: `recv` reconnects silently, dropping what
        // was announced meanwhile without a word.
        let notification = match listener.try_recv().await {
            Ok(Some(notification)) => notification,
            Ok(None) => return ListenError::Lost,
            Err(err) => return err.into(),
        };
        match notification.payload().rsplit_once(':') {
            Some((tenant, version)) if version.parse::<i64>().is_ok() => hub.publish(tenant),
            _ => tracing::warn!(
                payload = notification.payload(),
                "malformed config notification"
            ),
        }
    }
}
