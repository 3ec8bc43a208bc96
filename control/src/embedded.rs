//! Sites embedded in the binary at build time (the book and the console;
//! see `control/build.rs`): lookup by path, media types and cache headers,
//! so they work offline and behind firewalls with nothing beside the binary.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded site: its files by path, sorted (as `build.rs` writes them).
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub files: &'static [(&'static str, &'static [u8])],
    /// Whether a file's name says its content never changes under it.
    pub immutable: fn(&str) -> bool,
}

impl Site {
    /// Whether the site was built into this binary.
    pub fn is_built(&self) -> bool {
        !self.files.is_empty()
    }

    /// The file at `name`, if the site has it.
    pub fn file(&self, name: &str) -> Option<&'static [u8]> {
        self.files
            .binary_search_by(|(file, _)| (*file).cmp(name))
            .ok()
            .map(|at| self.files[at].1)
    }

    /// The file at `name` as an answer, with its media type and caching.
    pub fn serve(&self, name: &str) -> Option<Response> {
        let bytes = self.file(name)?;
        let cache = if (self.immutable)(name) {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        Some(
            (
                [
                    (header::CONTENT_TYPE, content_type(name)),
                    (header::CACHE_CONTROL, cache),
                ],
                bytes,
            )
                .into_response(),
        )
    }
}

/// An HTML page with `status` (a site's 404 page, or ours saying a site is
/// not built).
pub fn html(status: StatusCode, page: &'static [u8]) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

/// The media type of a site's file, by extension.
pub fn content_type(name: &str) -> &'static str {
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
    fn media_types_follow_the_extension() {
        assert_eq!(content_type("css/chrome.css"), "text/css; charset=utf-8");
        assert_eq!(
            content_type("getting-started.sh"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type("assets/index-BZx3k9aQ.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("blob"), "application/octet-stream");
    }
}
