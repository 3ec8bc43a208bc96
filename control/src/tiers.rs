//! Rate-limit tiers: each tenant names its tiers (requests per minute, or
//! unlimited) and the per-IP limit of anonymous traffic. Consumers pick a
//! tier; nodes enforce them. Endpoints, validation and queries.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, FromRow};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantAuth;
use crate::error::{ApiError, Result};
use crate::extract::Json;
use crate::gateway::ConfigWrite;
use crate::state::AppState;
use crate::store::Store;

/// The tiers every tenant starts with.
pub const DEFAULT_TIERS: [(&str, Option<i64>); 4] = [
    ("free", Some(60)),
    ("pro", Some(600)),
    ("enterprise", Some(6000)),
    ("unlimited", None),
];
/// The highest limit accepted, per minute.
pub const MAX_PER_MINUTE: i64 = gatehouse_protocol::MAX_REQUESTS_PER_MINUTE as i64;
const MAX_TIERS: usize = 100;

/// One tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromRow, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tier {
    /// Lowercase letters, digits, `-` and `_`, at most 40.
    pub name: String,
    /// Requests per minute; `null` is unlimited.
    pub requests_per_minute: Option<i64>,
}

/// A tenant's tiers and its anonymous limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TierSettings {
    pub tiers: Vec<Tier>,
    /// Requests per minute per client IP on routes without auth; `null` is
    /// unlimited.
    pub anonymous_requests_per_minute: Option<i64>,
}

/// The tier endpoints.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_tiers, put_tiers))
}

/// The tenant's rate-limit tiers.
#[utoipa::path(get, path = "/api/tenants/{tenantId}/rate-limit-tiers", tag = "rate limits",
    params(("tenantId" = String, Path)),
    responses((status = 200, body = TierSettings)),
    security(("jwt" = [])))]
async fn get_tiers(State(state): State<AppState>, auth: TenantAuth) -> Result<Json<TierSettings>> {
    Ok(Json(load(state.store(), &auth.tenant_id).await?))
}

/// Replace the tenant's tiers. A tier that live consumers use cannot go (409).
#[utoipa::path(put, path = "/api/tenants/{tenantId}/rate-limit-tiers", tag = "rate limits",
    params(("tenantId" = String, Path)), request_body = TierSettings,
    responses((status = 200, body = TierSettings), (status = 400, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn put_tiers(
    State(state): State<AppState>,
    auth: TenantAuth,
    Json(body): Json<TierSettings>,
) -> Result<Json<TierSettings>> {
    validate(&body)?;
    let mut tx = ConfigWrite::begin(&state, &auth.tenant_id).await?;
    let in_use: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT rate_limit_tier FROM consumers WHERE tenant_id = $1 AND revoked_at IS NULL",
    )
    .bind(&auth.tenant_id)
    .fetch_all(&mut **tx)
    .await?;
    if let Some((missing,)) = in_use
        .iter()
        .find(|(name,)| !body.tiers.iter().any(|t| &t.name == name))
    {
        return Err(ApiError::conflict(
            "tier_in_use",
            format!("tier `{missing}` is used by live consumers; move them to another tier first"),
        ));
    }
    replace(&mut tx, &auth.tenant_id, &body).await?;
    tx.commit().await?;
    Ok(Json(load(state.store(), &auth.tenant_id).await?))
}

/// The tenant's settings, tiers by name.
pub async fn load(store: &Store, tenant_id: &str) -> Result<TierSettings, sqlx::Error> {
    let mut conn = store.pool().acquire().await?;
    load_on(&mut conn, tenant_id).await
}

/// [`load`], on `conn` (in a transaction, say).
pub async fn load_on(
    conn: &mut AnyConnection,
    tenant_id: &str,
) -> Result<TierSettings, sqlx::Error> {
    let tiers = sqlx::query_as(
        "SELECT name, requests_per_minute FROM rate_limit_tiers WHERE tenant_id = $1 ORDER BY name",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    let (anonymous,): (Option<i64>,) =
        sqlx::query_as("SELECT anonymous_requests_per_minute FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(&mut *conn)
            .await?;
    Ok(TierSettings {
        tiers,
        anonymous_requests_per_minute: anonymous,
    })
}

/// Replaces the tenant's tiers and anonymous limit with `settings`, on
/// `conn` (a config write that checked no live consumer is left on a tier
/// that goes).
pub async fn replace(
    conn: &mut AnyConnection,
    tenant_id: &str,
    settings: &TierSettings,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM rate_limit_tiers WHERE tenant_id = $1")
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    insert(conn, tenant_id, &settings.tiers).await?;
    sqlx::query("UPDATE tenants SET anonymous_requests_per_minute = $1 WHERE id = $2")
        .bind(settings.anonymous_requests_per_minute)
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Gives a new tenant the default tiers, on `conn`.
pub async fn insert_defaults(conn: &mut AnyConnection, tenant_id: &str) -> Result<(), sqlx::Error> {
    let defaults: Vec<Tier> = DEFAULT_TIERS
        .iter()
        .map(|(name, limit)| Tier {
            name: (*name).to_owned(),
            requests_per_minute: *limit,
        })
        .collect();
    insert(conn, tenant_id, &defaults).await
}

async fn insert(
    conn: &mut AnyConnection,
    tenant_id: &str,
    tiers: &[Tier],
) -> Result<(), sqlx::Error> {
    for tier in tiers {
        sqlx::query("INSERT INTO rate_limit_tiers (tenant_id, name, requests_per_minute) VALUES ($1, $2, $3)")
            .bind(tenant_id)
            .bind(&tier.name)
            .bind(tier.requests_per_minute)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// 400 unless `name` is one of the tenant's tiers.
pub async fn require_tier(conn: &mut AnyConnection, tenant_id: &str, name: &str) -> Result<String> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT name FROM rate_limit_tiers WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id)
            .bind(name)
            .fetch_optional(conn)
            .await?;
    found.map(|(name,)| name).ok_or_else(|| {
        ApiError::invalid(
            "rateLimitTier",
            format!("unknown tier `{name}`; see GET .../rate-limit-tiers"),
        )
    })
}

pub(crate) fn validate(settings: &TierSettings) -> Result<()> {
    if settings.tiers.is_empty() || settings.tiers.len() > MAX_TIERS {
        return Err(ApiError::invalid(
            "tiers",
            format!("between 1 and {MAX_TIERS} tiers"),
        ));
    }
    for (index, tier) in settings.tiers.iter().enumerate() {
        let valid_name = !tier.name.is_empty()
            && tier.name.len() <= 40
            && tier
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_name {
            return Err(ApiError::invalid(
                "tiers",
                format!(
                    "tier name `{}`: lowercase letters, digits, - and _, 1 to 40",
                    tier.name
                ),
            ));
        }
        if settings.tiers[..index].iter().any(|t| t.name == tier.name) {
            return Err(ApiError::invalid(
                "tiers",
                format!("tier `{}` appears twice", tier.name),
            ));
        }
        check_limit("tiers", tier.requests_per_minute)?;
    }
    check_limit(
        "anonymousRequestsPerMinute",
        settings.anonymous_requests_per_minute,
    )
}

fn check_limit(field: &'static str, limit: Option<i64>) -> Result<()> {
    match limit {
        Some(n) if !(1..=MAX_PER_MINUTE).contains(&n) => Err(ApiError::invalid(
            field,
            format!(
                "requests per minute must be between 1 and {MAX_PER_MINUTE}, or null for unlimited"
            ),
        )),
        _ => Ok(()),
    }
}
