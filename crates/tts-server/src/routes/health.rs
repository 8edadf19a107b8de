//! Liveness, readiness, Prometheus metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use utoipa::OpenApi;

use crate::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "Alive")))]
pub async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: models loaded and not shutting down.
#[utoipa::path(get, path = "/ready", tag = "health", responses(
    (status = 200, description = "Ready"),
    (status = 503, description = "Loading or shutting down"),
))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let models = state.registry().models().len();
    let queue_depth = state.speech.engine().queue_depth();
    if state.is_ready() {
        (
            StatusCode::OK,
            Json(json!({ "status": "ready", "models": models, "queue_depth": queue_depth })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready" })),
        )
    }
}

/// Prometheus text exposition; every metric is prefixed `tts_`.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus metrics", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::metrics::set_queue_depth(state.speech.engine().queue_depth());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// This API's OpenAPI 3 document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI document")))]
pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::ApiDoc::openapi())
}
