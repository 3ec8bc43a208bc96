//! The book (`docs/`, built by `make docs`) at `/docs/`, and the
//! interactive API reference in it at `/docs/api/` (Swagger UI over
//! `/api/openapi.json`), embedded in the binary. A binary built before the
//! book says how to build it.

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::embedded::{self, Site};
use crate::state::AppState;

mod files {
    include!(concat!(env!("OUT_DIR"), "/book.rs"));
}

/// The book's files, by path under `/docs/`.
pub const BOOK: Site = Site {
    files: files::BOOK,
    immutable: content_named,
};

/// What `/docs/` answers when the binary was built without the book.
const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>Gatehouse docs</title>\
<h1>The book is not built into this binary</h1>\
<p>Run <code>make docs</code> (it installs mdBook), then build Gatehouse again. \
The same pages are in the repository's <code>docs/</code> folder, and the API is \
described at <a href=\"/api/openapi.json\">/api/openapi.json</a>.</p>";

/// `/docs`, `/docs/` and everything under it.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/docs", get(|| async { Redirect::permanent("/docs/") }))
        .route("/docs/", get(|| page(String::new())))
        .route("/docs/{*path}", get(|Path(path): Path<String>| page(path)))
}

/// The book's file at `path` (a folder's `index.html`), or 404.
async fn page(path: String) -> Response {
    let is_page = path.is_empty() || path.ends_with('/') || path.ends_with(".html");
    if !BOOK.is_built() && is_page {
        return embedded::html(StatusCode::OK, NOT_BUILT.as_bytes());
    }
    let wanted = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path
    };
    // A folder is its index.html, also without the slash (`/docs/api`,
    // whose page names its assets by absolute path for that reason).
    BOOK.serve(&wanted)
        .or_else(|| BOOK.serve(&format!("{wanted}/index.html")))
        .unwrap_or_else(|| match BOOK.file("404.html") {
            Some(bytes) => embedded::html(StatusCode::NOT_FOUND, bytes),
            None => StatusCode::NOT_FOUND.into_response(),
        })
}

/// mdBook names its assets by their content (`book-609e4cb8.js`): those
/// never change under their name. Everything else is checked each time.
fn content_named(name: &str) -> bool {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    stem.rsplit_once('-')
        .is_some_and(|(_, hash)| hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_books_files_are_sorted_for_lookup() {
        assert!(BOOK.files.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(content_named("book-609e4cb8.js"));
        assert!(!content_named("index.html"));
        assert!(!content_named("api/swagger-ui-bundle.js"));
    }
}
