//! The tenant console (`console/`, built by `scripts/console.sh`) at `/`,
//! embedded in the binary. It is a single-page app: any page address a
//! browser asks for (`/logs?statusCode=500`, `/reset-password`) gets its
//! `index.html`, which routes in the browser. API clients asking for an
//! unknown path still get the API's JSON 404. A binary built before the
//! console says how to build it.

use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::embedded::{self, Site};
use crate::error::ApiError;

mod files {
    include!(concat!(env!("OUT_DIR"), "/console.rs"));
}

/// The console's files, by path under `/`.
pub const CONSOLE: Site = Site {
    files: files::CONSOLE,
    immutable: content_named,
};

/// What `/` answers when the binary was built without the console.
const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>Gatehouse</title>\
<h1>The console is not built into this binary</h1>\
<p>Run <code>scripts/console.sh</code> (it installs Node.js from Debian's packages \
when missing) or <code>make dev</code>, then build Gatehouse again. Everything the \
console does, the REST API does: see <a href=\"/docs/\">the documentation</a> and \
<a href=\"/api/openapi.json\">/api/openapi.json</a>.</p>";

/// Paths the console never answers: the API's, the book's and the nodes'.
const NOT_CONSOLE: [&str; 4] = ["/api/", "/docs", "/gateway", "/healthz"];

/// The router's fallback: a console file or page, else the API's 404.
pub async fn fallback(request: Request) -> Response {
    answer(&CONSOLE, &request)
}

fn answer(console: &Site, request: &Request) -> Response {
    let path = request.uri().path();
    let readable = matches!(*request.method(), Method::GET | Method::HEAD);
    if !readable || NOT_CONSOLE.iter().any(|prefix| path.starts_with(prefix)) {
        return ApiError::NotFound("path").into_response();
    }
    let name = path.trim_start_matches('/');
    if let Some(file) = console.serve(name).filter(|_| !name.is_empty()) {
        return file;
    }
    if !wants_page(request) {
        return ApiError::NotFound("path").into_response();
    }
    console
        .serve("index.html")
        .unwrap_or_else(|| embedded::html(StatusCode::OK, NOT_BUILT.as_bytes()))
}

/// A browser navigating (it asks for HTML), not a script or a missing asset.
fn wants_page(request: &Request) -> bool {
    let path = request.uri().path();
    let is_asset = path.starts_with("/assets/")
        || path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains('.'));
    !is_asset
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// Vite names what it bundles by content, under `assets/`: those never
/// change under their name. `index.html` is checked each time.
fn content_named(name: &str) -> bool {
    name.starts_with("assets/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn get(path: &str, accept: &str) -> Request {
        Request::builder()
            .uri(path)
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .expect("request")
    }

    #[tokio::test]
    async fn pages_get_the_console_and_scripts_the_apis_404() {
        let page = fallback(get("/logs?statusCode=500", "text/html,*/*")).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
        for (path, accept) in [
            ("/logs", "*/*"),
            ("/api/tenants/x/nothing", "text/html"),
            ("/assets/missing-abc.js", "text/html"),
            ("/favicon-missing.ico", "text/html"),
        ] {
            let answer = fallback(get(path, accept)).await;
            assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
        }
        assert!(CONSOLE.files.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[tokio::test]
    async fn a_binary_without_the_console_says_how_to_build_it() {
        let unbuilt = Site {
            files: &[],
            immutable: content_named,
        };
        let page = answer(&unbuilt, &get("/", "text/html"));
        assert_eq!(page.status(), StatusCode::OK);
        let body = axum::body::to_bytes(page.into_body(), 1 << 20)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("scripts/console.sh"), "{text}");
    }
}
