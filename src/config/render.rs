//! Plans for people: one line an item (`+` create, `~` update, `-`
//! delete), its changed fields under it, and a summary line.

use std::fmt::Write as _;

use serde_json::Value;

/// The fields a creation shows under its key line: all but the key's own.
const KEY_FIELDS: [&str; 3] = ["name", "method", "pathPattern"];

/// The plan of a `PUT .../config` answer, as text.
pub fn changes(answer: &Value) -> String {
    let mut out = String::new();
    for change in answer["changes"].as_array().into_iter().flatten() {
        let action = change["action"].as_str().unwrap_or_default();
        let kind = change["kind"].as_str().unwrap_or_default();
        let key = change["key"].as_str().unwrap_or_default();
        let (sign, note) = match (action, kind) {
            ("create", "plugin") => ("+", " (uploaded from its path)"),
            ("create", _) => ("+", ""),
            ("delete", "consumer") => ("-", " (revoked)"),
            ("delete", _) => ("-", ""),
            _ => ("~", ""),
        };
        let title = if kind == "rateLimits" {
            "rate limits".to_owned()
        } else {
            format!("{kind} {key}")
        };
        let _ = writeln!(out, "{sign} {title}{note}");
        for field in change["fields"].as_array().into_iter().flatten() {
            let name = field["field"].as_str().unwrap_or_default();
            if action == "create" {
                if !KEY_FIELDS.contains(&name) && kind != "plugin" {
                    let _ = writeln!(out, "    {name}: {}", value(&field["to"]));
                }
            } else {
                let _ = writeln!(
                    out,
                    "    {name}: {} -> {}",
                    value(&field["from"]),
                    value(&field["to"])
                );
            }
        }
    }
    out
}

/// "2 to create, 1 to update, 0 to delete" (or what was done, once done).
pub fn summary(answer: &Value, done: bool) -> String {
    let count = |what: &str| answer["summary"][what].as_u64().unwrap_or(0);
    let (created, updated, deleted) = (count("created"), count("updated"), count("deleted"));
    if done {
        format!(
            "created {created}, updated {updated}, deleted {deleted}: config version {}",
            answer["configVersion"]
        )
    } else {
        format!("{created} to create, {updated} to update, {deleted} to delete")
    }
}

/// A field's value: text as itself, `(none)` for null, anything else as
/// compact JSON.
fn value(value: &Value) -> String {
    match value {
        Value::Null => "(none)".to_owned(),
        // A tier of the rate limits.
        Value::Object(tier) if tier.len() == 1 && tier.contains_key("requestsPerMinute") => {
            match &tier["requestsPerMinute"] {
                Value::Null => "unlimited".to_owned(),
                limit => format!("{limit}/min"),
            }
        }
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_plan_reads_item_by_item() {
        let answer = json!({
            "changes": [
                {"action": "delete", "kind": "consumer", "key": "bob", "fields": []},
                {"action": "update", "kind": "route", "key": "GET /a", "fields": [
                    {"field": "enabled", "from": true, "to": false}]},
                {"action": "create", "kind": "service", "key": "users", "fields": [
                    {"field": "name", "from": null, "to": "users"},
                    {"field": "targetUrl", "from": null, "to": "http://h/"}]},
            ],
            "summary": {"created": 1, "updated": 1, "deleted": 1},
            "configVersion": 7,
        });
        assert_eq!(
            changes(&answer),
            "- consumer bob (revoked)\n~ route GET /a\n    enabled: true -> false\n\
             + service users\n    targetUrl: http://h/\n"
        );
        assert_eq!(
            summary(&answer, false),
            "1 to create, 1 to update, 1 to delete"
        );
        assert_eq!(
            summary(&answer, true),
            "created 1, updated 1, deleted 1: config version 7"
        );
    }
}
