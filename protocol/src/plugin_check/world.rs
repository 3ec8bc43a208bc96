//! The world an uploaded component must target to load on a node: the
//! `plugin` world of `wit/plugin.wit` (or of the 0.1.0 release in
//! `wit/0.1.0/`, which nodes link too) plus the WASI 0.2 interfaces a node
//! links (`wasi/`, as wasmtime-wasi ships them). The check is the component
//! model's own type check (wit-component's `targets`, what `wasm-tools
//! component targets` runs): a component of the world's type must be
//! instantiable with the uploaded one, so a hook with the wrong signature,
//! a missing export or an import the node does not provide is refused,
//! as the node's linker would refuse it.
//!
//! A component names the WASI version it was built against (`@0.2.0`,
//! `@0.2.4`, ...). The node's linker takes any 0.2 version for the one it
//! provides (semver-compatible names); the validator matches names
//! exactly. So the WASI text is checked under the versions the component
//! imports: WASI 0.2 releases only add, so the newest text under an older
//! version's name offers everything that version had, and nothing a node
//! could not link. Its `@since` gates, which may not name a version after
//! the package's, are dropped (every item is there on the node).

use std::collections::BTreeMap;

use wit_parser::{Resolve, WorldId};

/// A release of the `gatehouse:plugin` package that nodes link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginVersion {
    V0_1,
    V0_2,
}

impl PluginVersion {
    /// The newest release, what plugin authors build against.
    pub const CURRENT: Self = Self::V0_2;

    /// The release whose interfaces an import of version `version` names
    /// (`0.1.<patch>` or `0.2.<patch>`, no pre-release), if nodes link it.
    pub fn of_import(version: &str) -> Option<Self> {
        if is_release_of(version, "0.1") {
            Some(Self::V0_1)
        } else if is_release_of(version, "0.2") {
            Some(Self::V0_2)
        } else {
            None
        }
    }

    /// The release's version, as WIT names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_1 => "0.1.0",
            Self::V0_2 => "0.2.0",
        }
    }

    /// The release's WIT, as plugin authors build against it.
    fn wit(self) -> &'static str {
        match self {
            Self::V0_1 => include_str!("../../../wit/0.1.0/plugin.wit"),
            Self::V0_2 => include_str!("../../../wit/plugin.wit"),
        }
    }
}

/// Whether `version` is a release (not a pre-release) of the `series`,
/// e.g. `0.2.4` of `0.2`: what a node's linker matches to the version of
/// the series it provides.
pub fn is_release_of(version: &str, series: &str) -> bool {
    version
        .strip_prefix(series)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|patch| !patch.is_empty() && patch.chars().all(|c| c.is_ascii_digit()))
}

impl std::fmt::Display for PluginVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The WASI version of the files in `wasi/` (what the node links).
pub const WASI_VERSION: &str = "0.2.12";

/// The WASI packages a node links, each after the packages it uses.
const WASI: [(&str, &str); 6] = [
    ("io", include_str!("wasi/io.wit")),
    ("clocks", include_str!("wasi/clocks.wit")),
    ("random", include_str!("wasi/random.wit")),
    ("filesystem", include_str!("wasi/filesystem.wit")),
    ("sockets", include_str!("wasi/sockets.wit")),
    ("cli", include_str!("wasi/cli.wit")),
];

/// Checks that `component` (already validated) targets the plugin world,
/// with each WASI package under the version `wasi_versions` names for it
/// (package name, e.g. `io`, to version). `Err` holds the type checker's
/// reason.
pub fn targets_plugin_world(
    component: &[u8],
    plugin: PluginVersion,
    wasi_versions: &BTreeMap<String, String>,
) -> Result<(), String> {
    let (resolve, world) = node_world(plugin, wasi_versions)?;
    wit_component::targets(&resolve, world, component).map_err(|err| reason(&format!("{err:#}")))
}

/// The `plugin` world of release `plugin` with WASI as a node links it,
/// each WASI package under the version `wasi_versions` names (the vendored
/// one otherwise).
fn node_world(
    plugin: PluginVersion,
    wasi_versions: &BTreeMap<String, String>,
) -> Result<(Resolve, WorldId), String> {
    let mut resolve = Resolve::default();
    for (package, text) in WASI {
        resolve
            .push_source(
                &format!("wasi/{package}.wit"),
                &with_versions(&without_since_gates(text), wasi_versions),
            )
            .map_err(|err| format!("WASI {package} under the imported version: {err:#}"))?;
    }
    resolve
        .push_source("plugin.wit", plugin.wit())
        .map_err(|err| format!("plugin.wit: {err:#}"))?;
    let cli = wasi_versions
        .get("cli")
        .map_or(WASI_VERSION, String::as_str);
    let check = format!(
        "package gatehouse:upload-check;\n\
         world plugin-on-a-node {{\n  include gatehouse:plugin/plugin@{plugin};\n  \
         include wasi:cli/imports@{cli};\n}}\n"
    );
    let package = resolve
        .push_source("check.wit", &check)
        .map_err(|err| format!("the check world: {err:#}"))?;
    let world = resolve
        .select_world(&[package], Some("plugin-on-a-node"))
        .map_err(|err| format!("the check world: {err:#}"))?;
    Ok((resolve, world))
}

/// The type checker's answer as one line about the component: its first
/// line names the generated check ("type mismatch for import
/// `plugin-on-a-node`"), the rest say what is wrong, each with a byte
/// offset into the generated check, of no use to the author.
fn reason(checked: &str) -> String {
    let lines: Vec<String> = checked
        .lines()
        .skip(1)
        .map(|line| line.split(" (at offset").next().unwrap_or(line).trim())
        .filter(|line| !line.is_empty())
        .map(|line| match line.strip_prefix("missing import named ") {
            Some(name) => format!("imports {name}, which a node does not provide"),
            None => line.to_owned(),
        })
        .collect();
    if lines.is_empty() {
        checked.to_owned()
    } else {
        lines.join(": ")
    }
}

/// `text` with every `wasi:<package>...@0.2.12` reference of a package in
/// `versions` naming that version instead.
fn with_versions(text: &str, versions: &BTreeMap<String, String>) -> String {
    let vendored = format!("@{WASI_VERSION}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("wasi:") {
        out.push_str(&rest[..at]);
        let from = &rest[at..];
        // A reference ends where the WIT syntax around it starts.
        let len = from
            .find(|c: char| c.is_whitespace() || matches!(c, ';' | ',' | '{' | '}'))
            .unwrap_or(from.len());
        let reference = &from[..len];
        let package = reference["wasi:".len()..]
            .split(['/', '@', '.'])
            .next()
            .unwrap_or_default();
        match (versions.get(package), reference.find(&vendored)) {
            (Some(version), Some(v)) => {
                out.push_str(&reference[..=v]);
                out.push_str(version);
                out.push_str(&reference[v + vendored.len()..]);
            }
            _ => out.push_str(reference),
        }
        rest = &from[len..];
    }
    out.push_str(rest);
    out
}

/// `text` without its `@since(...)` annotations.
fn without_since_gates(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("@since(") {
        out.push_str(&rest[..at]);
        let gate = &rest[at..];
        rest = gate.find(')').map_or("", |end| &gate[end + 1..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_take_the_versions_asked_for() {
        let versions = BTreeMap::from([("io".to_owned(), "0.2.0".to_owned())]);
        let text = "package wasi:io@0.2.12;\n  use wasi:io/streams@0.2.12.{input-stream};\n  \
                    import wasi:clocks/wall-clock@0.2.12;\n/// wasi:io, in prose\n";
        assert_eq!(
            with_versions(text, &versions),
            "package wasi:io@0.2.0;\n  use wasi:io/streams@0.2.0.{input-stream};\n  \
             import wasi:clocks/wall-clock@0.2.12;\n/// wasi:io, in prose\n"
        );
    }

    #[test]
    fn since_gates_are_dropped() {
        assert_eq!(
            without_since_gates("@since(version = 0.2.3)\ninterface a {}\n"),
            "\ninterface a {}\n"
        );
    }

    /// A real component made from the world itself (wit-component's dummy
    /// core module, lifted and lowered as the world says, importing every
    /// WASI interface a node links) passes the whole upload check, under
    /// the vendored WASI version and under 0.2.0.
    #[test]
    fn a_component_of_the_plugin_world_is_accepted() {
        use wit_component::{ComponentEncoder, StringEncoding};
        let cases = [
            (PluginVersion::V0_2, WASI_VERSION),
            (PluginVersion::V0_2, "0.2.0"),
            (PluginVersion::V0_1, WASI_VERSION),
        ];
        for (plugin, version) in cases {
            let versions: BTreeMap<String, String> = WASI
                .iter()
                .map(|(package, _)| ((*package).to_owned(), version.to_owned()))
                .collect();
            let (resolve, world) = node_world(plugin, &versions).expect("the world");
            let mut module = wit_component::dummy_module(
                &resolve,
                world,
                wit_parser::ManglingAndAbi::Standard32,
            );
            wit_component::embed_component_metadata(
                &mut module,
                &resolve,
                world,
                StringEncoding::UTF8,
            )
            .expect("metadata");
            let component = ComponentEncoder::default()
                .module(&module)
                .and_then(|mut encoder| encoder.encode())
                .expect("a component");
            assert_eq!(
                super::super::check(&component),
                Ok(()),
                "plugin {plugin}, WASI {version}"
            );
        }
    }

    #[test]
    fn the_vendored_wit_parses_under_older_versions() {
        let versions: BTreeMap<String, String> = WASI
            .iter()
            .map(|(package, _)| ((*package).to_owned(), "0.2.0".to_owned()))
            .collect();
        // An empty component imports nothing and exports nothing: the
        // world parses, and the type check says what is missing.
        let err = targets_plugin_world(b"\0asm\x0d\0\x01\0", PluginVersion::CURRENT, &versions)
            .expect_err("no exports");
        assert!(err.contains("describe"), "{err}");
    }
}
