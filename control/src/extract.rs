//! Extractors that answer bad input with the error JSON instead of axum's
//! plain-text rejections: JSON bodies, query strings and entity ids in paths.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;

/// The largest JSON body the API reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body in or out. Reading it, malformed JSON and wrong types are 400, a missing
/// content type 415, an oversized body 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(err) => {
            ApiError::bad_request("validation_failed", serde_reason(&err.body_text()))
        }
        JsonRejection::JsonSyntaxError(err) => {
            ApiError::bad_request("malformed_json", serde_reason(&err.body_text()))
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
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

/// A query string; anything that does not parse is 400 `invalid_query`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
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
