//! Extractors that answer bad input with the error JSON instead of axum's
//! plain-text rejections: JSON bodies, query strings and entity ids in
//! paths; and the client's address, as `--trusted-proxies` has it.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;

/// The client of a request: the socket's peer, or the client a trusted
/// proxy names in `X-Forwarded-For`.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

impl FromRequestParts<crate::state::AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip())
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no peer address")))?;
        let forwarded_for = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        Ok(Self(state.trusted_proxies().client_ip(peer, forwarded_for)))
    }
}

/// The largest JSON body the API reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body in or out. Reading it, malformed JSON and wrong types are 400, a missing
/// content type 415, an oversized body 413, a string holding a NUL character
/// 400 (no database stores one in text: PostgreSQL refuses it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| json_rejection(rejection.into()))?;
        if has_nul_escape(&bytes) {
            return Err(ApiError::bad_request(
                "validation_failed",
                "text may not contain NUL (\\u0000) characters",
            ));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Whether the content type is JSON (`application/json`, or `+json`).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether JSON text holds a `\u0000` escape (a NUL in a string; raw
/// control characters are not valid JSON anyway). An escaped backslash
/// before `u0000` is text, not an escape: the backslashes are counted.
fn has_nul_escape(json: &[u8]) -> bool {
    json.windows(5)
        .enumerate()
        .filter(|(_, w)| w == b"u0000")
        .any(|(at, _)| {
            let backslashes = json[..at].iter().rev().take_while(|&&b| b == b'\\').count();
            backslashes % 2 == 1
        })
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A body that could not be read (413 when too large) or decoded (the
/// content type is checked before: `is_json`).
fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(err) => {
            ApiError::bad_request("validation_failed", serde_reason(&err.body_text()))
        }
        JsonRejection::JsonSyntaxError(err) => {
            ApiError::bad_request("malformed_json", serde_reason(&err.body_text()))
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(MAX_BODY_BYTES)
        }
        other => ApiError::bad_request("bad_request", other.body_text()),
    }
}

/// axum prefixes serde's reason with its own sentence; keep serde's part.
fn serde_reason(text: &str) -> String {
    text.split_once(": ")
        .map_or(text, |(_, reason)| reason)
        .to_owned()
}

/// A query string; anything that does not parse, or decodes to a NUL
/// character, is 400 `invalid_query`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        if query.contains("%00") || query.contains('\0') {
            return Err(ApiError::bad_request(
                "invalid_query",
                "the query may not contain NUL (%00) characters",
            ));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::bad_request("invalid_query", serde_reason(&rejection.body_text()))
            })
    }
}

/// The `{id}` of an entity path, as a canonical UUID string. Anything that is
/// not a UUID cannot name an entity, so it is a 404 like any unknown id.
#[derive(Debug, Clone)]
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound("entity"))?;
        params
            .iter()
            .find(|(name, _)| *name == "id")
            .and_then(|(_, value)| Uuid::parse_str(value).ok())
            .map(|id| Self(id.to_string()))
            .ok_or(ApiError::NotFound("entity"))
    }
}

/// Deserializes a field that may be absent (`None`), `null`
/// (`Some(None)`) or a value (`Some(Some(v))`), for partial updates.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nul_escapes_but_not_escaped_backslashes() {
        assert!(has_nul_escape(br#"{"name":"a\u0000b"}"#));
        assert!(has_nul_escape(br#"{"name":"\u0000"}"#));
        assert!(!has_nul_escape(br#"{"name":"\\u0000"}"#));
        assert!(has_nul_escape(br#"{"name":"\\\u0000"}"#));
        assert!(!has_nul_escape(br#"{"name":"u0000"}"#));
    }
}
