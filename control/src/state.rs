//! What every handler shares: the store, the token keys, the mailer, the
//! auth throttles and the control plane's metrics.

use std::sync::Arc;

use crate::auth::{JwtKeys, Throttle};
use crate::gateway::ConfigHub;
use crate::instruments::Instruments;
use crate::mail::Mailer;
use crate::store::Store;
use gatehouse_protocol::trusted_proxies::TrustedProxies;

/// Shared application state, cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    jwt: JwtKeys,
    mailer: Mailer,
    throttles: AuthThrottles,
    hub: ConfigHub,
    instruments: Instruments,
    trusted_proxies: TrustedProxies,
    public_url: String,
    replica_id: String,
    closing: tokio::sync::watch::Sender<bool>,
}

/// Failure throttles for the auth endpoints (counted in the database).
#[derive(Debug, Clone)]
pub struct AuthThrottles {
    /// Failed logins per email.
    pub per_email: Throttle,
    /// Failed logins and reset attempts per client IP.
    pub per_ip: Throttle,
}

impl AppState {
    pub fn new(
        store: Store,
        jwt: JwtKeys,
        mailer: Mailer,
        throttles: AuthThrottles,
        trusted_proxies: TrustedProxies,
        public_url: String,
        instruments: Instruments,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                instruments,
                store,
                jwt,
                mailer,
                throttles,
                hub: ConfigHub::default(),
                trusted_proxies,
                public_url,
                replica_id: uuid::Uuid::new_v4().to_string(),
                closing: tokio::sync::watch::channel(false).0,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn jwt(&self) -> &JwtKeys {
        &self.inner.jwt
    }

    pub fn mailer(&self) -> &Mailer {
        &self.inner.mailer
    }

    pub fn throttles(&self) -> &AuthThrottles {
        &self.inner.throttles
    }

    /// Peers whose `X-Forwarded-For` names the client.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.inner.trusted_proxies
    }

    /// Where users reach the console, without a trailing slash (links in
    /// mail start with it).
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// The control plane's own metrics.
    pub fn instruments(&self) -> &Instruments {
        &self.inner.instruments
    }

    /// Fan-out of config versions to connected gateway nodes.
    pub fn hub(&self) -> &ConfigHub {
        &self.inner.hub
    }

    /// Tells long-lived connections (gateway nodes) that the server is
    /// shutting down.
    pub fn begin_closing(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves when the server begins shutting down.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// This process's id among the control-plane replicas.
    pub fn replica_id(&self) -> &str {
        &self.inner.replica_id
    }
}
