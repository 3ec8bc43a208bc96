//! The OpenAPI document's frame: title, version, the JWT security scheme and
//! shared schemas. The paths come from each domain's router.

use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::metrics::Period;

#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse control plane", description = "Manage routes, services and consumers of a Gatehouse tenant."),
    modifiers(&JwtScheme),
    components(schemas(ErrorBody, ErrorDetail, Period)),
    tags(
        (name = "auth", description = "Tenant accounts"),
        (name = "services", description = "Upstream services"),
        (name = "routes", description = "Routes to services"),
        (name = "consumers", description = "API consumers and their keys"),
        (name = "rate limits", description = "Rate-limit tiers"),
        (name = "config", description = "The whole config as one document (config as code)"),
        (name = "plugins", description = "Tenant Wasm plugins"),
        (name = "telemetry", description = "Logs, errors, health and metrics"),
        (name = "gateway", description = "Gateway nodes"),
    )
)]
struct Frame;

struct JwtScheme;

impl Modify for JwtScheme {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "jwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document before the routers add their paths.
pub fn base() -> Document {
    let mut document = Frame::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document
}

#[cfg(test)]
mod tests {
    /// Every `$ref` names a schema the document has (query parameters'
    /// schemas are not collected from the handlers by themselves).
    #[test]
    fn every_reference_resolves() {
        fn refs<'a>(value: &'a serde_json::Value, found: &mut Vec<&'a str>) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(target)) = map.get("$ref") {
                        found.push(target);
                    }
                    map.values().for_each(|v| refs(v, found));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
                _ => {}
            }
        }
        let document = serde_json::to_value(crate::http::api().1).expect("serializes");
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let pointer = target.trim_start_matches('#');
            assert!(
                document.pointer(pointer).is_some(),
                "{target} does not resolve"
            );
        }
    }

    /// The console's typed client is generated from `console/openapi.json`
    /// (`scripts/console.sh`); this keeps that copy the document the API
    /// serves, so the console cannot drift from the API.
    #[test]
    fn the_consoles_copy_of_the_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../console/openapi.json");
        let (_, document) = crate::http::api();
        let current = format!(
            "{}\n",
            serde_json::to_string_pretty(&document).expect("serializes")
        );
        if std::env::var_os("GATEHOUSE_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &current).expect("console/openapi.json written");
        }
        let copy = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            copy == current,
            "console/openapi.json is not the API's document: run \
             `GATEHOUSE_UPDATE_OPENAPI=1 cargo test -p gatehouse-control openapi` \
             and rebuild the console (scripts/console.sh), then fix what its type check finds"
        );
    }
}
