//! The rows of tables whose entries are soft-deleted (services, routes) or
//! revoked (consumers): listing the live ones, finding one, burying one.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use super::{Store, Timestamp};

/// A soft-deletable table, with the column that marks a row gone.
#[derive(Debug, Clone, Copy)]
pub enum Tombstone {
    Services,
    Routes,
    Consumers,
    Plugins,
}

impl Tombstone {
    fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            Self::Services => ("services", "deleted_at"),
            Self::Routes => ("routes", "deleted_at"),
            Self::Consumers => ("consumers", "revoked_at"),
            Self::Plugins => ("plugins", "deleted_at"),
        }
    }
}

impl Store {
    /// The tenant's live (not deleted or revoked) rows, oldest first.
    pub async fn live<T>(&self, kind: Tombstone, tenant_id: &str) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let (table, column) = kind.table_and_column();
        let sql = format!(
            "SELECT * FROM {table} WHERE tenant_id = $1 AND {column} IS NULL ORDER BY created_at, id"
        );
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant_id)
            .fetch_all(self.pool())
            .await
    }

    /// The tenant's row `id`, unless it is deleted, revoked or someone else's.
    pub async fn find_live<T>(
        &self,
        kind: Tombstone,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let (table, column) = kind.table_and_column();
        let sql =
            format!("SELECT * FROM {table} WHERE id = $1 AND tenant_id = $2 AND {column} IS NULL");
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(self.pool())
            .await
    }

    /// The ids of the tenant's services, routes or consumers buried by a
    /// config write after version `since` (see `gateway::snapshot`).
    pub async fn buried_since(
        conn: &mut AnyConnection,
        kind: Tombstone,
        tenant_id: &str,
        since: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        let (table, column) = kind.table_and_column();
        let sql = format!(
            "SELECT id FROM {table} WHERE tenant_id = $1 AND {column} IS NOT NULL \
             AND config_version > $2"
        );
        let ids: Vec<(String,)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(since)
            .fetch_all(conn)
            .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Soft-deletes (or revokes) the tenant's row `id`, in the transaction
    /// `conn` is in. `false` when there was no such live row.
    pub async fn bury(
        conn: &mut AnyConnection,
        kind: Tombstone,
        tenant_id: &str,
        id: &str,
    ) -> Result<bool, sqlx::Error> {
        let (table, column) = kind.table_and_column();
        let sql = format!(
            "UPDATE {table} SET {column} = $1, updated_at = $1 \
             WHERE id = $2 AND tenant_id = $3 AND {column} IS NULL"
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(Timestamp::now())
            .bind(id)
            .bind(tenant_id)
            .execute(conn)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
