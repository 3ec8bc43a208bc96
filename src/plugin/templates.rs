//! The plugins `gatehouse plugin new` makes: one per language, each setting
//! one request header from its config, with the WIT it is built against
//! (the package this binary's nodes link) and its manifest.

use std::path::Path;

use anyhow::{Context, bail};

use super::{Language, Manifest};

/// The WIT a new plugin is built against.
const PLUGIN_WIT: &str = include_str!("../../wit/plugin.wit");

/// The files of a new plugin of `language`: path and text, `{{name}}` to be
/// replaced by the plugin's name.
fn files(language: Language) -> &'static [(&'static str, &'static str)] {
    match language {
        Language::Rust => &[
            ("Cargo.toml", include_str!("templates/rust_Cargo.toml")),
            (
                ".cargo/config.toml",
                include_str!("templates/rust_config.toml"),
            ),
            ("src/lib.rs", include_str!("templates/rust_lib.rs")),
        ],
        Language::Js => &[("plugin.js", include_str!("templates/plugin.js"))],
        Language::Python => &[("app.py", include_str!("templates/app.py"))],
    }
}

/// Why `name` cannot name a plugin, if it cannot.
fn name_problem(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) {
        return Some("must start with a lowercase letter");
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Some("may hold only lowercase letters, digits and dashes");
    }
    if name.len() > 64 {
        return Some("may be at most 64 characters long");
    }
    if gatehouse_control::plugin_check::BUILTIN_NAMES.contains(&name) {
        return Some("is the name of a built-in plugin");
    }
    None
}

/// Makes the plugin `name` in `dir`, which must not exist or be empty.
pub fn scaffold(name: &str, language: Language, dir: &Path) -> anyhow::Result<()> {
    if let Some(problem) = name_problem(name) {
        bail!("the plugin name `{name}` {problem}");
    }
    if dir
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
    {
        bail!("{} exists and is not empty", dir.display());
    }
    let write = |path: &str, text: &str| -> anyhow::Result<()> {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    for (path, text) in files(language) {
        write(path, &text.replace("{{name}}", name))?;
    }
    write("wit/plugin.wit", PLUGIN_WIT)?;
    write(".gitignore", include_str!("templates/gitignore"))?;
    let source = match language {
        Language::Rust => None,
        Language::Js => Some("plugin.js".to_owned()),
        Language::Python => Some("app".to_owned()),
    };
    Manifest {
        name: name.to_owned(),
        version: "0.1.0".to_owned(),
        language,
        source,
        wit: "wit".to_owned(),
    }
    .write(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_anything_is_made() {
        assert_eq!(name_problem("hello-2"), None);
        assert!(name_problem("Hello").is_some());
        assert!(name_problem("2fast").is_some());
        assert!(name_problem("a_b").is_some());
        assert!(name_problem("rate-limit").is_some());
    }

    #[test]
    fn a_plugin_is_made_with_its_manifest_and_wit_and_not_over_another() {
        let dir = std::env::temp_dir().join(format!("gatehouse-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        scaffold("hello", Language::Js, &dir).expect("made");
        let manifest = Manifest::read(&dir).expect("manifest");
        assert_eq!(manifest.name, "hello");
        assert_eq!(manifest.source.as_deref(), Some("plugin.js"));
        let js = std::fs::read_to_string(dir.join("plugin.js")).expect("source");
        assert!(js.contains("name: 'hello'") && !js.contains("{{name}}"));
        assert!(dir.join("wit/plugin.wit").is_file());
        assert!(dir.join(".gitignore").is_file());
        assert!(
            scaffold("hello", Language::Js, &dir).is_err(),
            "not over another"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
