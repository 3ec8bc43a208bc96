//! In-process wake-ups for connected nodes: one watch channel per tenant,
//! so a burst of changes wakes each of the tenant's connections once. A
//! wake-up carries no version: the connection reads the tenant's current
//! config identity from the database and pushes a snapshot when it differs
//! from what it last sent, so a late, repeated or out-of-order announcement
//! costs one small read and can never send a node backwards by mistake.
//! Changes committed by other control-plane replicas arrive through
//! PostgreSQL `LISTEN/NOTIFY` and wake the same channels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Per-tenant wake-up channels.
#[derive(Debug, Clone, Default)]
pub struct ConfigHub {
    tenants: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl ConfigHub {
    /// Wakes `tenant_id`'s connections: its config may have changed.
    pub fn publish(&self, tenant_id: &str) {
        let tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = tenants.get(tenant_id) {
            sender.send_modify(|wakes| *wakes = wakes.wrapping_add(1));
        }
    }

    /// Wakes every connection on this replica (after announcements may have
    /// been lost, as when the LISTEN connection was down).
    pub fn publish_all(&self) {
        let tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        for sender in tenants.values() {
            sender.send_modify(|wakes| *wakes = wakes.wrapping_add(1));
        }
    }

    /// A receiver woken at every later [`publish`](Self::publish) for
    /// `tenant_id`.
    pub fn subscribe(&self, tenant_id: &str) -> watch::Receiver<u64> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants
            .entry(tenant_id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Forgets tenants nobody listens to (called when a node disconnects).
    pub fn prune(&self) {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.retain(|_, sender| sender.receiver_count() > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_are_woken_by_their_tenant_and_by_all() {
        let hub = ConfigHub::default();
        let mut rx = hub.subscribe("t");
        hub.publish("other");
        assert!(!rx.has_changed().expect("open"));
        hub.publish("t");
        hub.publish("t");
        rx.changed().await.expect("woken");
        rx.borrow_and_update();
        assert!(!rx.has_changed().expect("open"), "a burst wakes once");
        hub.publish_all();
        rx.changed().await.expect("woken by all");
        drop(rx);
        hub.prune();
        assert!(hub.tenants.lock().expect("lock").is_empty());
    }
}
