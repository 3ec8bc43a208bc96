//! The book's links: every relative link of `docs/` and the README names a
//! file that exists, and every `#anchor` a heading of that file; a page of
//! the book links only within the book (it is served on its own at
//! `/docs/`); every page is in `SUMMARY.md`; and the same of the built
//! book's HTML, as mdBook wrote it. The plugin guide's Rust example is the
//! template `gatehouse plugin new` writes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The repository's root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The targets of the inline links `[text](target)` of `markdown`, outside
/// code blocks and code spans.
fn links(markdown: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_block = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        // Code spans are no links.
        let text: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            found.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    found
}

/// The anchors mdBook gives the headings of `markdown`.
fn anchors(markdown: &str) -> HashSet<String> {
    let mut in_block = false;
    let mut found = HashSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
        }
        if in_block || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#').trim();
        let slug: String = heading
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        found.insert(slug);
    }
    found
}

/// Every problem with the links of `file`.
fn broken(file: &Path, in_book: bool) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("readable");
    let dir = file.parent().expect("a dir");
    let mut problems = Vec::new();
    for link in links(&text) {
        if link.starts_with("http://")
            || link.starts_with("https://")
            || link.starts_with("mailto:")
        {
            continue;
        }
        let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
        let target = if path.is_empty() {
            file.to_path_buf()
        } else {
            dir.join(path)
        };
        let Ok(target) = target.canonicalize() else {
            problems.push(format!("{}: `{link}`: no such file", file.display()));
            continue;
        };
        if in_book && !target.starts_with(root().join("docs")) {
            problems.push(format!(
                "{}: `{link}` leaves the book, which is served on its own",
                file.display()
            ));
        }
        if !anchor.is_empty() {
            let target_text = std::fs::read_to_string(&target).unwrap_or_default();
            if !anchors(&target_text).contains(anchor) {
                problems.push(format!(
                    "{}: `{link}`: no heading with that anchor",
                    file.display()
                ));
            }
        }
    }
    problems
}

#[test]
fn every_link_of_the_book_and_readme_resolves() {
    let docs = root().join("docs");
    let mut problems = broken(&root().join("README.md"), false);
    let summary = std::fs::read_to_string(docs.join("SUMMARY.md")).expect("SUMMARY.md");
    let listed: HashSet<String> = links(&summary).into_iter().collect();
    for entry in std::fs::read_dir(&docs).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            problems.extend(broken(&path, true));
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name != "SUMMARY.md" && !listed.contains(name) {
                problems.push(format!("docs/{name} is not in SUMMARY.md"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_links_and_anchors_as_mdbook_does() {
    assert_eq!(
        links("see [a](b.md#c) and `[not](x)`\n```\n[no](y)\n```\n[d](e)"),
        ["b.md#c", "e"]
    );
    let slugs = anchors("# Your first plugin\n## `check-rate`, limits\n");
    assert!(slugs.contains("your-first-plugin"), "{slugs:?}");
    assert!(slugs.contains("check-rate-limits"), "{slugs:?}");
}

#[test]
fn the_rust_example_of_the_plugin_guide_is_the_template() {
    let guide = std::fs::read_to_string(root().join("docs/plugins.md")).expect("plugins.md");
    for template in ["rust_lib.rs", "rust_Cargo.toml"] {
        let text = std::fs::read_to_string(root().join("src/plugin/templates").join(template))
            .expect("template");
        assert!(
            guide.contains(&text.replace("{{name}}", "hello")),
            "docs/plugins.md no longer shows src/plugin/templates/{template} as `new` writes it"
        );
    }
}

/// The `href` and `src` targets of `html`.
fn html_links(html: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        for rest in html.split(attribute).skip(1) {
            if let Some(end) = rest.find('"') {
                found.push(&rest[..end]);
            }
        }
    }
    found
}

/// The built book (`make docs`, which `make test` runs first): every
/// relative link of every page names a file of the book, and every
/// `#anchor` an id of that page, as mdBook made them.
#[test]
fn every_link_of_the_built_book_resolves() {
    let book = root().join("target/book");
    assert!(
        book.join("index.html").is_file(),
        "no built book in {}: run `make docs` first",
        book.display()
    );
    let mut problems = Vec::new();
    let mut pages = 0;
    for entry in std::fs::read_dir(&book).expect("target/book") {
        let page = entry.expect("entry").path();
        if page.extension().is_none_or(|e| e != "html") || page.ends_with("404.html") {
            continue;
        }
        pages += 1;
        let html = std::fs::read_to_string(&page).expect("a page");
        for link in html_links(&html) {
            let external = [
                "http://",
                "https://",
                "mailto:",
                "javascript:",
                "data:",
                "/",
            ];
            if link.is_empty() || external.iter().any(|p| link.starts_with(p)) {
                continue;
            }
            let (path, anchor) = link.split_once('#').unwrap_or((link, ""));
            let path = path.split('?').next().unwrap_or_default();
            let target = if path.is_empty() {
                page.clone()
            } else {
                book.join(path)
            };
            let target = if target.is_dir() {
                target.join("index.html")
            } else {
                target
            };
            if !target.is_file() {
                problems.push(format!("{}: `{link}`: no such file", page.display()));
                continue;
            }
            if !anchor.is_empty() {
                let text = std::fs::read_to_string(&target).unwrap_or_default();
                if !text.contains(&format!("id=\"{anchor}\"")) {
                    problems.push(format!("{}: `{link}`: no such anchor", page.display()));
                }
            }
        }
    }
    assert!(pages >= 10, "only {pages} pages in {}", book.display());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
