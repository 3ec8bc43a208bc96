//! Following the control plane: one WebSocket to `/api/gateway/connect`
//! (`ws://`, or `wss://` verified against the system's roots or
//! `--control-ca-file`), authenticated by the tenant's gateway key.
//!
//! The node names the config it serves by its identity (tenant, version,
//! revision) and installs any snapshot whose identity differs: the control
//! plane is the authority, so another tenant's config, or one from before a
//! database restore, is replaced. It takes deltas too, each applied only to
//! exactly the config it starts from (anything else asks for the whole
//! config). What it keeps on disk lives in the
//! tenant's folder of the state dir, found by the gateway key's hash; a key
//! the state dir does not know serves nothing until the control plane names
//! its tenant. Telemetry goes out only once the control plane has answered
//! this key, and only from this tenant's outbox.
//!
//! `session` is one connection; `plugin_fetch` asks for the tenant plugins a
//! config needs; `status` is what `/metrics` shows of the link; `backoff`
//! spaces reconnects.

mod backoff;
mod plugin_fetch;
mod session;
mod status;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use crate::compiled::CompiledConfig;
use crate::live::LiveConfig;
use crate::memory::ConfigThread;
use crate::plugins::Registry;
use crate::plugins::host::PluginStores;
use crate::state_dir::{StateDir, StateError, TenantState};
use crate::telemetry::outbox::Outbox;

pub use backoff::backoff;
pub use session::connect_url;
pub use status::{SyncError, SyncStatus};

/// Where and who the node is.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// `http(s)://host:port` of the control plane.
    pub control_url: String,
    /// The tenant's `gk_...` key.
    pub gateway_key: String,
    /// How this node names itself to the control plane.
    pub node_name: String,
    /// PEM CAs a `https://` control plane is verified against, instead of
    /// the system's roots.
    pub control_ca_file: Option<PathBuf>,
}

/// Telemetry waiting to go out on the link: the outbox, and the signal that
/// a batch was sealed.
#[derive(Debug, Clone)]
pub struct Shipping {
    pub outbox: Arc<Mutex<Outbox>>,
    pub sealed: Arc<Notify>,
}

/// Keeps a node's config in step with the control plane.
#[derive(Debug, Clone)]
pub struct Syncer {
    settings: SyncSettings,
    /// SHA-256 of the gateway key, as the control plane stores it: what
    /// binds a tenant folder of the state dir to this key.
    key_hash: String,
    live: LiveConfig,
    state: StateDir,
    /// The tenant folder this node serves and ships from, once known.
    tenant: Arc<Mutex<Option<TenantState>>>,
    status: Arc<SyncStatus>,
    shipping: Shipping,
    plugins: Option<Arc<Registry>>,
    /// The plugins' stores, pruned to the plugins each config attaches.
    stores: Option<PluginStores>,
    /// Where every config is compiled or patched.
    config_thread: ConfigThread,
}

impl Syncer {
    pub fn new(
        settings: SyncSettings,
        live: LiveConfig,
        state: StateDir,
        shipping: Shipping,
    ) -> Self {
        let key_hash = format!("{:x}", Sha256::digest(settings.gateway_key.as_bytes()));
        Self {
            settings,
            key_hash,
            live,
            state,
            tenant: Arc::default(),
            status: Arc::default(),
            shipping,
            plugins: None,
            stores: None,
            config_thread: ConfigThread::start(),
        }
    }

    /// Also keeps the tenant plugins the config refers to in `registry`.
    pub fn with_plugins(mut self, registry: Arc<Registry>) -> Self {
        self.plugins = Some(registry);
        self
    }

    /// Also drops the stores of plugins a new config no longer attaches.
    pub fn with_plugin_stores(mut self, stores: PluginStores) -> Self {
        self.stores = Some(stores);
        self
    }

    /// The link's status.
    pub fn status(&self) -> Arc<SyncStatus> {
        Arc::clone(&self.status)
    }

    /// The tenant whose folder this node uses, once known.
    pub fn tenant_id(&self) -> Option<String> {
        self.bound().map(|tenant| tenant.tenant_id().to_owned())
    }

    /// Serves the snapshot saved for this gateway key, if there is one,
    /// and binds the outbox to its tenant. Returns its version. Other
    /// tenants' folders are named in the log and left alone.
    pub fn restore(&self) -> Result<Option<i64>, StateError> {
        let bound = self.state.bound_to(&self.key_hash)?;
        let others: Vec<String> = self
            .state
            .tenants()?
            .into_iter()
            .filter(|id| bound.as_ref().is_none_or(|t| t.tenant_id() != id))
            .collect();
        if !others.is_empty() {
            tracing::warn!(
                tenants = ?others,
                state_dir = %self.state.path().display(),
                "the state dir holds other tenants' config and telemetry (other gateway keys): \
                 not served, not shipped"
            );
        }
        if self.state.has_unbound_snapshot() {
            tracing::warn!(
                state_dir = %self.state.path().display(),
                "snapshot.json was saved by an earlier Gatehouse and names no gateway key: \
                 not served; waiting for the control plane"
            );
        }
        if self.state.has_unbound_outbox() {
            tracing::warn!(
                state_dir = %self.state.path().display(),
                "outbox/ holds telemetry an earlier Gatehouse spilled, which names no tenant: \
                 not shipped (move its files into tenants/<tenant-id>/outbox/ to ship them)"
            );
        }
        let Some(tenant) = bound else {
            return Ok(None);
        };
        self.bind(tenant.tenant_id())?;
        let Some(snapshot) = tenant.load_snapshot()? else {
            return Ok(None);
        };
        let compiled = self.config_thread.run_blocking(move || {
            let compiled = CompiledConfig::compile(&snapshot);
            (snapshot, compiled)
        });
        let (snapshot, compiled) = match compiled {
            Ok(done) => done,
            Err(err) => {
                tracing::error!(error = %err, "compiling the saved config failed; waiting for the control plane");
                return Ok(None);
            }
        };
        self.install(compiled);
        if let Some(registry) = &self.plugins {
            // Plugins kept on disk load now; the others are fetched once connected.
            let _ = registry.missing(&snapshot);
        }
        tracing::info!(
            tenant_id = snapshot.tenant_id,
            version = snapshot.version,
            "serving the config saved in the state dir"
        );
        Ok(Some(snapshot.version))
    }

    /// Serves `compiled` from now on: once it is replaced and dropped, the
    /// config thread gives back what it freed.
    fn install(&self, mut compiled: CompiledConfig) -> Arc<CompiledConfig> {
        compiled.released = Some(self.config_thread.release_on_drop());
        self.live.install(compiled)
    }

    /// Follows the control plane until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut attempt: u32 = 0;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let outcome = self.session(&mut attempt, &mut shutdown).await;
            if *shutdown.borrow() {
                return;
            }
            if let Err(err) = outcome {
                self.status.failed(&err);
                if err.key_refused() {
                    tracing::error!("{err}; retrying");
                } else {
                    tracing::warn!(error = %err, "control plane link down; reconnecting");
                }
            }
            let delay = backoff(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn bound(&self) -> Option<TenantState> {
        self.tenant
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Uses `tenant_id`'s folder from now on (the control plane named the
    /// tenant, or this key's folder was found at start): records the key
    /// there and binds the outbox to it.
    fn bind(&self, tenant_id: &str) -> Result<TenantState, StateError> {
        let mut bound = self.tenant.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tenant) = bound.as_ref().filter(|t| t.tenant_id() == tenant_id) {
            return Ok(tenant.clone());
        }
        let tenant = self.state.tenant(tenant_id)?;
        if let Err(err) = tenant.bind_key(&self.key_hash) {
            // Only a start without the control plane needs it.
            tracing::error!(error = %err, "gateway key not recorded in the tenant folder");
        }
        let outbox = self
            .shipping
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bind(tenant.outbox_dir());
        if let Err(err) = outbox {
            tracing::error!(
                error = %err,
                "telemetry outbox not bound to the tenant folder; keeping it in memory"
            );
        }
        if let Some(previous) = bound.as_ref() {
            tracing::warn!(
                previous = previous.tenant_id(),
                tenant_id,
                "the control plane names another tenant for this gateway key; switching folders"
            );
        }
        *bound = Some(tenant.clone());
        Ok(tenant)
    }
}
