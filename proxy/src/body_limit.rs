//! The largest request body the node forwards (`--max-body-mb`, 0 for no
//! limit). A declared `Content-Length` over it is answered 413
//! `payload_too_large` before any of the body is read; a body without one
//! (chunked, h2) is counted as it streams and cut at the limit: 413 when
//! no response has started, else the connection is dropped. Bodies are
//! streamed, never buffered, so memory stays bounded either way.

use pingora::http::RequestHeader;
use pingora::prelude::*;

/// The error type a streamed body over the limit fails with (mapped to
/// 413 by [`crate::respond::for_error`]).
pub const TOO_LARGE: ErrorType = ErrorType::Custom("payload_too_large");

/// The body limit, in bytes (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(Option<u64>);

impl BodyLimit {
    /// A limit of `mb` MiB; 0 is no limit.
    pub fn from_mb(mb: u64) -> Self {
        Self((mb > 0).then(|| mb.saturating_mul(1 << 20)))
    }

    /// Whether the request declares a body longer than the limit.
    pub fn declared_too_large(self, header: &RequestHeader) -> bool {
        let Some(limit) = self.0 else { return false };
        header
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|length| length > limit)
    }

    /// Counts `chunk` into `seen`; an error once the body passes the limit.
    pub fn count(self, seen: &mut u64, chunk: usize) -> Result<()> {
        *seen = seen.saturating_add(chunk as u64);
        match self.0 {
            Some(limit) if *seen > limit => {
                let mut error = Error::explain(
                    TOO_LARGE,
                    format!("request body over the {limit}-byte limit"),
                );
                error.esource = ErrorSource::Downstream;
                Err(error)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(length: Option<&str>) -> RequestHeader {
        let mut header = RequestHeader::build("POST", b"/", None).expect("header");
        if let Some(length) = length {
            header
                .insert_header("content-length", length)
                .expect("header");
        }
        header
    }

    #[test]
    fn declared_lengths_over_the_limit_are_refused() {
        let limit = BodyLimit::from_mb(1);
        assert!(!limit.declared_too_large(&request(Some("1048576"))));
        assert!(limit.declared_too_large(&request(Some("1048577"))));
        assert!(!limit.declared_too_large(&request(None)));
        assert!(!BodyLimit::from_mb(0).declared_too_large(&request(Some("99999999999"))));
    }

    #[test]
    fn streamed_bodies_are_cut_at_the_limit() {
        let limit = BodyLimit::from_mb(1);
        let mut seen = 0;
        assert!(limit.count(&mut seen, 1 << 20).is_ok());
        let error = limit.count(&mut seen, 1).expect_err("over");
        assert_eq!(error.etype(), &TOO_LARGE);
        assert_eq!(error.esource(), &ErrorSource::Downstream);
        let mut seen = 0;
        assert!(BodyLimit::from_mb(0).count(&mut seen, usize::MAX).is_ok());
    }
}
