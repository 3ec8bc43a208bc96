//! Tenant accounts: register, login, forgot-password and reset-password,
//! and `whoami`, which says whose a token is.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::passwords;
use crate::auth::tenant::Caller;
use crate::error::{ApiError, Result, conflict_on_unique};
use crate::extract::{ClientIp, Json};
use crate::secrets::{self, GATEWAY_KEY_PREFIX};
use crate::state::AppState;
use crate::store::{Store, Timestamp};
use crate::{tiers, validate};

/// How long a password-reset token is valid.
pub const RESET_TOKEN_TTL_MS: i64 = 60 * 60 * 1000;

/// Body of `POST /api/auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub name: String,
    pub email: String,
    pub password: String,
}

/// A new tenant: its token, id and gateway key (shown this once).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub token: String,
    pub tenant_id: String,
    pub gateway_api_key: String,
}

/// Body of `POST /api/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
}

/// A token for the tenant that logged in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggedIn {
    pub token: String,
    pub tenant_id: String,
}

/// Body of `POST /api/auth/forgot-password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPassword {
    pub email: String,
}

/// Body of `POST /api/auth/reset-password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    pub token: String,
    pub password: String,
}

/// Whose a token is: what a client holding an opaque automation token
/// (or a JWT it does not decode) learns its tenant from.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    pub tenant_id: String,
    /// `session` (register's or login's JWT) or `automation` (`gt_...`).
    pub kind: &'static str,
    /// `read` or `write` (a session token is always `write`).
    pub scope: &'static str,
    /// The automation token's name; absent for a session token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
}

/// A human-readable confirmation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub message: String,
}

/// The auth endpoints (no token needed, but for `whoami`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(whoami))
}

/// Whose the presented token is: its tenant, kind and scope.
#[utoipa::path(get, path = "/api/auth/whoami", tag = "auth",
    responses((status = 200, body = WhoAmI), (status = 401, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        tenant_id: caller.tenant_id,
        kind: if caller.token.is_some() {
            "automation"
        } else {
            "session"
        },
        scope: caller.scope.as_str(),
        token_name: caller.token.map(|token| token.name),
    })
}

/// A tenant created through [`create_tenant`].
#[derive(Debug)]
pub struct NewTenant {
    pub tenant_id: String,
    pub gateway_key: String,
}

/// Creates a tenant with a fresh gateway key. 409 when the email is taken.
pub async fn create_tenant(
    store: &Store,
    name: &str,
    email: &str,
    password: &str,
) -> Result<NewTenant> {
    let name = validate::name("name", name)?;
    let email = normalize_email(email)?;
    passwords::validate("password", password)?;
    let password_hash = passwords::hash(password.to_owned()).await?;
    let key = secrets::generate(GATEWAY_KEY_PREFIX);
    let tenant_id = Uuid::new_v4().to_string();
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "INSERT INTO tenants (id, name, email, password_hash, gateway_key_hash, \
         gateway_key_prefix, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&tenant_id)
    .bind(name)
    .bind(email)
    .bind(password_hash)
    .bind(&key.hash)
    .bind(&key.display_prefix)
    .bind(Timestamp::now())
    .execute(&mut *tx)
    .await
    .map_err(conflict_on_unique(
        "email_taken",
        "an account with this email already exists",
    ))?;
    tiers::insert_defaults(&mut tx, &tenant_id).await?;
    // Its empty config at version 0 is one a delta can start from.
    sqlx::query("INSERT INTO config_history (tenant_id, version, revision) VALUES ($1, 0, '')")
        .bind(&tenant_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(NewTenant {
        tenant_id,
        gateway_key: key.plaintext,
    })
}

/// Create a new tenant account.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = Register,
    responses((status = 201, body = Registered), (status = 409, body = crate::error::ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    Json(body): Json<Register>,
) -> Result<(StatusCode, Json<Registered>)> {
    let tenant = create_tenant(state.store(), &body.name, &body.email, &body.password).await?;
    let token = issue_token(&state, &tenant.tenant_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            token,
            tenant_id: tenant.tenant_id,
            gateway_api_key: tenant.gateway_key,
        }),
    ))
}

/// Authenticate with email and password.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = LoggedIn), (status = 401, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Json(body): Json<Login>,
) -> Result<Json<LoggedIn>> {
    let email = body.email.trim().to_lowercase();
    let ip = client.to_string();
    let (store, throttles) = (state.store(), state.throttles());
    // The address first: a client it already refuses must not go on
    // counting failures against someone else's email and lock them out.
    throttles
        .per_ip
        .attempt(store, &ip)
        .await?
        .map_err(ApiError::Throttled)?;
    throttles
        .per_email
        .attempt(store, &email)
        .await?
        .map_err(ApiError::Throttled)?;
    let found: Option<(String, String, i64)> =
        sqlx::query_as("SELECT id, password_hash, token_generation FROM tenants WHERE email = $1")
            .bind(&email)
            .fetch_optional(state.store().pool())
            .await?;
    let (tenant, hash) = match found {
        Some((id, hash, generation)) => (Some((id, generation)), hash),
        None => (None, passwords::decoy_hash().await.to_owned()),
    };
    let matches = passwords::verify(body.password, hash).await?;
    match tenant {
        Some((tenant_id, generation)) if matches => {
            throttles.per_email.reset(store, &email).await?;
            throttles.per_ip.forgive(store, &ip).await?;
            let token = sign(&state, &tenant_id, generation)?;
            Ok(Json(LoggedIn { token, tenant_id }))
        }
        _ => {
            // Both counted already, as attempts.
            Err(ApiError::Unauthorized(
                "invalid_credentials",
                "email or password is wrong",
            ))
        }
    }
}

/// Send a password reset email. Always answers 200.
#[utoipa::path(post, path = "/api/auth/forgot-password", tag = "auth", request_body = ForgotPassword,
    responses((status = 200, body = Message)))]
async fn forgot_password(
    State(state): State<AppState>,
    Json(body): Json<ForgotPassword>,
) -> Result<Json<Message>> {
    let email = body.email.trim().to_lowercase();
    // Requests for one address are throttled silently: the answer must not
    // tell whether the account exists, nor let anyone flood a mailbox.
    let (store, throttle) = (state.store(), &state.throttles().per_email);
    let key = format!("reset:{email}");
    if throttle.attempt(store, &key).await?.is_ok() {
        let found: Option<(String,)> = sqlx::query_as("SELECT id FROM tenants WHERE email = $1")
            .bind(&email)
            .fetch_optional(state.store().pool())
            .await?;
        if let Some((tenant_id,)) = found {
            let token = secrets::generate("");
            let now = Timestamp::now();
            sqlx::query(
                "INSERT INTO password_resets (id, tenant_id, token_hash, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(Uuid::new_v4().to_string())
            .bind(&tenant_id)
            .bind(&token.hash)
            .bind(now.add_millis(RESET_TOKEN_TTL_MS))
            .bind(now)
            .execute(state.store().pool())
            .await?;
            let mailer = state.mailer().clone();
            let body = reset_mail(state.public_url(), &token.plaintext);
            tokio::spawn(async move {
                if let Err(err) = mailer
                    .send(&email, "Reset your Gatehouse password", body)
                    .await
                {
                    tracing::error!(error = %err, "password reset mail not sent");
                }
            });
        }
    }
    Ok(Json(Message {
        message: "if an account exists for this email, a reset link is on its way".to_owned(),
    }))
}

/// The reset mail: a link to the console's reset page, and the token for
/// scripts. The token is in the link's fragment, which browsers never send
/// to a server (nor in a `Referer`).
fn reset_mail(public_url: &str, token: &str) -> String {
    format!(
        "Someone asked to reset the password of your Gatehouse account.\n\n\
         Choose a new password in the console (the link works for one hour, once):\n\n    \
         {public_url}/reset-password#token={token}\n\n\
         From a script, send this reset token with the new password to\n\
         POST /api/auth/reset-password as {{\"token\": \"...\", \"password\": \"...\"}}:\n\n    \
         {token}\n\n\
         If this was not you, ignore this mail: your password is unchanged.\n"
    )
}

/// Reset the password with the token from the email.
#[utoipa::path(post, path = "/api/auth/reset-password", tag = "auth", request_body = ResetPassword,
    responses((status = 200, body = Message), (status = 400, body = crate::error::ErrorBody)))]
async fn reset_password(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Json(body): Json<ResetPassword>,
) -> Result<Json<Message>> {
    let ip = format!("reset:{client}");
    let (store, throttle) = (state.store(), &state.throttles().per_ip);
    throttle
        .attempt(store, &ip)
        .await?
        .map_err(ApiError::Throttled)?;
    passwords::validate("password", &body.password)?;
    let invalid = || ApiError::invalid("token", "the reset token is unknown, used or expired");
    let now = Timestamp::now();
    let found: Option<(String, String)> = sqlx::query_as(
        "SELECT id, tenant_id FROM password_resets \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(secrets::sha256_hex(body.token.trim()))
    .bind(now)
    .fetch_optional(state.store().pool())
    .await?;
    let Some((reset_id, tenant_id)) = found else {
        // Counted already, as an attempt.
        return Err(invalid());
    };
    let password_hash = passwords::hash(body.password).await?;
    let mut tx = state.store().begin_write().await?;
    // Claiming the token in the same statement that checks it keeps it
    // single-use even when two resets race.
    let claimed =
        sqlx::query("UPDATE password_resets SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(&reset_id)
            .execute(&mut *tx)
            .await?;
    if claimed.rows_affected() == 0 {
        return Err(invalid());
    }
    sqlx::query("UPDATE password_resets SET used_at = $1 WHERE tenant_id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(&tenant_id)
        .execute(&mut *tx)
        .await?;
    // Every session token issued before the reset stops working.
    sqlx::query(
        "UPDATE tenants SET password_hash = $1, updated_at = $2, \
         token_generation = token_generation + 1 WHERE id = $3",
    )
    .bind(password_hash)
    .bind(now)
    .bind(&tenant_id)
    .execute(&mut *tx)
    .await?;
    // Automation tokens too: one minted by whoever held the account must
    // not outlive the reset that locks them out.
    sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(&tenant_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    throttle.forgive(store, &ip).await?;
    Ok(Json(Message {
        message: "password changed; log in with the new password".to_owned(),
    }))
}

/// A fresh token for `tenant_id`, of its current token generation.
pub async fn issue_token(state: &AppState, tenant_id: &str) -> Result<String> {
    let (generation,): (i64,) =
        sqlx::query_as("SELECT token_generation FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(state.store().pool())
            .await?;
    sign(state, tenant_id, generation)
}

fn sign(state: &AppState, tenant_id: &str, generation: i64) -> Result<String> {
    state
        .jwt()
        .issue(tenant_id, generation)
        .map_err(|err| ApiError::Internal(err.into()))
}

/// A trimmed, lowercased, syntactically valid email address.
fn normalize_email(raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
        return Err(ApiError::invalid("email", "must be a valid email address"));
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email(" Ada@Example.COM ").ok().as_deref(),
            Some("ada@example.com")
        );
        for bad in ["", "ada", "ada@", "@example.com", "a b@example.com"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }
}
