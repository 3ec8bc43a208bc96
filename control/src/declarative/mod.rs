//! Config as a document: `GET /api/tenants/{tenantId}/config` answers the
//! tenant's whole config with its digest as the `ETag`; `PUT` replaces it
//! with a document, all or nothing, in one config write (one new config
//! version, so nodes take the whole change at once), `If-Match` making it
//! conditional (412 when the config changed since it was read). A `PUT`
//! answers the plan it carried out; `?dryRun=true` answers it and changes
//! nothing. `gatehouse export / diff / apply / sync` are built on these.

pub mod document;
pub mod live;
pub mod plan;
pub mod write;

use std::collections::HashSet;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantAuth;
use crate::auth::tenant::DryRunAuth;
use crate::error::{ApiError, Result};
use crate::extract::{Json, Query};
use crate::gateway::ConfigWrite;
use crate::state::AppState;

use document::ConfigDocument;
use live::Live;
use plan::{Action, Change, FieldChange, Kind};
use write::NewConsumerKey;

/// The largest document accepted, as JSON (100,000 consumers fit).
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// Query of `PUT .../config`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutQuery {
    /// Answer the plan without changing anything.
    #[serde(default)]
    pub dry_run: bool,
}

/// How many items a change creates, updates and deletes.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Summary {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
}

/// What a `PUT` changed, or in a dry run would change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigChanges {
    pub dry_run: bool,
    pub changes: Vec<Change>,
    pub summary: Summary,
    /// The config version after the change (unchanged when nothing changed
    /// or in a dry run).
    pub config_version: i64,
    /// The digest of the config after the change (in a dry run, of the
    /// current config): the next `If-Match`.
    pub etag: String,
    /// Consumers created, each with its API key: shown in this answer only.
    pub created_consumers: Vec<NewConsumerKey>,
}

/// The config endpoints.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_config, put_config))
        .layer(DefaultBodyLimit::max(MAX_DOCUMENT_BYTES))
}

/// The tenant's whole config as a document; its digest is the `ETag`.
#[utoipa::path(get, path = "/api/tenants/{tenantId}/config", tag = "config",
    params(("tenantId" = String, Path)),
    responses((status = 200, body = ConfigDocument,
            headers(("ETag" = String, description = "the document's digest, for If-Match"))),
        (status = 409, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn get_config(State(state): State<AppState>, auth: TenantAuth) -> Result<Response> {
    let mut tx = state.store().begin_snapshot().await?;
    let live = live::load(&mut tx, &auth.tenant_id).await?;
    let etag = live.digest();
    Ok(with_etag(Json(live.doc), &etag))
}

/// Replace the tenant's config with a document, in one transaction.
///
/// Items are matched by key: services and consumers by name, routes by
/// method and path pattern. What the document lacks is deleted (consumers
/// revoked); rate limits absent from it stay as they are. Routes name
/// their service and their plugins (`name`, `version`) instead of ids.
/// With `If-Match`, 412 when the config changed since that digest. A
/// dry run (`?dryRun=true`) is a read: `read` tokens may make it.
#[utoipa::path(put, path = "/api/tenants/{tenantId}/config", tag = "config",
    params(("tenantId" = String, Path), PutQuery,
        ("If-Match" = Option<String>, Header, description = "the ETag of the config the document was made from")),
    request_body = ConfigDocument,
    responses((status = 200, body = ConfigChanges),
        (status = 400, body = crate::error::ErrorBody, description = "an invalid item, named in `field` (`routes[3].pathPattern`)"),
        (status = 409, body = crate::error::ErrorBody),
        (status = 412, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody)),
    security(("jwt" = [])))]
async fn put_config(
    State(state): State<AppState>,
    DryRunAuth(auth): DryRunAuth,
    Query(query): Query<PutQuery>,
    headers: HeaderMap,
    body: Result<Json<ConfigDocument>>,
) -> Result<Response> {
    let Json(body) = body.map_err(|err| match err {
        ApiError::PayloadTooLarge(_) => ApiError::PayloadTooLarge(MAX_DOCUMENT_BYTES),
        other => other,
    })?;
    let if_match = if_match(&headers)?;
    let mut desired = body.normalize()?;
    if query.dry_run {
        // A read: no lock is taken, so a dry run never holds up a write.
        let mut tx = state.store().begin_snapshot().await?;
        let live = live::load(&mut tx, &auth.tenant_id).await?;
        let current = live.digest();
        let changes = plan_against(&mut desired, &live, &current, if_match.as_ref(), true)?;
        return Ok(unchanged(changes, &live, current, true));
    }
    let mut tx = ConfigWrite::begin(&state, &auth.tenant_id).await?;
    let live = live::load(&mut tx, &auth.tenant_id).await?;
    let current = live.digest();
    let changes = plan_against(&mut desired, &live, &current, if_match.as_ref(), false)?;
    if changes.is_empty() {
        // Nothing to write: the transaction rolls back, the version stays.
        return Ok(unchanged(changes, &live, current, false));
    }
    let summary = summarize(&changes);
    let created_consumers = write::apply(
        state.store(),
        &mut tx,
        &auth.tenant_id,
        &live,
        &desired,
        &changes,
    )
    .await?;
    let written = live::load(&mut tx, &auth.tenant_id).await?;
    let etag = written.digest();
    let config_version = tx.commit().await?;
    tracing::info!(
        tenant = %auth.tenant_id,
        created = summary.created,
        updated = summary.updated,
        deleted = summary.deleted,
        config_version,
        "config document applied"
    );
    let answer = ConfigChanges {
        dry_run: false,
        changes,
        summary,
        config_version,
        etag: etag.clone(),
        created_consumers,
    };
    Ok(with_etag(Json(answer), &etag))
}

/// The plan from `live` (whose digest is `current`) to `desired` (412 when
/// `if_match` is stale, 400 for a reference the document cannot resolve),
/// with `desired` in key order and its plugin hashes checked and dropped.
fn plan_against(
    desired: &mut ConfigDocument,
    live: &Live,
    current: &str,
    if_match: Option<&IfMatch>,
    dry_run: bool,
) -> Result<Vec<Change>> {
    if let Some(expected) = if_match
        && !expected.matches(current)
    {
        return Err(ApiError::PreconditionFailed(current.to_owned()));
    }
    if desired.rate_limits.is_none() {
        desired.rate_limits.clone_from(&live.doc.rate_limits);
    }
    if let Some(limits) = &desired.rate_limits {
        desired.check_references(limits)?;
    }
    let mut changes = check_plugins(desired, live, dry_run)?;
    desired.sort();
    changes.extend(plan::between(&live.doc, desired));
    Ok(changes)
}

/// The answer of a `PUT` that wrote nothing: a dry run, or a document that
/// is the live config (whose digest is `etag`).
fn unchanged(changes: Vec<Change>, live: &Live, etag: String, dry_run: bool) -> Response {
    let answer = ConfigChanges {
        dry_run,
        summary: summarize(&changes),
        changes,
        config_version: live.version,
        etag: etag.clone(),
        created_consumers: Vec::new(),
    };
    with_etag(Json(answer), &etag)
}

/// The digests an `If-Match` accepts: `*` (any) or a list of strong
/// entity tags.
enum IfMatch {
    Any,
    Tags(Vec<String>),
}

impl IfMatch {
    fn matches(&self, digest: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags
                .iter()
                .any(|tag| crate::secrets::constant_time_eq(tag, digest)),
        }
    }
}

fn if_match(headers: &HeaderMap) -> Result<Option<IfMatch>> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "invalid_if_match",
            "If-Match must be `*` or the quoted ETag of GET .../config",
        )
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(Some(IfMatch::Any));
    }
    let mut tags = Vec::new();
    for tag in text.split(',').map(str::trim) {
        // A weak tag never matches (If-Match compares strongly).
        if tag.starts_with("W/") {
            continue;
        }
        let inner = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .ok_or_else(bad)?;
        tags.push(inner.to_owned());
    }
    Ok(Some(IfMatch::Tags(tags)))
}

fn with_etag(body: impl IntoResponse, digest: &str) -> Response {
    let mut response = body.into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("\"{digest}\"")) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// Checks that the plugins the routes name are stored (with the bytes a
/// given `sha256` says), and drops the hashes: the plan compares plugins
/// by name and version. In a dry run, a plugin not stored yet but given
/// with its hash is one the client will upload; it is answered as such.
fn check_plugins(desired: &mut ConfigDocument, live: &Live, dry_run: bool) -> Result<Vec<Change>> {
    let mut uploads: Vec<Change> = Vec::new();
    let mut planned: HashSet<String> = HashSet::new();
    for (r, route) in desired.routes.iter_mut().enumerate() {
        for (p, plugin) in route.plugins.iter_mut().enumerate() {
            let at = format!("routes[{r}].plugins[{p}]");
            let label = plugin.label();
            let sha256 = plugin.sha256.take();
            match (live.plugins.get(&label), sha256) {
                (Some(stored), Some(sha256)) if stored.sha256 != sha256 => {
                    return Err(ApiError::invalid(
                        format!("{at}.sha256"),
                        format!(
                            "{label} is stored with other bytes (sha256 {}): give this build \
                             another version",
                            stored.sha256
                        ),
                    ));
                }
                (Some(_), _) => {}
                (None, Some(sha256)) if dry_run => {
                    if planned.insert(label.clone()) {
                        uploads.push(Change {
                            action: Action::Create,
                            kind: Kind::Plugin,
                            key: label,
                            fields: vec![FieldChange {
                                field: "sha256".to_owned(),
                                from: serde_json::Value::Null,
                                to: sha256.into(),
                            }],
                        });
                    }
                }
                (None, _) => {
                    return Err(ApiError::invalid(
                        format!("{at}.name"),
                        format!(
                            "no live plugin {label}: upload it first (POST .../plugins), or \
                             give its `path` in the file"
                        ),
                    ));
                }
            }
        }
    }
    Ok(uploads)
}

fn summarize(changes: &[Change]) -> Summary {
    let mut summary = Summary::default();
    for change in changes {
        match change.action {
            Action::Create => summary.created += 1,
            Action::Update => summary.updated += 1,
            Action::Delete => summary.deleted += 1,
        }
    }
    summary
}
