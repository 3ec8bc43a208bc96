//! The book (`docs/`, built by `make docs`) at `/docs/`, and the
//! interactive API reference in it at `/docs/api/` (Swagger UI over
//! `/api/openapi.json`), from files embedded in the binary at build time,
//! so both work offline and behind firewalls. A binary built before the
//! book says how to build it.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::state::AppState;

include!(concat!(env!("OUT_DIR"), "/book.rs"));

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
    if BOOK.is_empty() && is_page {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            NOT_BUILT,
        )
            .into_response();
    }
    let wanted = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path
    };
    // A folder is its index.html, also without the slash (`/docs/api`,
    // whose page names its assets by absolute path for that reason).
    let found = file(&wanted).or_else(|| file(&format!("{wanted}/index.html")));
    let Some((name, bytes)) = found else {
        return match file("404.html") {
            Some((_, bytes)) => (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                *bytes,
            )
                .into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    };
    (
        [
            (header::CONTENT_TYPE, content_type(name)),
            (header::CACHE_CONTROL, cache_control(name)),
        ],
        *bytes,
    )
        .into_response()
}

/// mdBook names its assets by their content (`book-609e4cb8.js`): those
/// never change under their name. Everything else is checked each time.
fn cache_control(name: &str) -> &'static str {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let hashed = stem
        .rsplit_once('-')
        .is_some_and(|(_, hash)| hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    if hashed {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

fn file(name: &str) -> Option<&'static (&'static str, &'static [u8])> {
    BOOK.binary_search_by(|(file, _)| (*file).cmp(name))
        .ok()
        .map(|at| &BOOK[at])
}

/// The media type of the book's files, by extension.
fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "txt" | "md" | "sh" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_books_files_are_sorted_for_lookup() {
        assert!(BOOK.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(content_type("css/chrome.css"), "text/css; charset=utf-8");
        assert_eq!(
            content_type("getting-started.sh"),
            "text/plain; charset=utf-8"
        );
        let forever = "public, max-age=31536000, immutable";
        assert_eq!(cache_control("book-609e4cb8.js"), forever);
        assert_eq!(cache_control("index.html"), "no-cache");
        assert_eq!(cache_control("api/swagger-ui-bundle.js"), "no-cache");
    }
}
