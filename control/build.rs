//! Rebuilds the control plane when a migration changes (they are embedded
//! by `sqlx::migrate!`, which cargo cannot see), and embeds the two sites
//! built outside cargo: the book (`make docs` builds it into `target/book/`,
//! served at `/docs/`) and the console (`scripts/console.sh` builds it into
//! `target/console/`, served at `/`). Each becomes a list of its files in
//! `$OUT_DIR`, empty when the site is not built (the control plane then
//! says how to build it).

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    // The sources each site is built from: `scripts/book.sh` and
    // `scripts/console.sh` touch these once they built the site, so an
    // unbuilt site does not make cargo run this at every build.
    embed(
        "BOOK",
        "GATEHOUSE_BOOK_DIR",
        "../target/book",
        "../docs",
        "book.rs",
    );
    embed(
        "CONSOLE",
        "GATEHOUSE_CONSOLE_DIR",
        "../target/console",
        "../console/package.json",
        "console.rs",
    );
}

/// Writes `$OUT_DIR/<out>`: `pub static <name>: &[(&str, &[u8])]`, the
/// site's files by path, sorted.
fn embed(name: &str, env: &str, default_dir: &str, sources: &str, out: &str) {
    // Read when the script runs, not baked in when it is compiled: two
    // checkouts sharing a target dir share this script's binary.
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join(default_dir));
    println!("cargo:rerun-if-env-changed={env}");
    let mut files = Vec::new();
    if dir.is_dir() {
        println!("cargo:rerun-if-changed={}", dir.display());
        collect(&dir, &dir, &mut files);
    } else {
        println!(
            "cargo:rerun-if-changed={}",
            manifest.join(sources).display()
        );
    }
    files.sort();
    let mut code =
        format!("/// The site's files, by path.\npub static {name}: &[(&str, &[u8])] = &[\n");
    for (path, absolute) in &files {
        let _ = writeln!(code, "    ({path:?}, include_bytes!({absolute:?})),");
    }
    code.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out_dir.join(out), code).expect("site list written");
}

/// Every file under `dir`, as (path relative to `root`, absolute path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let name = relative.to_string_lossy().replace('\\', "/");
            let absolute = path.canonicalize().unwrap_or(path.clone());
            files.push((name, absolute.to_string_lossy().into_owned()));
        }
    }
}
