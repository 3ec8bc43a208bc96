//! The tenant console (`console/`, built by `scripts/console.sh`) at `/`,
//! embedded in the binary. It is a single-page app: any page address a
//! browser asks for (`/logs?statusCode=500`, `/reset-password`) gets its
//! `index.html`, which routes in the browser. `/` is the console whoever
//! asks; for any other unknown path, API clients (which do not ask for
//! HTML) still get the API's JSON 404. A binary built before the console
//! says how to build it.

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

/// Paths the console never answers: the API's (nodes connect under it too),
/// the book's and the health check's.
const NOT_CONSOLE: [&str; 3] = ["/api/", "/docs", "/healthz"];

/// What every answer of the console carries: its scripts and styles come
/// from this origin only, no other site may frame it, and no address it
/// shows (a reset link's) leaks in a `Referer`. The token it keeps in
/// `sessionStorage` is worth an attacker's script: none may run.
const SECURITY_HEADERS: [(header::HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// The router's fallback: a console file or page, else the API's 404.
pub async fn fallback(request: Request) -> Response {
    let mut response = answer(&CONSOLE, &request);
    if response.status() != StatusCode::NOT_FOUND {
        response.headers_mut().extend(
            SECURITY_HEADERS
                .iter()
                .map(|(name, value)| (name.clone(), header::HeaderValue::from_static(value))),
        );
    }
    response
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
    // `/` is the console whoever asks; a deeper page only for a browser.
    if !name.is_empty() && !wants_page(request) {
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

    /// A console as `build.rs` would list it.
    const BUILT: Site = Site {
        files: &[
            ("assets/index-B1ObVNZv.js", b"console.log(1)"),
            ("index.html", b"<!doctype html><div id=\"root\"></div>"),
        ],
        immutable: content_named,
    };

    fn get(path: &str, accept: &str) -> Request {
        Request::builder()
            .uri(path)
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .expect("request")
    }

    async fn text(response: Response) -> String {
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        String::from_utf8_lossy(&body).into_owned()
    }

    #[tokio::test]
    async fn pages_get_the_console_and_scripts_the_apis_404() {
        for (path, accept) in [("/logs?statusCode=500", "text/html,*/*"), ("/", "*/*")] {
            let page = answer(&BUILT, &get(path, accept));
            assert_eq!(page.status(), StatusCode::OK, "{path}");
            assert_eq!(
                page.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
            assert!(text(page).await.contains("id=\"root\""));
        }
        let asset = answer(&BUILT, &get("/assets/index-B1ObVNZv.js", "*/*"));
        assert_eq!(
            asset.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            asset.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        for (path, accept) in [
            ("/logs", "*/*"),
            ("/api/tenants/x/nothing", "text/html"),
            ("/api/gateway/connect", "text/html"),
            ("/assets/missing-abc.js", "text/html"),
            ("/favicon-missing.ico", "text/html"),
        ] {
            let answer = answer(&BUILT, &get(path, accept));
            assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
        }
        assert!(CONSOLE.files.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[tokio::test]
    async fn the_console_forbids_foreign_scripts_and_frames() {
        let page = fallback(get("/", "text/html")).await;
        let policy = page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"));
        assert_eq!(page.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let missing = fallback(get("/api/nothing", "*/*")).await;
        assert!(
            !missing
                .headers()
                .contains_key(header::CONTENT_SECURITY_POLICY)
        );
    }

    #[tokio::test]
    async fn a_binary_without_the_console_says_how_to_build_it() {
        let unbuilt = Site {
            files: &[],
            immutable: content_named,
        };
        let page = answer(&unbuilt, &get("/", "*/*"));
        assert_eq!(page.status(), StatusCode::OK);
        assert!(text(page).await.contains("scripts/console.sh"));
    }
}
