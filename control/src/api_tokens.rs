//! Automation tokens: long-lived, revocable, scoped tenant tokens for CI
//! and scripts (`gt_...`), accepted wherever a tenant JWT is. A `read`
//! token may only read (403 on any write); a `write` token may do what a
//! JWT may, except make or revoke tokens (a leaked token must not be able
//! to outlive its revocation by minting another). Shown once, stored as
//! SHA-256, revoked at once on every replica (the check is a database
//! lookup) and by a password reset, with the time of their last use.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantAuth;
use crate::error::{ApiError, Result};
use crate::extract::{Json, PathId};
use crate::secrets;
use crate::state::AppState;
use crate::store::{Store, Timestamp};
use crate::validate;

/// What every automation token starts with (and JWTs never do).
pub const API_TOKEN_PREFIX: &str = "gt_";
/// Live tokens a tenant may hold.
pub const MAX_TOKENS: i64 = 100;
/// A token's last use is written at most this often (not on every request).
const LAST_USED_EVERY_MS: i64 = 60_000;

/// An automation token, without its secret.
#[derive(Debug, Clone, Serialize, ToSchema, FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenEntity {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// `read` or `write`.
    pub scope: String,
    /// The token's first characters, to recognise it.
    pub token_prefix: String,
    pub created_at: Timestamp,
    /// Null until first used; then within a minute of the last use.
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// A new token, with its secret (shown only in this answer).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiToken {
    #[serde(flatten)]
    pub entity: ApiTokenEntity,
    /// `gt_...`: send it as `Authorization: Bearer <token>`.
    pub token: String,
}

/// Body of `POST .../api-tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiToken {
    pub name: String,
    /// `read` (GET only) or `write` (everything a tenant JWT may do).
    pub scope: String,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            _ => None,
        }
    }

    /// `read` or `write`, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    /// Whether a request with `method` is within the scope.
    pub fn allows(self, method: &Method) -> bool {
        self == Self::Write || matches!(*method, Method::GET | Method::HEAD)
    }
}

/// The token endpoints.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// The tenant's live automation tokens, oldest first (no secrets).
#[utoipa::path(get, path = "/api/tenants/{tenantId}/api-tokens", tag = "auth",
    params(("tenantId" = String, Path)),
    responses((status = 200, body = [ApiTokenEntity])),
    security(("jwt" = [])))]
async fn list_tokens(
    State(state): State<AppState>,
    auth: TenantAuth,
) -> Result<Json<Vec<ApiTokenEntity>>> {
    let tokens = sqlx::query_as(
        "SELECT id, tenant_id, name, scope, token_prefix, created_at, last_used_at, revoked_at \
         FROM api_tokens WHERE tenant_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
    )
    .bind(&auth.tenant_id)
    .fetch_all(state.store().pool())
    .await?;
    Ok(Json(tokens))
}

/// Make an automation token; its secret is in this answer only.
#[utoipa::path(post, path = "/api/tenants/{tenantId}/api-tokens", tag = "auth",
    params(("tenantId" = String, Path)), request_body = CreateApiToken,
    responses((status = 201, body = CreatedApiToken), (status = 400, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn create_token(
    State(state): State<AppState>,
    auth: TenantAuth,
    Json(body): Json<CreateApiToken>,
) -> Result<(StatusCode, Json<CreatedApiToken>)> {
    auth.require_session()?;
    let name = validate::name("name", &body.name)?;
    if Scope::parse(&body.scope).is_none() {
        return Err(ApiError::invalid("scope", "must be `read` or `write`"));
    }
    // The count and the insert in one transaction, run one at a time per
    // tenant: two tokens made at once cannot both take the last place.
    let store = state.store();
    let mut tx = store.begin_write().await?;
    store
        .serialize_on(&mut tx, &format!("api-tokens:{}", auth.tenant_id))
        .await?;
    let (live,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM api_tokens WHERE tenant_id = $1 AND revoked_at IS NULL",
    )
    .bind(&auth.tenant_id)
    .fetch_one(&mut *tx)
    .await?;
    if live >= MAX_TOKENS {
        tx.rollback().await?;
        return Err(ApiError::invalid(
            "name",
            format!("a tenant holds at most {MAX_TOKENS} live tokens; revoke one first"),
        ));
    }
    let secret = secrets::generate(API_TOKEN_PREFIX);
    let entity: ApiTokenEntity = sqlx::query_as(
        "INSERT INTO api_tokens (id, tenant_id, name, scope, token_hash, token_prefix, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         RETURNING id, tenant_id, name, scope, token_prefix, created_at, last_used_at, revoked_at",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(&auth.tenant_id)
    .bind(name)
    .bind(&body.scope)
    .bind(&secret.hash)
    .bind(&secret.display_prefix)
    .bind(Timestamp::now())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(
        tenant_id = auth.tenant_id,
        prefix = entity.token_prefix,
        scope = entity.scope,
        "automation token made"
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiToken {
            entity,
            token: secret.plaintext,
        }),
    ))
}

/// Revoke a token: it stops working at once (401).
#[utoipa::path(delete, path = "/api/tenants/{tenantId}/api-tokens/{id}", tag = "auth",
    params(("tenantId" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn revoke_token(
    State(state): State<AppState>,
    auth: TenantAuth,
    PathId(id): PathId,
) -> Result<StatusCode> {
    auth.require_session()?;
    let revoked = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 \
         WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
    )
    .bind(Timestamp::now())
    .bind(&id)
    .bind(&auth.tenant_id)
    .execute(state.store().pool())
    .await?;
    if revoked.rows_affected() == 0 {
        return Err(ApiError::NotFound("api token"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A live automation token, as a request presented it.
#[derive(Debug, Clone)]
pub struct Presented {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub scope: Scope,
    last_used_at: Option<Timestamp>,
}

/// The live token `token` is, or `None` for an unknown or revoked one.
pub async fn authenticate(store: &Store, token: &str) -> Result<Option<Presented>> {
    let found: Option<(String, String, String, String, Option<Timestamp>)> = sqlx::query_as(
        "SELECT id, tenant_id, name, scope, last_used_at FROM api_tokens \
         WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(secrets::sha256_hex(token))
    .fetch_optional(store.pool())
    .await?;
    let Some((id, tenant_id, name, scope, last_used_at)) = found else {
        return Ok(None);
    };
    let scope = Scope::parse(&scope)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("stored token scope `{scope}`")))?;
    Ok(Some(Presented {
        id,
        tenant_id,
        name,
        scope,
        last_used_at,
    }))
}

/// Records that `token` was used for an accepted request, when its last
/// use is more than a minute old. Bookkeeping: a failure is logged, never
/// the request's.
pub async fn touch(store: &Store, token: &Presented) {
    let now = Timestamp::now();
    if token
        .last_used_at
        .is_some_and(|at| now.millis() - at.millis() < LAST_USED_EVERY_MS)
    {
        return;
    }
    let written = sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(&token.id)
        .execute(store.pool())
        .await;
    if let Err(err) = written {
        tracing::warn!(error = %err, token_id = token.id, "token's last use not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_tokens_only_read() {
        assert!(Scope::Read.allows(&Method::GET));
        assert!(Scope::Read.allows(&Method::HEAD));
        for write in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(!Scope::Read.allows(&write), "{write}");
            assert!(Scope::Write.allows(&write), "{write}");
        }
    }
}
