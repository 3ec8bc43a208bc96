//! The guard on every `/api/tenants/{tenantId}/...` endpoint: a valid tenant
//! JWT (401 otherwise) whose subject is the tenant in the path (403
//! otherwise) and whose generation is the tenant's current one (401
//! `token_revoked` after a password reset: read from the database, so every
//! replica refuses it at once).

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::secrets::constant_time_eq;
use crate::state::AppState;

/// The authenticated tenant whose resources the request is about.
#[derive(Debug, Clone)]
pub struct TenantAuth {
    pub tenant_id: String,
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
        let claims = state.jwt().verify(token).ok_or(ApiError::Unauthorized(
            "invalid_token",
            "the token is invalid or expired",
        ))?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Forbidden)?;
        let path_tenant = params
            .iter()
            .find(|(name, _)| *name == "tenantId")
            .map(|(_, value)| value)
            .ok_or(ApiError::Forbidden)?;
        if !constant_time_eq(path_tenant, &claims.sub) {
            return Err(ApiError::Forbidden);
        }
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
        Ok(Self {
            tenant_id: claims.sub,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    gatehouse_protocol::key_prefix::bearer_token(headers.get(AUTHORIZATION)?.to_str().ok()?)
}
