//! A config compiled for the hot path: the route table, the key index and
//! the parsed upstreams of one version. Built off the hot path, then swapped
//! in whole: compiled from a snapshot, or patched from the previous config
//! by a delta, which keeps each of the three parts the delta does not touch
//! (a new route leaves the key index of 100,000 consumers as it was; a new
//! consumer, the route table) and patches a few consumers into a copy of
//! the key index (see `KeyIndex::patched`).

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_protocol::{
    BaseMismatch, ConfigDelta, ConfigIdentity, ConfigSnapshot, ServiceConfig,
};
use serde::Serialize;

use crate::keys::KeyIndex;
use crate::memory::ReleaseOnDrop;
use crate::routing::RouteTable;
use crate::upstream::Upstream;

/// Everything a request needs, at one config version.
#[derive(Debug)]
pub struct CompiledConfig {
    pub tenant_id: Arc<str>,
    pub version: i64,
    /// With the tenant and version, names the config (see
    /// [`ConfigIdentity`]).
    pub revision: Arc<str>,
    pub routes: Arc<RouteTable>,
    pub keys: Arc<KeyIndex>,
    /// Live services by id; a route whose service is absent answers 503.
    pub upstreams: HashMap<String, Arc<Upstream>>,
    /// What this was compiled from, but the consumers (the key index holds
    /// them): what a delta patches, and where the plugins the routes attach
    /// are named.
    pub source: Arc<ConfigSnapshot>,
    /// Set when the node serves it (see `memory`); last, so that it drops
    /// after the parts above.
    pub released: Option<ReleaseOnDrop>,
}

impl CompiledConfig {
    /// Compiles a snapshot (blocking: it resolves upstream hosts). What
    /// cannot be served (a route or service the control plane should have
    /// refused) is logged and left out.
    pub fn compile(snapshot: &ConfigSnapshot) -> Self {
        // Field by field: the consumers (100,000 of them, say) are not copied.
        let source = ConfigSnapshot {
            tenant_id: snapshot.tenant_id.clone(),
            version: snapshot.version,
            revision: snapshot.revision.clone(),
            services: snapshot.services.clone(),
            routes: snapshot.routes.clone(),
            consumers: Vec::new(),
            rate_limits: snapshot.rate_limits.clone(),
        };
        Self {
            tenant_id: Arc::from(snapshot.tenant_id.as_str()),
            version: snapshot.version,
            revision: Arc::from(snapshot.revision.as_str()),
            routes: Arc::new(route_table(&source)),
            keys: Arc::new(KeyIndex::build(&snapshot.consumers)),
            upstreams: snapshot.services.iter().filter_map(upstream).collect(),
            source: Arc::new(source),
            released: None,
        }
    }

    /// This config with `delta` applied (blocking, as [`compile`](Self::compile)),
    /// when it is the delta's base. The route table is rebuilt only when
    /// routes or rate limits changed, the key index only when consumers
    /// did, and only changed services are parsed again.
    pub fn patch(&self, mut delta: ConfigDelta) -> Result<Self, BaseMismatch> {
        let consumers = std::mem::take(&mut delta.consumers);
        let services = delta.services.clone();
        let routes_changed =
            !delta.routes.is_empty() || delta.rate_limits != self.source.rate_limits;
        // The source names this config: applying checks the delta's base.
        let mut source = ConfigSnapshot::clone(&self.source);
        source.apply(delta)?;
        let mut upstreams = self.upstreams.clone();
        for id in &services.removed {
            upstreams.remove(id);
        }
        for service in &services.upserted {
            upstreams.remove(&service.id);
            upstreams.extend(upstream(service));
        }
        Ok(Self {
            tenant_id: Arc::clone(&self.tenant_id),
            version: source.version,
            revision: Arc::from(source.revision.as_str()),
            routes: if routes_changed {
                Arc::new(route_table(&source))
            } else {
                Arc::clone(&self.routes)
            },
            keys: if consumers.is_empty() {
                Arc::clone(&self.keys)
            } else {
                Arc::new(self.keys.patched(&consumers))
            },
            upstreams,
            source: Arc::new(source),
            released: None,
        })
    }

    /// Which config this is.
    pub fn identity(&self) -> ConfigIdentity {
        ConfigIdentity {
            tenant_id: self.tenant_id.to_string(),
            version: self.version,
            revision: self.revision.to_string(),
        }
    }

    /// This config as a snapshot to save, written out as it is encoded
    /// (the consumers straight from the key index, never all in memory as
    /// snapshot entries at once).
    pub fn as_snapshot(&self) -> impl Serialize + '_ {
        SavedSnapshot {
            tenant_id: &self.source.tenant_id,
            version: self.version,
            revision: &self.source.revision,
            services: &self.source.services,
            routes: &self.source.routes,
            consumers: SavedConsumers(&self.keys),
            rate_limits: &self.source.rate_limits,
        }
    }
}

fn route_table(source: &ConfigSnapshot) -> RouteTable {
    let (routes, errors) = RouteTable::build(&source.routes, &source.rate_limits);
    for err in errors {
        tracing::warn!(error = %err, "route left out of the table");
    }
    routes
}

/// A service's upstream, its host resolved; `None` (logged) when it cannot
/// be served.
fn upstream(service: &ServiceConfig) -> Option<(String, Arc<Upstream>)> {
    match Upstream::parse(service) {
        Ok(upstream) => {
            upstream.resolve();
            Some((service.id.clone(), Arc::new(upstream)))
        }
        Err(err) => {
            tracing::warn!(error = %err, "service left out");
            None
        }
    }
}

/// Encodes as a [`ConfigSnapshot`] does.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SavedSnapshot<'a> {
    tenant_id: &'a str,
    version: i64,
    revision: &'a str,
    services: &'a [ServiceConfig],
    routes: &'a [gatehouse_protocol::RouteConfig],
    consumers: SavedConsumers<'a>,
    rate_limits: &'a gatehouse_protocol::RateLimits,
}

struct SavedConsumers<'a>(&'a KeyIndex);

impl Serialize for SavedConsumers<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.configs())
    }
}

#[cfg(test)]
mod tests {
    use gatehouse_protocol::{Changes, ConsumerConfig, RateLimits, RouteConfig};

    use super::*;

    fn service(id: &str, port: u16) -> ServiceConfig {
        ServiceConfig {
            id: id.into(),
            target_url: format!("http://127.0.0.1:{port}"),
            health_check_path: None,
            timeout_ms: 1000,
        }
    }

    fn route(id: &str, path: &str, service: &str) -> RouteConfig {
        RouteConfig {
            id: id.into(),
            method: "GET".into(),
            path_pattern: path.into(),
            service_id: service.into(),
            auth_required: true,
            rate_limit_override: None,
            enabled: true,
            plugins: vec![],
        }
    }

    fn consumer(id: &str) -> ConsumerConfig {
        ConsumerConfig {
            id: id.into(),
            api_key_hash: format!("{:0>64}", id),
            rate_limit_tier: "free".into(),
        }
    }

    fn snapshot() -> ConfigSnapshot {
        ConfigSnapshot {
            tenant_id: "t1".into(),
            version: 1,
            revision: "r1".into(),
            services: vec![service("s1", 1001), service("s2", 1002)],
            routes: vec![route("r1", "/a", "s1"), route("r2", "/b", "s2")],
            consumers: vec![consumer("a1"), consumer("b2")],
            rate_limits: RateLimits::default(),
        }
    }

    fn delta(base: &CompiledConfig) -> ConfigDelta {
        ConfigDelta {
            base: base.identity(),
            version: base.version + 1,
            revision: format!("r{}", base.version + 1),
            services: Changes::default(),
            routes: Changes::default(),
            consumers: Changes::default(),
            rate_limits: RateLimits::default(),
        }
    }

    #[test]
    fn a_patch_rebuilds_only_what_the_delta_touches() {
        let old = CompiledConfig::compile(&snapshot());
        let new_route = ConfigDelta {
            routes: Changes {
                upserted: vec![route("r3", "/c", "s1")],
                removed: vec!["r2".into()],
            },
            ..delta(&old)
        };
        let patched = old.patch(new_route).expect("applies");
        assert_eq!(patched.version, 2);
        assert!(patched.routes.lookup("GET", "/c").is_some());
        assert!(patched.routes.lookup("GET", "/b").is_none());
        assert!(
            Arc::ptr_eq(&patched.keys, &old.keys),
            "the key index is kept"
        );
        assert!(Arc::ptr_eq(&patched.upstreams["s2"], &old.upstreams["s2"]));

        let new_consumer_and_service = ConfigDelta {
            services: Changes {
                upserted: vec![service("s2", 2002)],
                removed: vec!["s1".into()],
            },
            consumers: Changes {
                upserted: vec![consumer("c3")],
                removed: vec!["a1".into()],
            },
            ..delta(&patched)
        };
        let again = patched.patch(new_consumer_and_service).expect("applies");
        assert!(
            Arc::ptr_eq(&again.routes, &patched.routes),
            "the route table is kept"
        );
        assert!(!again.upstreams.contains_key("s1"));
        assert!(!Arc::ptr_eq(
            &again.upstreams["s2"],
            &patched.upstreams["s2"]
        ));
        assert_eq!(again.keys.len(), 2);
        assert!(again.keys.by_id("c3").is_some() && again.keys.by_id("a1").is_none());

        // Patched or compiled from the same config, the result is one.
        let saved: ConfigSnapshot =
            serde_json::from_value(serde_json::to_value(again.as_snapshot()).expect("encodes"))
                .expect("a snapshot");
        let compiled = CompiledConfig::compile(&saved);
        assert_eq!(compiled.identity(), again.identity());
        assert_eq!(compiled.source, again.source);
        assert_eq!(compiled.keys.len(), again.keys.len());
        assert_eq!(saved.routes.len(), 2);
        assert_eq!(saved.services, [service("s2", 2002)]);
    }

    #[test]
    fn a_delta_from_another_config_is_refused() {
        let old = CompiledConfig::compile(&snapshot());
        let stale = ConfigDelta {
            base: ConfigIdentity {
                revision: "before-a-restore".into(),
                ..old.identity()
            },
            ..delta(&old)
        };
        let refused = old.patch(stale).expect_err("refused");
        assert_eq!(refused.config, old.identity());
    }
}
