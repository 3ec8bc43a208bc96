//! Rebuilds the control plane when a migration changes (they are embedded
//! by `sqlx::migrate!`, which cargo cannot see), and embeds the book that
//! `make docs` built into `target/book/`, served at `/docs/`: a list of
//! its files written to `$OUT_DIR/book.rs`, empty when the book is not
//! built (the control plane then says how to build it).

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    let book = std::env::var_os("GATEHOUSE_BOOK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/book"));
    println!("cargo:rerun-if-env-changed=GATEHOUSE_BOOK_DIR");
    let mut files = Vec::new();
    if book.is_dir() {
        println!("cargo:rerun-if-changed={}", book.display());
        collect(&book, &book, &mut files);
    } else {
        // Not the missing book (cargo would run this at every build): the
        // book's sources, which `make docs` touches once it built the book.
        println!("cargo:rerun-if-changed=../docs");
    }
    files.sort();
    let mut code = String::from(
        "/// The book's files, by path under `/docs/`.\npub static BOOK: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in &files {
        let _ = writeln!(code, "    ({name:?}, include_bytes!({path:?})),");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("book.rs"), code).expect("book.rs written");
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
