//! The HTTP surface: every domain's router, the OpenAPI document, health,
//! and the layers all requests pass through (request ids, tracing, body
//! limit, JSON errors for unknown paths and methods), and the embedded
//! book and console.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
use crate::state::AppState;
use crate::{
    accounts, api_tokens, book, console, consumers, declarative, error_events, gateway,
    gateway_key, gateway_status, health, logs, metrics, openapi, plugins, routes, services, tiers,
};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every API endpoint, with its OpenAPI description.
pub fn api() -> (Router<AppState>, OpenApi) {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(accounts::router())
        .merge(api_tokens::router())
        .merge(services::router())
        .merge(routes::router())
        .merge(consumers::router())
        .merge(tiers::router())
        .merge(declarative::router())
        .merge(gateway_key::router())
        .merge(plugins::router())
        .merge(logs::router())
        .merge(error_events::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(gateway_status::router())
        .split_for_parts()
}

/// The whole application, ready to serve.
pub fn app(state: AppState) -> Router {
    let (api, document) = api();
    api.merge(gateway::router())
        .merge(book::router())
        .route(
            "/api/openapi.json",
            get(move || async move { Json(document) }),
        )
        .route("/healthz", get(healthz))
        .fallback(console::fallback)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // gzip for whoever asks: the console's bundle goes out at a third
        // of its size (tower-http leaves images and tiny bodies alone).
        .layer(CompressionLayer::new())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let request_id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // The path only: query strings may carry filters users consider private.
                tracing::info_span!("request", method = %request.method(),
                    path = %request.uri().path(), request_id = %request_id)
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// 200 once migrations ran and the database answers; 503 otherwise.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store().ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "health check: database unreachable");
            ApiError::Unavailable.into_response()
        }
    }
}
