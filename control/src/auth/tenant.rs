//! The guard on every `/api/tenants/{tenantId}/...` endpoint: a valid tenant
//! JWT (401 otherwise) whose subject is the tenant in the path (403
//! otherwise) and whose generation is the tenant's current one (401
//! `token_revoked` after a password reset: read from the database, so every
//! replica refuses it at once), or a live automation token (`gt_...`) of
//! that tenant, whose `read` scope allows GET and HEAD only (403).

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::api_tokens::{self, API_TOKEN_PREFIX, Scope};
use crate::error::ApiError;
use crate::secrets::constant_time_eq;
use crate::state::AppState;

/// The authenticated tenant whose resources the request is about.
#[derive(Debug, Clone)]
pub struct TenantAuth {
    pub tenant_id: String,
    /// Whether a session token (not an automation token) authenticated it.
    pub session: bool,
}

impl TenantAuth {
    /// 403 unless a session token authenticated the request.
    pub fn require_session(&self) -> Result<(), ApiError> {
        if self.session {
            Ok(())
        } else {
            Err(ApiError::SessionOnly)
        }
    }
}

impl FromRequestParts<AppState> for TenantAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthorized(
            "missing_token",
            "send a tenant token in Authorization: Bearer <token>",
        ))?;
        let presented = if token.starts_with(API_TOKEN_PREFIX) {
            Some(
                api_tokens::authenticate(state.store(), token)
                    .await?
                    .ok_or(ApiError::Unauthorized(
                        "invalid_token",
                        "the automation token is unknown or revoked",
                    ))?,
            )
        } else {
            None
        };
        let (tenant_id, scope) = match &presented {
            Some(token) => (token.tenant_id.clone(), token.scope),
            None => (session_tenant(state, token).await?, Scope::Write),
        };
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Forbidden)?;
        let path_tenant = params
            .iter()
            .find(|(name, _)| *name == "tenantId")
            .map(|(_, value)| value)
            .ok_or(ApiError::Forbidden)?;
        if !constant_time_eq(path_tenant, &tenant_id) {
            return Err(ApiError::Forbidden);
        }
        if !scope.allows(&parts.method) {
            return Err(ApiError::ReadOnlyToken);
        }
        if let Some(token) = &presented {
            api_tokens::touch(state.store(), token).await;
        }
        Ok(Self {
            tenant_id,
            session: presented.is_none(),
        })
    }
}

/// The tenant of a session JWT (register's or login's), checked to be of
/// the tenant's current generation.
async fn session_tenant(state: &AppState, token: &str) -> Result<String, ApiError> {
    let claims = state.jwt().verify(token).ok_or(ApiError::Unauthorized(
        "invalid_token",
        "the token is invalid or expired",
    ))?;
    let generation: Option<(i64,)> =
        sqlx::query_as("SELECT token_generation FROM tenants WHERE id = $1")
            .bind(&claims.sub)
            .fetch_optional(state.store().pool())
            .await?;
    match generation {
        Some((current,)) if current == claims.generation => {}
        Some(_) => {
            return Err(ApiError::Unauthorized(
                "token_revoked",
                "the password was reset after this token was issued; log in again",
            ));
        }
        None => {
            return Err(ApiError::Unauthorized(
                "invalid_token",
                "the token is invalid or expired",
            ));
        }
    }
    Ok(claims.sub)
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    gatehouse_protocol::key_prefix::bearer_token(headers.get(AUTHORIZATION)?.to_str().ok()?)
}
