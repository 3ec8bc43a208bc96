//! A config snapshot compiled for the hot path: the route table, the key
//! index and the parsed upstreams of one version. Built off the hot path,
//! then swapped in whole.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_protocol::{ConfigIdentity, ConfigSnapshot};

use crate::keys::KeyIndex;
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
    pub routes: RouteTable,
    pub keys: Arc<KeyIndex>,
    /// Live services by id; a route whose service is absent answers 503.
    pub upstreams: HashMap<String, Arc<Upstream>>,
}

impl CompiledConfig {
    /// Compiles a snapshot (blocking: it resolves upstream hosts). What
    /// cannot be served (a route or service the
    /// control plane should have refused) is logged and left out.
    pub fn compile(snapshot: &ConfigSnapshot) -> Self {
        let (routes, route_errors) = RouteTable::build(&snapshot.routes, &snapshot.rate_limits);
        for err in route_errors {
            tracing::warn!(error = %err, "route left out of the table");
        }
        let upstreams = snapshot
            .services
            .iter()
            .filter_map(|service| match Upstream::parse(service) {
                Ok(upstream) => {
                    upstream.resolve();
                    Some((service.id.clone(), Arc::new(upstream)))
                }
                Err(err) => {
                    tracing::warn!(error = %err, "service left out");
                    None
                }
            })
            .collect();
        Self {
            tenant_id: Arc::from(snapshot.tenant_id.as_str()),
            version: snapshot.version,
            revision: Arc::from(snapshot.revision.as_str()),
            routes,
            keys: Arc::new(KeyIndex::build(&snapshot.consumers)),
            upstreams,
        }
    }

    /// Which config this is.
    pub fn identity(&self) -> ConfigIdentity {
        ConfigIdentity {
            tenant_id: self.tenant_id.to_string(),
            version: self.version,
            revision: self.revision.to_string(),
        }
    }
}
