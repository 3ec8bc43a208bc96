//! Checking an uploaded plugin without running it: the bytes must be a
//! valid WebAssembly component that targets the `plugin` world of a
//! `gatehouse:plugin` release a node links (the one its imports name:
//! 0.2.0, or 0.1.0 for components built against it), as a node links it:
//! the world's hooks exported with their types, nothing imported but the
//! world's host interfaces and the WASI 0.2 interfaces a node provides
//! (with an empty context), and not the request log, which only the
//! node's own built-ins may write. The quick
//! checks by name come first, for the clearest answer; then the component
//! model's type check against the world ([`world`]).

mod world;

pub use world::PluginVersion;

use std::collections::BTreeMap;

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
    #[error(
        "imports two versions of wasi:{0} ({1} and {2}): the upload check takes one version of each WASI package; build against one"
    )]
    MixedWasiVersions(String, String, String),
    #[error(
        "imports two releases of gatehouse:plugin ({0} and {1}): build against one (the current one is {current})",
        current = PluginVersion::CURRENT
    )]
    MixedPluginVersions(PluginVersion, PluginVersion),
    #[error("does not match the gatehouse:plugin@{0} world a node links: {1}")]
    WrongWorld(PluginVersion, String),
}

/// Host interfaces of the `builtin` world that tenant plugins may not import.
const RESERVED_IMPORTS: [&str; 1] = ["gatehouse:plugin/request-logs"];

/// The WebAssembly features a node's wasmtime enables, as it is built
/// (wasmtime 48 without its `gc`, `threads` and `component-model-async`
/// features): the WebAssembly 3.0 set without GC types, exceptions and
/// threads, and the component model without async. A component using
/// anything else is refused at upload, as a node would refuse it.
pub fn node_features() -> WasmFeatures {
    (WasmFeatures::WASM3 | WasmFeatures::COMPONENT_MODEL)
        & !(WasmFeatures::GC_TYPES | WasmFeatures::EXCEPTIONS | WasmFeatures::THREADS)
}

/// Checks the bytes; `Ok` means a node can link them.
pub fn check(bytes: &[u8]) -> Result<(), PluginCheckError> {
    if bytes.is_empty() {
        return Err(PluginCheckError::Empty);
    }
    if !Parser::is_component(bytes) {
        return Err(PluginCheckError::NotAComponent);
    }
    Validator::new_with_features(node_features())
        .validate_all(bytes)
        .map_err(|err| PluginCheckError::Invalid(err.to_string()))?;
    let mut exports = Vec::new();
    let mut wasi_versions = BTreeMap::new();
    let mut plugin_version = None;
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
                    if name.starts_with("gatehouse:plugin/") {
                        note_plugin_version(&mut plugin_version, name)?;
                    }
                    if RESERVED_IMPORTS.iter().any(|r| name.starts_with(r)) {
                        return Err(PluginCheckError::ReservedImport(name.to_owned()));
                    }
                    if let Some(wasi) = name.strip_prefix("wasi:") {
                        note_wasi_version(&mut wasi_versions, name, wasi)?;
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
    // A component importing none of the package's interfaces is checked
    // against the current release (the hooks' types are the same in both).
    let plugin = plugin_version.unwrap_or(PluginVersion::CURRENT);
    world::targets_plugin_world(bytes, plugin, &wasi_versions)
        .map_err(|reason| PluginCheckError::WrongWorld(plugin, reason))
}

/// Records the `gatehouse:plugin` release the import `name` names: one a
/// component, of those nodes link.
fn note_plugin_version(
    seen: &mut Option<PluginVersion>,
    name: &str,
) -> Result<(), PluginCheckError> {
    let version = name
        .split_once('@')
        .and_then(|(_, version)| PluginVersion::of_import(version))
        .ok_or_else(|| PluginCheckError::ForeignImport(name.to_owned()))?;
    match *seen {
        Some(first) if first != version => {
            Err(PluginCheckError::MixedPluginVersions(first, version))
        }
        _ => {
            *seen = Some(version);
            Ok(())
        }
    }
}

/// Records the version of the WASI package `wasi` (an import name without
/// `wasi:`, e.g. `io/streams@0.2.4`) names: one 0.2 version a package.
fn note_wasi_version(
    versions: &mut BTreeMap<String, String>,
    name: &str,
    wasi: &str,
) -> Result<(), PluginCheckError> {
    let foreign = || PluginCheckError::ForeignImport(name.to_owned());
    let (path, version) = wasi.split_once('@').ok_or_else(foreign)?;
    let package = path.split('/').next().unwrap_or_default();
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    // A release of WASI 0.2, no pre-release (`0.2.0-rc-...`).
    if !plain(package) || !world::is_release_of(version, "0.2") {
        return Err(foreign());
    }
    match versions.get(package) {
        Some(seen) if seen != version => Err(PluginCheckError::MixedWasiVersions(
            package.to_owned(),
            seen.clone(),
            version.to_owned(),
        )),
        Some(_) => Ok(()),
        None => {
            versions.insert(package.to_owned(), version.to_owned());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component exporting the four hooks, lifted as `exports` types them.
    fn component(imports: &str, exports: [&str; 4]) -> Vec<u8> {
        let [describe, on_request, on_response, on_log] = exports;
        wat::parse_str(format!(
            r#"(component
                {imports}
                (core module $m
                    (func (export "none"))
                    (func (export "one") (param i32)))
                (core instance $i (instantiate $m))
                (func (export "describe") {describe} (canon lift (core func $i "none")))
                (func (export "on-request") {on_request} (canon lift (core func $i "one")))
                (func (export "on-response") {on_response} (canon lift (core func $i "one")))
                (func (export "on-log") {on_log} (canon lift (core func $i "none"))))"#
        ))
        .expect("valid WAT")
    }

    const WRONG_TYPES: [&str; 4] = ["", r#"(param "r" u32)"#, r#"(param "r" u32)"#, ""];

    #[test]
    fn hooks_with_the_right_names_and_the_wrong_types_are_refused() {
        let err = check(&component("", WRONG_TYPES)).expect_err("wrong types");
        assert!(matches!(err, PluginCheckError::WrongWorld(..)), "{err}");
        assert_eq!(
            err.to_string(),
            "does not match the gatehouse:plugin@0.2.0 world a node links: \
             type mismatch for export `describe`: expected no result, found one"
        );
    }

    #[test]
    fn an_interface_outside_the_world_is_refused() {
        let bytes = component(
            r#"(import "gatehouse:plugin/extra@0.1.0" (instance))"#,
            WRONG_TYPES,
        );
        let err = check(&bytes).expect_err("foreign import");
        assert_eq!(
            err.to_string(),
            "does not match the gatehouse:plugin@0.1.0 world a node links: \
             imports `gatehouse:plugin/extra@0.1.0`, which a node does not provide"
        );
        let bytes = component(
            r#"(import "gatehouse:plugin/extra@0.2.0" (instance))"#,
            WRONG_TYPES,
        );
        assert_eq!(
            check(&bytes).map_err(|err| err.to_string()),
            Err(
                "does not match the gatehouse:plugin@0.2.0 world a node links: \
                 imports `gatehouse:plugin/extra@0.2.0`, which a node does not provide"
                    .to_owned()
            )
        );
    }

    #[test]
    fn the_release_is_the_one_the_imports_name() {
        let mixed = component(
            r#"(import "gatehouse:plugin/log@0.1.0" (instance)) (import "gatehouse:plugin/kv@0.2.0" (instance))"#,
            WRONG_TYPES,
        );
        assert_eq!(
            check(&mixed),
            Err(PluginCheckError::MixedPluginVersions(
                PluginVersion::V0_1,
                PluginVersion::V0_2
            ))
        );
        for name in ["gatehouse:plugin/kv@0.3.0", "gatehouse:plugin/kv@0.2.0-rc1"] {
            let unknown = component(&format!(r#"(import "{name}" (instance))"#), WRONG_TYPES);
            assert_eq!(
                check(&unknown),
                Err(PluginCheckError::ForeignImport(name.into()))
            );
        }
    }

    #[test]
    fn wasi_of_another_major_version_or_two_minor_ones_is_refused() {
        for name in [
            "wasi:io/streams@0.3.0",
            "wasi:io/streams@0.2.0-rc-2023-11-10",
        ] {
            let other = component(&format!(r#"(import "{name}" (instance))"#), WRONG_TYPES);
            assert_eq!(
                check(&other),
                Err(PluginCheckError::ForeignImport(name.into()))
            );
        }
        let mixed = component(
            r#"(import "wasi:io/error@0.2.0" (instance)) (import "wasi:io/streams@0.2.4" (instance))"#,
            WRONG_TYPES,
        );
        assert!(
            matches!(check(&mixed), Err(PluginCheckError::MixedWasiVersions(..))),
            "{:?}",
            check(&mixed)
        );
    }

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
