//! `gatehouse dev`: the control plane on SQLite, one gateway node for a dev
//! tenant made on first start, and an echo upstream for its first routes.
//! The tenant's credentials are kept in the data dir and printed at every
//! start, with a fresh token and the first steps (or what the tenant has),
//! so a newcomer can send traffic through the node at once.

mod banner;
mod echo;

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use gatehouse_control::config::write_private;
use gatehouse_control::store::Store;
use gatehouse_control::{Control, ControlArgs, accounts};
use gatehouse_proxy::ProxyArgs;
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

/// `gatehouse dev`'s flags: the control plane's, and where the node listens.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub control: ControlArgs,

    /// Address the dev node serves traffic on.
    #[arg(long, env = "GATEHOUSE_PROXY_LISTEN", default_value = "127.0.0.1:8080")]
    pub proxy_listen: String,

    /// Address of the dev node's /healthz and /metrics.
    #[arg(long, env = "GATEHOUSE_ADMIN_LISTEN", default_value = "127.0.0.1:9080")]
    pub admin_listen: String,

    /// Where the dev node keeps its config snapshot (its own default, apart
    /// from `gatehouse proxy`'s: a node started on the same machine for
    /// another tenant never finds the dev tenant's state).
    #[arg(
        long,
        env = "GATEHOUSE_STATE_DIR",
        default_value = "gatehouse-data/dev-proxy/"
    )]
    pub state_dir: std::path::PathBuf,

    /// Address of the echo upstream (answers every request with what it
    /// received, as JSON); `off` starts none.
    #[arg(long, env = "GATEHOUSE_ECHO_LISTEN", default_value = "127.0.0.1:9000")]
    pub echo_listen: String,
}

/// Runs the control plane on a thread of its own and the node on this one
/// (pingora starts its own runtimes), until SIGTERM or SIGINT.
pub fn run(args: DevArgs) -> anyhow::Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<(String, String)>>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let dev_args = args.clone();
    let control = std::thread::Builder::new()
        .name("gatehouse-control".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = ready_tx.send(Err(err.into()));
                    return Ok(());
                }
            };
            runtime.block_on(async move {
                let started = start_control(&dev_args).await;
                let control = match started {
                    Ok((control, control_url, gateway_key)) => {
                        let _ = ready_tx.send(Ok((control_url, gateway_key)));
                        control
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return Ok(());
                    }
                };
                let _ = stop_rx.await;
                control.stop().await
            })
        })?;
    let (control_url, gateway_key) = ready_rx.recv()??;
    // The control plane stops after the node, also when the node exits
    // early, once drained.
    let stop_control = move || {
        let _ = stop_tx.send(());
        match control.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "the control plane did not stop cleanly"),
            Err(_) => tracing::error!("the control plane thread panicked"),
        }
    };
    gatehouse_proxy::run_with_exit_hook(
        ProxyArgs::try_parse_from([
            "proxy".to_owned(),
            format!("--control-url={control_url}"),
            format!("--gateway-key={gateway_key}"),
            format!("--listen={}", args.proxy_listen),
            format!("--admin-listen={}", args.admin_listen),
            format!("--state-dir={}", args.state_dir.display()),
        ])?,
        stop_control,
    )
}

/// Starts the control plane and the echo upstream, makes sure the dev
/// tenant exists and prints how to use it. Returns the control plane, its
/// URL and the gateway key.
async fn start_control(dev: &DevArgs) -> anyhow::Result<(Control, String, String)> {
    let echo = match dev.echo_listen.as_str() {
        "off" => None,
        addr => Some(echo::start(addr).await?),
    };
    let args = &dev.control;
    let control = Control::start(args).await?;
    let tenant = ensure_dev_tenant(
        control.state.store(),
        &args.data_dir.join("dev-tenant.json"),
    )
    .await?;
    let token = accounts::issue_token(&control.state, &tenant.tenant_id)
        .await
        .context("signing the dev token")?;
    let existing = banner::Existing::of(control.state.store(), &tenant.tenant_id)
        .await
        .context("reading what the dev tenant has")?;
    let base = format!("http://{}", control.addr);
    let addresses = banner::Addresses {
        control: base.clone(),
        node: node_url(&dev.proxy_listen),
        admin: format!("http://{}", dev.admin_listen),
        echo: echo.map(|addr| format!("http://{addr}")),
    };
    let credentials = banner::Credentials {
        tenant_id: &tenant.tenant_id,
        email: &tenant.email,
        password: &tenant.password,
        gateway_key: &tenant.gateway_key,
        token: &token,
    };
    print!("{}", banner::render(&addresses, &credentials, &existing));
    Ok((control, base, tenant.gateway_key))
}

/// The node's URL as the banner gives it: a port 0 is only known once the
/// node listens, which its `gateway node starting` log line says.
fn node_url(listen: &str) -> String {
    if listen.ends_with(":0") {
        "<the listen= address of the `gateway node starting` log line>".to_owned()
    } else {
        format!("http://{listen}")
    }
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
