//! A throwaway PostgreSQL database on the test server, marked with the
//! test process's id so `scripts/test-services.sh` can drop it if the run
//! is killed before it cleans up. Shared by the control plane's API tests
//! and the end-to-end tests (which include this file by path).

use sqlx::Executor;

/// The server PostgreSQL tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("GATEHOUSE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own for one test.
pub struct ThrowawayDb {
    pub name: String,
    /// Its connection URL.
    pub url: String,
}

impl ThrowawayDb {
    pub async fn create() -> Self {
        let name = format!("gh_test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin().await;
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        // scripts/test-services.sh drops a leftover test database only when
        // this mark names a process of its own machine's boot that is gone.
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|id| id.trim().to_owned())
            .unwrap_or_default();
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "COMMENT ON DATABASE {name} IS 'gatehouse-test pid={} boot={boot}'",
                std::process::id()
            )))
            .await
            .expect("mark test database");
        admin.close().await;
        let base = postgres_admin_url();
        let server = base
            .rsplit_once('/')
            .map_or(base.as_str(), |(server, _)| server);
        let url = format!("{server}/{name}");
        Self { name, url }
    }

    /// Drops the database, closing whatever is still connected to it.
    pub async fn remove(self) {
        let admin = admin().await;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .await
            .expect("drop test database");
        admin.close().await;
    }
}

async fn admin() -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&postgres_admin_url())
        .await
        .expect("PostgreSQL must answer at GATEHOUSE_TEST_POSTGRES_URL (make test starts one)")
}
