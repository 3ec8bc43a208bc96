//! `gatehouse-plugin.json`: what `build` and `push` need to know of a
//! plugin's directory: its name and version (as uploaded), its language,
//! its source and the WIT it is built against.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::Language;

/// The manifest's file name.
pub const FILE: &str = "gatehouse-plugin.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub language: Language,
    /// The entry point: the JavaScript file, or the Python module; unused
    /// for Rust (the crate in the directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The WIT directory, relative to the plugin's.
    #[serde(default = "default_wit")]
    pub wit: String,
}

fn default_wit() -> String {
    "wit".to_owned()
}

impl Manifest {
    /// The manifest of the plugin in `dir`.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (is {} a plugin's directory? `gatehouse plugin new` makes one)",
                path.display(),
                dir.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid manifest", path.display()))
    }

    /// Writes the manifest into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(dir.join(FILE), text).with_context(|| format!("writing {}", dir.display()))
    }

    /// Where `build` writes the component by default.
    pub fn component_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.wasm", self.name))
    }
}
