//! Builds the guest plugins of `plugins/` for `wasm32-wasip2` (a separate
//! cargo workspace: they target WebAssembly) and copies the components into
//! OUT_DIR, where the proxy embeds its built-ins and its tests find their
//! test plugins — as wasmtime builds its own test programs.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let plugins = manifest.join("../plugins");
    for watched in [
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
        "api-key-auth",
        "rate-limit",
        "request-log",
        "testbed",
        "testbed-0-1",
        "examples/add-header",
        "examples/hmac-sign",
    ] {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("../wit").display()
    );

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // A target dir of our own: the outer build holds the lock on its own.
    let target_dir = out.join("plugins-target");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(plugins.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        // cargo finds `plugins/.cargo/config.toml` (small guest stacks) from
        // the working directory, not from the manifest path.
        .current_dir(&plugins)
        // The outer build's flags are for the host, not for the guests.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        // Under `cargo clippy` the wrapper would lint wit-bindgen's
        // generated code; the guests are linted on their own.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building the guest plugins failed; is the wasm32-wasip2 target installed? \
         (`rustup target add wasm32-wasip2`, which `make setup` runs)"
    );
    let built = target_dir.join("wasm32-wasip2/release");
    for entry in std::fs::read_dir(&built).expect("guest build output") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "wasm") {
            let name = path.file_name().expect("file name");
            std::fs::copy(&path, out.join(name)).expect("copy the component");
        }
    }
}
