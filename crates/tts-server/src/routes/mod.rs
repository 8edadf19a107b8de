//! The HTTP surface: one file per endpoint, assembled into one router here.

pub mod batch;
pub mod cache;
pub mod health;
pub mod openai;
pub mod playground;
pub mod sse;
pub mod stream;
pub mod tts;
pub mod usage;
pub mod voices;
pub mod ws;

use axum::routing::{get, post};
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/tts", post(tts::synthesize))
        .route("/v1/tts/stream", post(stream::stream))
        .route("/v1/tts/sse", post(sse::sse))
        .route("/v1/tts/ws", get(ws::websocket))
        .route("/v1/audio/speech", post(openai::speech))
        .merge(voices::routes(&state))
        .route("/v1/models", get(voices::list_models))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .route("/v1/usage", get(usage::usage))
        .route("/v1/batch", post(batch::create))
        .route("/v1/batch/{id}", get(batch::status))
        .route("/v1/cache/stats", get(cache::stats))
        .route("/v1/cache", axum::routing::delete(cache::purge))
        .route("/v1/audio/{key}", get(cache::audio))
        .merge(playground::routes())
        .fallback(not_found)
        .route_layer(axum::middleware::from_fn(crate::metrics::track_requests))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::NotFound
}
