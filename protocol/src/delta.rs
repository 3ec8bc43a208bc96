//! What changed between two configs of one tenant. The control plane sends
//! a [`ConfigDelta`] instead of the whole snapshot when the node serves a
//! config the delta starts from (its `base`): with 100,000 consumers a
//! snapshot is 17 MB to read, send and compile, a new route a few hundred
//! bytes. A node applies a delta only to exactly its base; anything else
//! (another revision, a gap) it refuses and asks for the whole config.
//!
//! Entities are whole: a changed route is sent with all its fields and
//! plugins, replacing the one with its id; a deleted one is named by id.
//! The rate limits are few and always sent.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::config::{
    ConfigIdentity, ConfigSnapshot, ConsumerConfig, RateLimits, RouteConfig, ServiceConfig,
};

/// The changes that turn the config named `base` into the config named
/// `base.tenant_id`, `version`, `revision`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDelta {
    /// The config this delta applies to.
    pub base: ConfigIdentity,
    pub version: i64,
    pub revision: String,
    #[serde(default)]
    pub services: Changes<ServiceConfig>,
    #[serde(default)]
    pub routes: Changes<RouteConfig>,
    #[serde(default)]
    pub consumers: Changes<ConsumerConfig>,
    /// The rate limits of the new config, whole (required: a delta
    /// without them is refused, never read as no limits).
    pub rate_limits: RateLimits,
}

/// Entities of one kind added or changed (`upserted`, whole) and deleted
/// (`removed`, by id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: Deserialize<'de>"))]
pub struct Changes<T> {
    #[serde(default)]
    pub upserted: Vec<T>,
    #[serde(default)]
    pub removed: Vec<String>,
}

impl<T> Default for Changes<T> {
    fn default() -> Self {
        Self {
            upserted: Vec::new(),
            removed: Vec::new(),
        }
    }
}

impl<T> Changes<T> {
    /// Whether nothing of this kind changed.
    pub fn is_empty(&self) -> bool {
        self.upserted.is_empty() && self.removed.is_empty()
    }
}

/// An entity a delta can name: it has an id.
pub trait Entity {
    fn id(&self) -> &str;
}

impl Entity for ServiceConfig {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Entity for RouteConfig {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Entity for ConsumerConfig {
    fn id(&self) -> &str {
        &self.id
    }
}

/// A delta named a base other than the config it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the delta starts from version {} ({}), the config is version {} ({})",
    .delta.version, .delta.revision, .config.version, .config.revision)]
pub struct BaseMismatch {
    pub delta: ConfigIdentity,
    pub config: ConfigIdentity,
}

impl ConfigDelta {
    /// The config this delta leads to.
    pub fn identity(&self) -> ConfigIdentity {
        ConfigIdentity {
            tenant_id: self.base.tenant_id.clone(),
            version: self.version,
            revision: self.revision.clone(),
        }
    }
}

/// Changes to one kind of entity gathered over several deltas, the later
/// winning, to apply to a list in one pass.
struct Edits<T> {
    /// Id → the entity's new value, or `None` when it was removed.
    by_id: HashMap<String, Option<T>>,
    /// Ids in the order they were first named (new entities go last in it).
    order: Vec<String>,
}

impl<T> Default for Edits<T> {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            order: Vec::new(),
        }
    }
}

impl<T: Entity> Edits<T> {
    fn add(&mut self, changes: Changes<T>) {
        for removed in changes.removed {
            self.set(removed, None);
        }
        for entity in changes.upserted {
            self.set(entity.id().to_owned(), Some(entity));
        }
    }

    fn set(&mut self, id: String, value: Option<T>) {
        if !self.by_id.contains_key(&id) {
            self.order.push(id.clone());
        }
        self.by_id.insert(id, value);
    }

    fn apply_to(mut self, list: &mut Vec<T>) {
        if self.by_id.is_empty() {
            return;
        }
        let old = std::mem::take(list);
        list.reserve(old.len());
        for entity in old {
            match self.by_id.remove(entity.id()) {
                Some(Some(changed)) => list.push(changed),
                Some(None) => {}
                None => list.push(entity),
            }
        }
        for id in self.order {
            if let Some(Some(new)) = self.by_id.remove(&id) {
                list.push(new);
            }
        }
    }
}

impl ConfigSnapshot {
    /// Applies `delta`, which must start from exactly this config.
    pub fn apply(&mut self, delta: ConfigDelta) -> Result<(), BaseMismatch> {
        if delta.base != self.identity() {
            return Err(BaseMismatch {
                delta: delta.base,
                config: self.identity(),
            });
        }
        self.apply_chain([delta]);
        Ok(())
    }

    /// Applies, in one pass over each list, the deltas of `deltas` that
    /// follow on from this config in turn; one that does not start from
    /// the config reached so far (one saved before this config was) is
    /// skipped. Returns how many were applied.
    pub fn apply_chain(&mut self, deltas: impl IntoIterator<Item = ConfigDelta>) -> usize {
        let mut reached = self.identity();
        let mut services = Edits::default();
        let mut routes = Edits::default();
        let mut consumers = Edits::default();
        let mut applied = 0;
        for delta in deltas {
            if delta.base != reached {
                continue;
            }
            reached = delta.identity();
            services.add(delta.services);
            routes.add(delta.routes);
            consumers.add(delta.consumers);
            self.rate_limits = delta.rate_limits;
            applied += 1;
        }
        services.apply_to(&mut self.services);
        routes.apply_to(&mut self.routes);
        consumers.apply_to(&mut self.consumers);
        self.version = reached.version;
        self.revision = reached.revision;
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(version: i64) -> ConfigIdentity {
        ConfigIdentity {
            tenant_id: "t1".into(),
            version,
            revision: format!("r{version}"),
        }
    }

    fn consumer(id: &str, tier: &str) -> ConsumerConfig {
        ConsumerConfig {
            id: id.into(),
            api_key_hash: format!("hash-{id}"),
            rate_limit_tier: tier.into(),
        }
    }

    fn snapshot(version: i64, consumers: Vec<ConsumerConfig>) -> ConfigSnapshot {
        ConfigSnapshot {
            tenant_id: "t1".into(),
            version,
            revision: format!("r{version}"),
            services: vec![],
            routes: vec![],
            consumers,
            rate_limits: RateLimits::default(),
        }
    }

    fn delta(base: i64, consumers: Changes<ConsumerConfig>) -> ConfigDelta {
        ConfigDelta {
            base: identity(base),
            version: base + 1,
            revision: format!("r{}", base + 1),
            services: Changes::default(),
            routes: Changes::default(),
            consumers,
            rate_limits: RateLimits {
                tiers: [("free".to_owned(), Some(base + 1))].into(),
                anonymous_per_minute: None,
            },
        }
    }

    #[test]
    fn a_delta_changes_in_place_appends_new_and_drops_removed() {
        let mut config = snapshot(1, vec![consumer("a", "free"), consumer("b", "free")]);
        let change = delta(
            1,
            Changes {
                upserted: vec![consumer("c", "free"), consumer("a", "gold")],
                removed: vec!["b".into(), "never-there".into()],
            },
        );
        config.apply(change.clone()).expect("applies");
        assert_eq!(config.identity(), change.identity());
        assert_eq!(
            config.consumers,
            [consumer("a", "gold"), consumer("c", "free")]
        );
        assert_eq!(config.rate_limits.tiers["free"], Some(2));
        // Applied again, its base is no longer the config.
        let refused = config.apply(change).expect_err("refused");
        assert_eq!(refused.config, identity(2));
        assert_eq!(refused.delta, identity(1));
    }

    #[test]
    fn a_chain_applies_in_order_and_skips_what_does_not_follow() {
        let mut config = snapshot(2, vec![consumer("a", "free")]);
        let chain = [
            // Saved before the snapshot was: skipped.
            delta(
                1,
                Changes {
                    upserted: vec![consumer("old", "free")],
                    removed: vec![],
                },
            ),
            delta(
                2,
                Changes {
                    upserted: vec![consumer("b", "free")],
                    removed: vec!["a".into()],
                },
            ),
            // Removed, then back: the later change wins.
            delta(
                3,
                Changes {
                    upserted: vec![],
                    removed: vec!["b".into()],
                },
            ),
            delta(
                4,
                Changes {
                    upserted: vec![consumer("b", "gold"), consumer("a", "x")],
                    removed: vec![],
                },
            ),
            // Another history's: skipped.
            ConfigDelta {
                base: ConfigIdentity {
                    revision: "other".into(),
                    ..identity(5)
                },
                ..delta(
                    5,
                    Changes {
                        upserted: vec![consumer("never", "free")],
                        removed: vec![],
                    },
                )
            },
            delta(
                5,
                Changes {
                    upserted: vec![],
                    removed: vec!["a".into()],
                },
            ),
        ];
        assert_eq!(config.apply_chain(chain), 4);
        assert_eq!(config.identity(), identity(6));
        assert_eq!(config.consumers, [consumer("b", "gold")]);
    }

    #[test]
    fn a_delta_round_trips_and_reads_without_the_kinds_it_leaves_out() {
        let change = delta(
            1,
            Changes {
                upserted: vec![consumer("a", "free")],
                removed: vec![],
            },
        );
        let text = serde_json::to_string(&change).expect("encodes");
        assert_eq!(
            serde_json::from_str::<ConfigDelta>(&text).expect("decodes"),
            change
        );
        let bare: ConfigDelta = serde_json::from_str(
            r#"{"base":{"tenantId":"t1","version":1,"revision":"r1"},"version":2,"revision":"r2",
                "rateLimits":{"tiers":{},"anonymousPerMinute":null}}"#,
        )
        .expect("decodes");
        assert!(bare.consumers.is_empty() && bare.routes.is_empty());
        assert_eq!(bare.identity(), identity(2));
        let without_limits =
            r#"{"base":{"tenantId":"t1","version":1,"revision":"r1"},"version":2,"revision":"r2"}"#;
        assert!(serde_json::from_str::<ConfigDelta>(without_limits).is_err());
    }
}
