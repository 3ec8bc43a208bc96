//! `gatehouse dev`: the control plane on SQLite with a dev tenant made on
//! first start. Its credentials are kept in the data dir and printed at every
//! start, with a fresh token, so a newcomer can use the API with curl at once.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_control::config::write_private;
use gatehouse_control::store::Store;
use gatehouse_control::{Control, ControlArgs, accounts, server};
use rand::RngCore;
use serde::{Deserialize, Serialize};

const DEV_EMAIL: &str = "dev@gatehouse.localhost";

/// What `gatehouse dev` keeps about its tenant between starts.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DevTenant {
    tenant_id: String,
    email: String,
    password: String,
    gateway_key: String,
}

pub async fn run(args: ControlArgs) -> anyhow::Result<()> {
    let control = Control::start(&args).await?;
    let tenant = ensure_dev_tenant(
        control.state.store(),
        &args.data_dir.join("dev-tenant.json"),
    )
    .await?;
    let token = control
        .state
        .jwt()
        .issue(&tenant.tenant_id)
        .context("signing the dev token")?;
    let base = format!("http://{}", control.addr);
    println!(
        "\nGatehouse dev is up.\n\
         \n  control plane  {base}   (OpenAPI: {base}/api/openapi.json)\
         \n  tenant id      {}\
         \n  email          {}\
         \n  password       {}\
         \n  gateway key    {}\
         \n  token          {token}\
         \n\nTry:\n  curl -H 'Authorization: Bearer {token}' {base}/api/tenants/{}/services\n",
        tenant.tenant_id, tenant.email, tenant.password, tenant.gateway_key, tenant.tenant_id,
    );
    server::shutdown_signal().await;
    control.stop().await
}

/// Reads the dev tenant's credentials, or creates the tenant and keeps them.
async fn ensure_dev_tenant(store: &Store, path: &Path) -> anyhow::Result<DevTenant> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let tenant: DevTenant = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a dev tenant file; delete it to start over",
                path.display()
            )
        })?;
        let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM tenants WHERE id = $1")
            .bind(&tenant.tenant_id)
            .fetch_optional(store.pool())
            .await?;
        if exists.is_some() {
            return Ok(tenant);
        }
        // The database was reset but the file stayed: make the tenant anew.
        tracing::warn!(path = %path.display(), "dev tenant missing from the database; creating it again");
    }
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    let password = URL_SAFE_NO_PAD.encode(bytes);
    let created = accounts::create_tenant(store, "Dev tenant", DEV_EMAIL, &password)
        .await
        .map_err(|err| anyhow::anyhow!("creating the dev tenant: {err}"))?;
    let tenant = DevTenant {
        tenant_id: created.tenant_id,
        email: DEV_EMAIL.to_owned(),
        password,
        gateway_key: created.gateway_key,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    write_private(path, serde_json::to_string_pretty(&tenant)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(tenant)
}
