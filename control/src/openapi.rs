//! The OpenAPI document's frame: title, version, the JWT security scheme and
//! shared schemas. The paths come from each domain's router.

use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};

#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse control plane", description = "Manage routes, services and consumers of a Gatehouse tenant."),
    modifiers(&JwtScheme),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "auth", description = "Tenant accounts"),
        (name = "services", description = "Upstream services"),
        (name = "routes", description = "Routes to services"),
        (name = "consumers", description = "API consumers and their keys"),
        (name = "rate limits", description = "Rate-limit tiers"),
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
