//! What replacing the live config with a document changes: items to
//! create, update (field by field) and delete, by key. The same plan is
//! what a dry run answers and what [`super::write`] carries out.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::document::ConfigDocument;
use crate::tiers::TierSettings;

/// What happens to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// The kinds of item a document holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    Service,
    Route,
    Consumer,
    RateLimits,
    /// Only in a dry run: a plugin the client will upload before applying.
    Plugin,
}

/// One field's value before and after (`null` where there is none).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FieldChange {
    pub field: String,
    #[schema(value_type = Object)]
    pub from: Value,
    #[schema(value_type = Object)]
    pub to: Value,
}

/// One item's change. A creation lists every field of the new item; a
/// deletion none.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Change {
    pub action: Action,
    pub kind: Kind,
    /// The item's key: a service's or consumer's name, a route's
    /// `METHOD /path/pattern`, a plugin's `name@version`, or `rateLimits`.
    pub key: String,
    pub fields: Vec<FieldChange>,
}

/// The changes from `live` to `desired`, both in key order: rate limits,
/// services, routes, consumers; within each kind deletions, then updates
/// and creations in key order.
pub fn between(live: &ConfigDocument, desired: &ConfigDocument) -> Vec<Change> {
    let mut changes = Vec::new();
    if let (Some(from), Some(to)) = (&live.rate_limits, &desired.rate_limits)
        && from != to
    {
        changes.push(Change {
            action: Action::Update,
            kind: Kind::RateLimits,
            key: "rateLimits".to_owned(),
            fields: fields(&limits_object(from), &limits_object(to)),
        });
    }
    changes.extend(diff(
        Kind::Service,
        live.services.iter().map(|s| (s.name.clone(), as_object(s))),
        desired
            .services
            .iter()
            .map(|s| (s.name.clone(), as_object(s))),
    ));
    changes.extend(diff(
        Kind::Route,
        live.routes.iter().map(|r| (r.key(), as_object(r))),
        desired.routes.iter().map(|r| (r.key(), as_object(r))),
    ));
    changes.extend(diff(
        Kind::Consumer,
        live.consumers
            .iter()
            .map(|c| (c.name.clone(), as_object(c))),
        desired
            .consumers
            .iter()
            .map(|c| (c.name.clone(), as_object(c))),
    ));
    changes
}

fn diff(
    kind: Kind,
    live: impl Iterator<Item = (String, Value)>,
    desired: impl Iterator<Item = (String, Value)>,
) -> Vec<Change> {
    let mut live: HashMap<String, Value> = live.collect();
    let mut kept = Vec::new();
    for (key, to) in desired {
        match live.remove(&key) {
            None => kept.push(Change {
                action: Action::Create,
                kind,
                fields: fields(&Value::Null, &to),
                key,
            }),
            Some(from) if from != to => kept.push(Change {
                action: Action::Update,
                kind,
                fields: fields(&from, &to),
                key,
            }),
            Some(_) => {}
        }
    }
    let mut gone: Vec<Change> = live
        .into_keys()
        .map(|key| Change {
            action: Action::Delete,
            kind,
            key,
            fields: Vec::new(),
        })
        .collect();
    gone.sort_by(|a, b| a.key.cmp(&b.key));
    gone.extend(kept);
    gone
}

/// Rate limits as one field a tier (`tiers.pro`) and the anonymous
/// limit, so that a change names the tiers it touches.
fn limits_object(limits: &TierSettings) -> Value {
    let mut object = serde_json::Map::new();
    for tier in &limits.tiers {
        object.insert(
            format!("tiers.{}", tier.name),
            serde_json::json!({ "requestsPerMinute": tier.requests_per_minute }),
        );
    }
    object.insert(
        "anonymousRequestsPerMinute".to_owned(),
        limits.anonymous_requests_per_minute.into(),
    );
    Value::Object(object)
}

/// An item as its JSON object (the fields a document shows).
fn as_object(item: &impl Serialize) -> Value {
    serde_json::to_value(item).unwrap_or(Value::Null)
}

/// The fields whose values differ between two objects (`Null` for none),
/// in the order of `to` then of fields only `from` has.
fn fields(from: &Value, to: &Value) -> Vec<FieldChange> {
    let empty = serde_json::Map::new();
    let from = from.as_object().unwrap_or(&empty);
    let to = to.as_object().unwrap_or(&empty);
    let mut changed: Vec<FieldChange> = to
        .iter()
        .filter(|(field, value)| from.get(*field) != Some(value))
        .map(|(field, value)| FieldChange {
            field: field.clone(),
            from: from.get(field).cloned().unwrap_or(Value::Null),
            to: value.clone(),
        })
        .collect();
    changed.extend(
        from.iter()
            .filter(|(field, _)| !to.contains_key(*field))
            .map(|(field, value)| FieldChange {
                field: field.clone(),
                from: value.clone(),
                to: Value::Null,
            }),
    );
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declarative::document::{ConsumerItem, ServiceItem};

    fn service(name: &str, url: &str) -> ServiceItem {
        ServiceItem {
            name: name.into(),
            target_url: url.into(),
            health_check_path: None,
            timeout_ms: 30_000,
        }
    }

    #[test]
    fn the_same_document_changes_nothing() {
        let doc = ConfigDocument {
            services: vec![service("a", "http://h/")],
            consumers: vec![ConsumerItem {
                name: "c".into(),
                rate_limit_tier: "free".into(),
            }],
            ..Default::default()
        };
        assert!(between(&doc, &doc.clone()).is_empty());
    }

    #[test]
    fn changes_are_field_by_field() {
        let mut with_check = service("b", "http://h/");
        with_check.health_check_path = Some("/health".into());
        let live = ConfigDocument {
            services: vec![service("a", "http://h/"), with_check],
            ..Default::default()
        };
        let desired = ConfigDocument {
            services: vec![service("b", "http://other/"), service("c", "http://h/")],
            ..Default::default()
        };
        let changes = between(&live, &desired);
        let summary: Vec<(Action, &str)> =
            changes.iter().map(|c| (c.action, c.key.as_str())).collect();
        assert_eq!(
            summary,
            [
                (Action::Delete, "a"),
                (Action::Update, "b"),
                (Action::Create, "c")
            ]
        );
        assert_eq!(
            changes[1].fields,
            [
                FieldChange {
                    field: "targetUrl".into(),
                    from: "http://h/".into(),
                    to: "http://other/".into(),
                },
                FieldChange {
                    field: "healthCheckPath".into(),
                    from: "/health".into(),
                    to: Value::Null,
                },
            ]
        );
        assert_eq!(changes[2].fields.len(), 3, "a creation lists its fields");
    }

    #[test]
    fn rate_limits_change_tier_by_tier() {
        let limits = |tiers: &[(&str, Option<i64>)], anonymous| {
            Some(TierSettings {
                tiers: tiers
                    .iter()
                    .map(|(name, limit)| crate::tiers::Tier {
                        name: (*name).into(),
                        requests_per_minute: *limit,
                    })
                    .collect(),
                anonymous_requests_per_minute: anonymous,
            })
        };
        let live = ConfigDocument {
            rate_limits: limits(&[("free", Some(60)), ("gold", None)], Some(60)),
            ..Default::default()
        };
        let desired = ConfigDocument {
            rate_limits: limits(&[("free", Some(100)), ("gold", None)], Some(60)),
            ..Default::default()
        };
        let changes = between(&live, &desired);
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0].fields,
            [FieldChange {
                field: "tiers.free".into(),
                from: serde_json::json!({ "requestsPerMinute": 60 }),
                to: serde_json::json!({ "requestsPerMinute": 100 }),
            }]
        );
    }
}
