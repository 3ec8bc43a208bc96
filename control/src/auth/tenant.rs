//! The guard on every `/api/tenants/{tenantId}/...` endpoint: a valid tenant
//! JWT (401 otherwise) whose subject is the tenant in the path (403
//! otherwise) and whose generation is the tenant's current one (401
//! `token_revoked` after a password reset: read from the database, so every
//! replica refuses it at once), or a live automation token (`gt_...`) of
//! that tenant, whose `read` scope allows GET and HEAD only (403), and
//! the dry runs of endpoints that take a [`DryRunAuth`].

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

/// Who a request's bearer token says it is, before any path is checked.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: String,
    pub scope: Scope,
    /// The automation token, when one (not a session JWT) was presented.
    pub token: Option<api_tokens::Presented>,
}

impl Caller {
    /// 401 unless the request carries a live session JWT or automation
    /// token.
    async fn identify(headers: &HeaderMap, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(headers).ok_or(ApiError::Unauthorized(
            "missing_token",
            "send a tenant token in Authorization: Bearer <token>",
        ))?;
        if !token.starts_with(API_TOKEN_PREFIX) {
            return Ok(Self {
                tenant_id: session_tenant(state, token).await?,
                scope: Scope::Write,
                token: None,
            });
        }
        let presented = api_tokens::authenticate(state.store(), token)
            .await?
            .ok_or(ApiError::Unauthorized(
                "invalid_token",
                "the automation token is unknown or revoked",
            ))?;
        Ok(Self {
            tenant_id: presented.tenant_id.clone(),
            scope: presented.scope,
            token: Some(presented),
        })
    }

    /// Notes the automation token's use, once the request is accepted.
    async fn accepted(&self, state: &AppState) {
        if let Some(token) = &self.token {
            api_tokens::touch(state.store(), token).await;
        }
    }
}

/// A caller on a path of no tenant (`/api/auth/whoami`): any live token,
/// whatever its scope.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Self::identify(&parts.headers, state).await?;
        caller.accepted(state).await;
        Ok(caller)
    }
}

impl FromRequestParts<AppState> for TenantAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        admit(parts, state, false).await
    }
}

/// A caller of the path's tenant, for an endpoint whose dry run
/// (`?dryRun=true`) is a read (`PUT .../config`): a `read` token may make
/// dry runs, and is refused (403) anything else, as by [`TenantAuth`].
#[derive(Debug, Clone)]
pub struct DryRunAuth(pub TenantAuth);

impl FromRequestParts<AppState> for DryRunAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        admit(parts, state, true).await.map(Self)
    }
}

/// The caller, if of the path's tenant (403 otherwise) and within its
/// scope (403 otherwise; a dry run counts as a read when
/// `dry_run_is_read`); its token's use is noted only then.
async fn admit(
    parts: &mut Parts,
    state: &AppState,
    dry_run_is_read: bool,
) -> Result<TenantAuth, ApiError> {
    let caller = Caller::identify(&parts.headers, state).await?;
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::Forbidden)?;
    let path_tenant = params
        .iter()
        .find(|(name, _)| *name == "tenantId")
        .map(|(_, value)| value)
        .ok_or(ApiError::Forbidden)?;
    if !constant_time_eq(path_tenant, &caller.tenant_id) {
        return Err(ApiError::Forbidden);
    }
    let read = dry_run_is_read && asks_dry_run(&parts.uri);
    if !read && !caller.scope.allows(&parts.method) {
        return Err(ApiError::ReadOnlyToken);
    }
    caller.accepted(state).await;
    Ok(TenantAuth {
        session: caller.token.is_none(),
        tenant_id: caller.tenant_id,
    })
}

/// Whether the query says `dryRun=true` (a query that does not parse says
/// nothing: the handler's own extractor refuses it).
fn asks_dry_run(uri: &axum::http::Uri) -> bool {
    #[derive(serde::Deserialize)]
    struct DryRun {
        #[serde(default, rename = "dryRun")]
        dry_run: bool,
    }
    axum::extract::Query::<DryRun>::try_from_uri(uri).is_ok_and(|query| query.0.dry_run)
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
