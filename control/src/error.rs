//! The control plane's one error type and its JSON shape:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::is_unique_violation;

/// `Result` with [`ApiError`] as the default error.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the input failed validation; `field` names the culprit.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        field: Option<Cow<'static, str>>,
    },
    /// 401: no token, a bad token, or bad credentials.
    #[error("{1}")]
    Unauthorized(&'static str, &'static str),
    /// 403: a valid token used on another tenant's resources.
    #[error("this token does not grant access to that tenant")]
    Forbidden,
    /// 403: a `read` automation token used for a write.
    #[error("this automation token is read-only: it may only GET")]
    ReadOnlyToken,
    /// 403: an automation token used to make or revoke tokens.
    #[error(
        "automation tokens are made and revoked with a session token (log in), not another automation token"
    )]
    SessionOnly,
    /// 404: unknown (or other tenant's, or soft-deleted) id or path.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 405: the path exists, the method does not.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// 409: the entity would clash with an existing one.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 412: `If-Match` names a config digest that is no longer current.
    #[error("the config changed since it was read (its ETag is now \"{0}\"): read it again")]
    PreconditionFailed(String),
    /// 413: the request body is over the limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415: the body is not JSON.
    #[error("expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    /// 429: throttled; retry after the given seconds.
    #[error("too many attempts; retry in {0} s")]
    Throttled(u64),
    /// 503: the database is unreachable right now.
    #[error("the database is unavailable; retry shortly")]
    Unavailable,
    /// 500: logged with the request id, answered without details.
    #[error("internal error: {0}")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 400 for `field` with a human-readable reason.
    pub fn invalid(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::Invalid {
            code: "validation_failed",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// The same error with its field named inside `item` (`routes[3]` makes
    /// `pathPattern` `routes[3].pathPattern`; no field becomes `item`).
    pub fn within(self, item: &str) -> Self {
        match self {
            Self::Invalid {
                code,
                message,
                field,
            } => Self::Invalid {
                code,
                message,
                field: Some(Cow::Owned(match field {
                    Some(field) => format!("{item}.{field}"),
                    None => item.to_owned(),
                })),
            },
            other => other,
        }
    }

    /// The same error about `field` instead of the field it named.
    pub fn at(self, field: String) -> Self {
        match self {
            Self::Invalid { code, message, .. } => Self::Invalid {
                code,
                message,
                field: Some(Cow::Owned(field)),
            },
            other => other,
        }
    }

    /// A 400 that is not about one field (malformed JSON, bad query).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A 409 with a code and a reason.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(..) => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::ReadOnlyToken | Self::SessionOnly => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. } | Self::Conflict { code, .. } => code,
            Self::Unauthorized(code, _) => code,
            Self::Forbidden | Self::ReadOnlyToken | Self::SessionOnly => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PreconditionFailed(_) => "precondition_failed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Throttled(_) => "rate_limited",
            Self::Unavailable => "database_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
}

/// The error JSON every endpoint answers with.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for machines (`code`) and people (`message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code, e.g. `validation_failed`.
    pub code: String,
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(err) => {
                // The request id is on the span the tracing layer opened.
                tracing::error!(error = ?err, "request failed");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        let field = match &self {
            Self::Invalid { field, .. } => field.as_deref().map(str::to_owned),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
                field,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::Throttled(seconds) = self
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if database_away(&err) {
            tracing::warn!(error = %err, "database unavailable");
            return Self::Unavailable;
        }
        Self::Internal(err.into())
    }
}

/// Whether `err` says the database is away rather than the request wrong:
/// no connection to be had, or PostgreSQL shutting down or starting
/// (SQLSTATE 57P01-57P03) or its connection lost (class 08).
fn database_away(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")),
        _ => false,
    }
}

/// Turns a unique-constraint violation into a 409 with `code` and `message`;
/// any other database error stays what it is.
pub fn conflict_on_unique(
    code: &'static str,
    message: &'static str,
) -> impl FnOnce(sqlx::Error) -> ApiError {
    move |err| {
        if is_unique_violation(&err) {
            ApiError::conflict(code, message)
        } else {
            err.into()
        }
    }
}
