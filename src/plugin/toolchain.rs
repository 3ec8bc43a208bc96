//! Building a plugin's component: cargo for Rust (`wasm32-wasip2`, which
//! rustup adds), componentize-js (npm) for JavaScript and componentize-py
//! (PyPI) for Python. The JavaScript and Python tools are pinned and
//! installed on first use under `$GATEHOUSE_PLUGIN_TOOLS` (default
//! `$XDG_CACHE_HOME/gatehouse/plugin-tools`, or `~/.cache/...`: the user's
//! own, where nobody else can put a tool), then reused. A tool counts as
//! installed once its command exists, which npm and pip make last, so an
//! interrupted install is made again.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::{Language, Manifest};

/// The componentize-js release plugins are built with.
pub const COMPONENTIZE_JS: &str = "0.23.0";
/// The componentize-py release plugins are built with.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// Builds the plugin of `manifest` in `dir` into the component `out`.
pub fn build(manifest: &Manifest, dir: &Path, out: &Path) -> anyhow::Result<()> {
    let wit = dir.join(&manifest.wit);
    if !wit.is_dir() {
        bail!("the WIT directory {} is missing", wit.display());
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let partial = out.with_extension("wasm.partial");
    match manifest.language {
        Language::Rust => build_rust(manifest, dir, &partial)?,
        Language::Js => {
            let source = dir.join(manifest.source.as_deref().unwrap_or("plugin.js"));
            let tool = js_tool()?;
            run(Command::new(tool)
                .arg("--wit")
                .arg(&wit)
                .args([
                    "--world-name",
                    "plugin",
                    "--disable",
                    "http",
                    "--disable",
                    "fetch-event",
                    "-o",
                ])
                .arg(&partial)
                .arg(&source))?;
        }
        Language::Python => {
            let tool = python_tool()?;
            run(Command::new(tool)
                .arg("-d")
                .arg(&wit)
                .args(["-w", "plugin", "componentize", "-p"])
                .arg(dir)
                .arg(manifest.source.as_deref().unwrap_or("app"))
                .arg("-o")
                .arg(&partial))?;
        }
    }
    std::fs::rename(&partial, out).with_context(|| format!("writing {}", out.display()))
}

fn build_rust(manifest: &Manifest, dir: &Path, out: &Path) -> anyhow::Result<()> {
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| dir.join("target"), PathBuf::from);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target_dir)
        // Flags meant for the machine's own builds are not the guest's.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER"))
    .context("is the wasm32-wasip2 target installed? (`rustup target add wasm32-wasip2`)")?;
    let built = target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", manifest.name.replace('-', "_")));
    std::fs::copy(&built, out).with_context(|| format!("copying {}", built.display()))?;
    Ok(())
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    let status = command
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} failed ({status})");
    }
    Ok(())
}

fn tools_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("GATEHOUSE_PLUGIN_TOOLS") {
        return Ok(PathBuf::from(dir));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .ok_or_else(|| {
            anyhow::anyhow!("set GATEHOUSE_PLUGIN_TOOLS (no HOME to keep the tools in)")
        })?;
    Ok(cache.join("gatehouse/plugin-tools"))
}

/// componentize-js, installed with npm on first use.
fn js_tool() -> anyhow::Result<PathBuf> {
    let home = tools_dir()?.join(format!("js-{COMPONENTIZE_JS}"));
    let tool = home.join("node_modules/.bin/componentize-js");
    if !tool.exists() {
        eprintln!(
            "installing componentize-js {COMPONENTIZE_JS} into {} (once)",
            home.display()
        );
        std::fs::create_dir_all(&home)?;
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&home)
            .arg(format!(
                "@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"
            )))
        .context("JavaScript plugins need Node.js and npm")?;
    }
    Ok(tool)
}

/// componentize-py, installed with pip in a virtual environment on first use.
fn python_tool() -> anyhow::Result<PathBuf> {
    let home = tools_dir()?.join(format!("py-{COMPONENTIZE_PY}"));
    let tool = home.join("bin/componentize-py");
    if !tool.exists() {
        eprintln!(
            "installing componentize-py {COMPONENTIZE_PY} into {} (once)",
            home.display()
        );
        run(Command::new("python3").args(["-m", "venv"]).arg(&home))
            .context("Python plugins need python3 with venv")?;
        run(Command::new(home.join("bin/pip"))
            .args(["install", "--quiet"])
            .arg(format!("componentize-py=={COMPONENTIZE_PY}")))?;
    }
    Ok(tool)
}
