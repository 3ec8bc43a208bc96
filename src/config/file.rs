//! A config file: the tenant's config document in YAML (or JSON: YAML
//! reads it, and a `.json` file is read as JSON), read and checked before
//! anything is sent. A route's plugin may give the `path` of a local `.wasm` in
//! place of a stored plugin: the file's plugin is then named by its hash,
//! and uploaded under its name and version when the tenant has no such
//! plugin yet.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use gatehouse_control::declarative::document::{ConfigDocument, plugin_label};
use gatehouse_control::error::ApiError;
use gatehouse_control::secrets::sha256_hex;
use serde_json::Value;

/// A plugin of the file given by its path.
#[derive(Debug)]
pub struct LocalPlugin {
    pub name: String,
    pub version: String,
    pub path: PathBuf,
    pub wasm: Vec<u8>,
}

impl LocalPlugin {
    /// `name@version`, as plans name plugins.
    pub fn label(&self) -> String {
        plugin_label(&self.name, &self.version)
    }
}

/// A file's document, normalised, and the plugins it gives by path.
#[derive(Debug)]
pub struct ConfigFile {
    pub doc: ConfigDocument,
    pub local_plugins: Vec<LocalPlugin>,
}

/// Reads and checks the config file at `path` (`-`: standard input).
pub fn read(path: &Path) -> anyhow::Result<ConfigFile> {
    let shown = path.display().to_string();
    let (text, dir) = if path == Path::new("-") {
        let text = std::io::read_to_string(std::io::stdin()).context("reading standard input")?;
        (text, PathBuf::from("."))
    } else {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {shown}"))?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        (text, dir)
    };
    // YAML reads JSON too; a `.json` file gets JSON's own error messages.
    let mut value: Value = if path.extension().is_some_and(|ext| ext == "json") {
        serde_json::from_str(&text).with_context(|| format!("{shown} is not valid JSON"))?
    } else {
        serde_saphyr::from_str(&text).with_context(|| format!("{shown} is not valid YAML"))?
    };
    if value.is_null() {
        value = Value::Object(serde_json::Map::new());
    }
    let local_plugins = resolve_paths(&mut value, &dir).with_context(|| shown.clone())?;
    let doc: ConfigDocument = serde_path_to_error::deserialize(value).map_err(|err| {
        let at = err.path().to_string();
        let reason = err.into_inner();
        if at == "." {
            anyhow!("{shown}: {reason}")
        } else {
            anyhow!("{shown}: {at}: {reason}")
        }
    })?;
    let doc = doc.normalize().map_err(|err| item_error(&shown, err))?;
    Ok(ConfigFile { doc, local_plugins })
}

/// The error of an item, as `FILE: routes[3].pathPattern: reason`.
pub fn item_error(file: &str, err: ApiError) -> anyhow::Error {
    match &err {
        ApiError::Invalid {
            field: Some(field), ..
        } => anyhow!("{file}: {field}: {err}"),
        _ => anyhow!("{file}: {err}"),
    }
}

/// Replaces each route plugin's `path` by the `sha256` of the file it
/// names (relative to the config file's directory), and collects them.
fn resolve_paths(doc: &mut Value, dir: &Path) -> anyhow::Result<Vec<LocalPlugin>> {
    let mut found: Vec<LocalPlugin> = Vec::new();
    let Some(routes) = doc.get_mut("routes").and_then(Value::as_array_mut) else {
        return Ok(found);
    };
    for (r, route) in routes.iter_mut().enumerate() {
        let Some(plugins) = route.get_mut("plugins").and_then(Value::as_array_mut) else {
            continue;
        };
        for (p, plugin) in plugins.iter_mut().enumerate() {
            let at = format!("routes[{r}].plugins[{p}]");
            let Some(object) = plugin.as_object_mut() else {
                continue;
            };
            let Some(path) = object.remove("path") else {
                continue;
            };
            let path = path
                .as_str()
                .ok_or_else(|| anyhow!("{at}.path: must be a file path"))?;
            let path = dir.join(path);
            let wasm = std::fs::read(&path)
                .with_context(|| format!("{at}.path: reading {}", path.display()))?;
            let sha256 = sha256_hex(&wasm);
            if let Some(given) = object.get("sha256")
                && given.as_str() != Some(sha256.as_str())
            {
                bail!(
                    "{at}.sha256: {} has another hash ({sha256})",
                    path.display()
                );
            }
            let text = |field: &str| match object.get(field) {
                Some(Value::String(text)) => Ok(text.trim().to_owned()),
                Some(other) => Err(anyhow!(
                    "{at}.{field}: must be text, not {other} (quote it: \"{other}\")"
                )),
                None => Err(anyhow!(
                    "{at}.{field}: a plugin given by path needs its {field}"
                )),
            };
            let (name, version) = (text("name")?, text("version")?);
            object.insert("sha256".to_owned(), Value::String(sha256));
            match found
                .iter()
                .find(|f| f.name == name && f.version == version)
            {
                Some(first) if first.wasm != wasm => bail!(
                    "{at}.path: {} is not {} ({name}@{version} twice, with other bytes)",
                    path.display(),
                    first.path.display()
                ),
                Some(_) => {}
                None => found.push(LocalPlugin {
                    name,
                    version,
                    path,
                    wasm,
                }),
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("written");
        path
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gatehouse-file-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn yaml_and_json_read_the_same() {
        let dir = scratch("formats");
        let yaml = write(
            &dir,
            "a.yaml",
            "services:\n  - name: users\n    targetUrl: http://127.0.0.1:9000\nconsumers:\n  - name: alice\n",
        );
        let json = write(
            &dir,
            "a.json",
            r#"{"services": [{"name": "users", "targetUrl": "http://127.0.0.1:9000"}], "consumers": [{"name": "alice"}]}"#,
        );
        let from_yaml = read(&yaml).expect("yaml");
        assert_eq!(from_yaml.doc, read(&json).expect("json").doc);
        assert_eq!(
            from_yaml.doc.services[0].target_url,
            "http://127.0.0.1:9000/"
        );
        assert_eq!(from_yaml.doc.consumers[0].rate_limit_tier, "free");
    }

    #[test]
    fn errors_name_the_file_and_the_item() {
        let dir = scratch("errors");
        let typo = write(
            &dir,
            "typo.yaml",
            "services:\n  - name: a\n    targetURL: http://h\n",
        );
        let err = format!("{:#}", read(&typo).expect_err("unknown field"));
        assert!(
            err.contains("typo.yaml") && err.contains("services[0]"),
            "{err}"
        );
        let bad = write(
            &dir,
            "bad.yaml",
            "routes:\n  - {method: GET, pathPattern: /a, service: s, authRequired: false}\n  - {method: GET, pathPattern: b, service: s, authRequired: false}\n",
        );
        let err = format!("{:#}", read(&bad).expect_err("bad pattern"));
        assert!(err.contains("routes[1].pathPattern"), "{err}");
        let version = write(
            &dir,
            "version.yaml",
            "routes:\n  - method: GET\n    pathPattern: /a\n    service: s\n    authRequired: false\n    plugins:\n      - {name: p, version: 1.0}\n",
        );
        let err = format!("{:#}", read(&version).expect_err("a number"));
        assert!(err.contains("routes[0].plugins[0].version"), "{err}");
    }

    #[test]
    fn plugin_paths_become_hashes() {
        let dir = scratch("paths");
        std::fs::write(dir.join("p.wasm"), b"\0asm-bytes").expect("wasm");
        let file = write(
            &dir,
            "c.yaml",
            "services: [{name: s, targetUrl: 'http://h'}]\nroutes:\n  - method: GET\n    pathPattern: /a\n    service: s\n    authRequired: false\n    plugins:\n      - {name: p, version: '1', path: p.wasm}\n",
        );
        let read = read(&file).expect("reads");
        assert_eq!(read.local_plugins.len(), 1);
        assert_eq!(read.local_plugins[0].label(), "p@1");
        let sha256 = read.doc.routes[0].plugins[0].sha256.as_deref();
        assert_eq!(sha256, Some(sha256_hex(b"\0asm-bytes").as_str()));
        // One name and version twice, with other bytes: refused.
        std::fs::write(dir.join("q.wasm"), b"\0asm-other").expect("wasm");
        let twice = write(
            &dir,
            "twice.yaml",
            "services: [{name: s, targetUrl: 'http://h'}]\nroutes:\n  - method: GET\n    pathPattern: /a\n    service: s\n    authRequired: false\n    plugins:\n      - {name: p, version: '1', path: p.wasm}\n  - method: GET\n    pathPattern: /b\n    service: s\n    authRequired: false\n    plugins:\n      - {name: p, version: '1', path: q.wasm}\n",
        );
        let err = format!("{:#}", super::read(&twice).expect_err("other bytes"));
        assert!(
            err.contains("routes[1].plugins[0].path") && err.contains("twice"),
            "{err}"
        );
    }
}
