//! Checking an uploaded plugin without running it: the bytes must be a
//! valid WebAssembly component whose top level exports the hooks of the
//! `gatehouse:plugin@0.1` world and imports nothing but that world's host
//! interfaces and WASI (which the node links with an empty context) — not
//! the request log, which only the node's own built-ins may write.

use wasmparser::{ComponentTypeRef, Parser, Payload, Validator, WasmFeatures};

/// The exports every plugin must have.
pub const REQUIRED_EXPORTS: [&str; 4] = ["describe", "on-request", "on-response", "on-log"];

/// The node's built-in plugins: names a tenant plugin may not take (metrics
/// and error events name plugins by name).
pub const BUILTIN_NAMES: [&str; 3] = ["api-key-auth", "rate-limit", "request-log"];

/// Why an upload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginCheckError {
    #[error("the body is empty")]
    Empty,
    #[error(
        "not a WebAssembly component (a core module or something else); build it for wasm32-wasip2 or with a component toolchain"
    )]
    NotAComponent,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("missing export `{0}` of the gatehouse:plugin world")]
    MissingExport(&'static str),
    #[error("imports `{0}`, which the gatehouse:plugin world does not provide")]
    ForeignImport(String),
    #[error(
        "imports `{0}`, which is reserved for the node's built-in plugins; build against the `plugin` world"
    )]
    ReservedImport(String),
}

/// Host interfaces of the `builtin` world that tenant plugins may not import.
const RESERVED_IMPORTS: [&str; 1] = ["gatehouse:plugin/request-logs"];

/// Checks the bytes; `Ok` means a node can load them.
pub fn check(bytes: &[u8]) -> Result<(), PluginCheckError> {
    if bytes.is_empty() {
        return Err(PluginCheckError::Empty);
    }
    if !Parser::is_component(bytes) {
        return Err(PluginCheckError::NotAComponent);
    }
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .map_err(|err| PluginCheckError::Invalid(err.to_string()))?;
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|err| PluginCheckError::Invalid(err.to_string()))? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export =
                        export.map_err(|err| PluginCheckError::Invalid(err.to_string()))?;
                    exports.push(export.name.name.to_owned());
                }
            }
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import =
                        import.map_err(|err| PluginCheckError::Invalid(err.to_string()))?;
                    let name = import.name.name;
                    // The world's shared types are imported by plain name.
                    if matches!(import.ty, ComponentTypeRef::Type(_)) {
                        continue;
                    }
                    if !(name.starts_with("gatehouse:plugin/") || name.starts_with("wasi:")) {
                        return Err(PluginCheckError::ForeignImport(name.to_owned()));
                    }
                    if name.starts_with("gatehouse:plugin/") && !name.contains("@0.1.") {
                        return Err(PluginCheckError::ForeignImport(name.to_owned()));
                    }
                    if RESERVED_IMPORTS.iter().any(|r| name.starts_with(r)) {
                        return Err(PluginCheckError::ReservedImport(name.to_owned()));
                    }
                }
            }
            _ => {}
        }
    }
    for required in REQUIRED_EXPORTS {
        if !exports.iter().any(|name| name == required) {
            return Err(PluginCheckError::MissingExport(required));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_plugin() {
        assert_eq!(check(b""), Err(PluginCheckError::Empty));
        assert_eq!(check(b"hello"), Err(PluginCheckError::NotAComponent));
        // A core module header.
        assert_eq!(
            check(b"\0asm\x01\0\0\0"),
            Err(PluginCheckError::NotAComponent)
        );
        // An empty component: valid, but exports nothing.
        assert_eq!(
            check(b"\0asm\x0d\0\x01\0"),
            Err(PluginCheckError::MissingExport("describe"))
        );
        // A truncated component.
        assert!(matches!(
            check(b"\0asm\x0d\0\x01\0\x07"),
            Err(PluginCheckError::Invalid(_))
        ));
    }
}
