//! In-process fan-out of config versions: one watch channel per tenant, so a
//! burst of changes wakes each connected node once with the newest version.
//! Changes committed by other control-plane replicas arrive through
//! PostgreSQL `LISTEN/NOTIFY` and are published here too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Per-tenant config version channels.
#[derive(Debug, Clone, Default)]
pub struct ConfigHub {
    tenants: Arc<Mutex<HashMap<String, watch::Sender<i64>>>>,
}

impl ConfigHub {
    /// Announces that `tenant_id`'s config reached `version`. Versions only
    /// go forward; an older one (a late notification) is ignored.
    pub fn publish(&self, tenant_id: &str, version: i64) {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        match tenants.get(tenant_id) {
            Some(sender) => {
                sender.send_if_modified(|current| {
                    let newer = version > *current;
                    if newer {
                        *current = version;
                    }
                    newer
                });
            }
            None => {
                tenants.insert(tenant_id.to_owned(), watch::channel(version).0);
            }
        }
    }

    /// A receiver that wakes when `tenant_id`'s version moves past `known`.
    pub fn subscribe(&self, tenant_id: &str, known: i64) -> watch::Receiver<i64> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let sender = tenants
            .entry(tenant_id.to_owned())
            .or_insert_with(|| watch::channel(known).0);
        sender.send_if_modified(|current| {
            let newer = known > *current;
            if newer {
                *current = known;
            }
            newer
        });
        sender.subscribe()
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
    async fn subscribers_see_only_newer_versions() {
        let hub = ConfigHub::default();
        let mut rx = hub.subscribe("t", 3);
        hub.publish("t", 2);
        assert!(!rx.has_changed().expect("open"));
        hub.publish("t", 5);
        rx.changed().await.expect("woken");
        assert_eq!(*rx.borrow_and_update(), 5);
        hub.publish("other", 9);
        assert!(!rx.has_changed().expect("open"));
        drop(rx);
        hub.prune();
        assert!(hub.tenants.lock().expect("lock").is_empty());
    }
}
