//! Storage: one sqlx `AnyPool` over SQLite or PostgreSQL, migrations, and the
//! column types both dialects share.
//!
//! Every query in the control plane is written once, in the SQL both dialects
//! understand (`$1` placeholders, `RETURNING`, window functions). The schema
//! keeps times as epoch milliseconds and ids as UUID text so the same query
//! runs on both; what still differs (migrations, booleans on SQLite) lives in
//! this module and nowhere else.

mod array_literal;
mod live;
mod sql;
mod types;

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use prometheus::{Counter, IntCounter};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Executor};

pub use array_literal::ArrayLiteral;
pub use live::Tombstone;
pub use sql::Sql;
pub use types::{Flag, Timestamp};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// The two database engines Gatehouse runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl FromStr for Dialect {
    type Err = StoreError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

/// Errors opening or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database URL must start with sqlite: or postgres://")]
    UnsupportedUrl,
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot make the database metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Write transactions begun and the time they waited to begin (for a
/// pool connection, and on SQLite for the write lock), as the control
/// plane's metrics show them.
#[derive(Debug, Clone)]
pub struct WriteWaits {
    pub begins: IntCounter,
    pub waited: Counter,
}

impl WriteWaits {
    fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            begins: IntCounter::new("db_write_begins_total", "Write transactions begun")?,
            waited: Counter::new(
                "db_write_wait_seconds_total",
                "Time write transactions waited to begin (a pool connection; on SQLite the write lock)",
            )?,
        })
    }
}

/// The control plane's handle on its database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    waits: WriteWaits,
}

impl Store {
    /// Connects to `url` (creating a SQLite file and its folder if needed) and
    /// applies the embedded migrations of its dialect.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let dialect: Dialect = url.parse()?;
        let url = match dialect {
            Dialect::Sqlite => prepare_sqlite_url(url)?,
            Dialect::Postgres => url.to_owned(),
        };
        let options = AnyPoolOptions::new()
            .max_connections(match dialect {
                Dialect::Sqlite => 8,
                Dialect::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(5));
        let options = match dialect {
            Dialect::Sqlite => options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
                         PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;",
                    )
                    .await?;
                    Ok(())
                })
            }),
            Dialect::Postgres => options,
        };
        let pool = options.connect(&url).await.map_err(StoreError::Connect)?;
        let migrator = match dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        Ok(Self {
            pool,
            dialect,
            waits: WriteWaits::new()?,
        })
    }

    /// The connection pool every query runs on.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which engine this store talks to.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Makes the transactions on `conn` that name `key` run one at a time
    /// from here until they end, for a read-then-write that no row lock
    /// covers (joining an open error event, or opening one when none is
    /// found). PostgreSQL takes a transaction-scoped advisory lock on the
    /// key's hash; SQLite needs nothing, its write transactions already run
    /// one at a time.
    pub async fn serialize_on(
        &self,
        conn: &mut AnyConnection,
        key: &str,
    ) -> Result<(), sqlx::Error> {
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(key)
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`, waiting as the busy timeout allows): a
    /// transaction that reads first and writes later cannot upgrade its lock
    /// while another connection writes, and would fail with "database is
    /// locked" instead of waiting.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        let started = Instant::now();
        let begun = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        };
        self.waits.begins.inc();
        self.waits.waited.inc_by(started.elapsed().as_secs_f64());
        begun
    }

    /// The counts of write transactions and their waits.
    pub fn write_waits(&self) -> &WriteWaits {
        &self.waits
    }

    /// A read-only transaction whose reads all see one moment of the
    /// database: PostgreSQL's REPEATABLE READ; on SQLite every transaction
    /// reads one snapshot (WAL) until it ends.
    pub async fn begin_snapshot(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
            }
            Dialect::Sqlite => self.pool.begin().await,
        }
    }

    /// Answers whether the database is reachable right now.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// SQLite URLs get their folder created and `mode=rwc`, so the database file
/// is made on first start.
fn prepare_sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:"
        && let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
            path: parent.display().to_string(),
            source,
        })?;
    }
    let query = if query.split('&').any(|kv| kv.starts_with("mode=")) {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// True when `err` is a unique-constraint violation (the store's way of
/// saying "already exists").
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_are_made_creatable() {
        let url = prepare_sqlite_url("sqlite://target/x/db.sqlite").expect("url");
        assert_eq!(url, "sqlite://target/x/db.sqlite?mode=rwc");
        let url = prepare_sqlite_url("sqlite::memory:").expect("url");
        assert_eq!(url, "sqlite://:memory:?mode=rwc");
        let url = prepare_sqlite_url("sqlite://a.db?mode=ro").expect("url");
        assert_eq!(url, "sqlite://a.db?mode=ro");
    }

    #[test]
    fn dialect_follows_the_url_scheme() {
        assert_eq!(
            "sqlite://x.db".parse::<Dialect>().ok(),
            Some(Dialect::Sqlite)
        );
        assert_eq!(
            "postgres://u@h/db".parse::<Dialect>().ok(),
            Some(Dialect::Postgres)
        );
        assert!("mysql://x".parse::<Dialect>().is_err());
    }
}
