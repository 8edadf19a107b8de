//! Cache administration and downloads: `GET /v1/cache/stats`, `DELETE /v1/cache` (admin; all
//! entries, or one voice's with `?voice=`), and `GET /v1/audio/{key}` (a stored file by its key,
//! as batch results link to it).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tts_cache::CacheKey;

use crate::auth::Caller;
use crate::cache::{X_CACHE, X_CACHE_KEY};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Entries, bytes and hit rate per tier, and what the cache saved.
#[utoipa::path(
    get,
    path = "/v1/cache/stats",
    tag = "cache",
    responses((status = 200, description = "Cache statistics (JSON)"))
)]
pub async fn stats(State(state): State<AppState>) -> Response {
    Json(state.cache.stats().await).into_response()
}

#[derive(Debug, Deserialize)]
pub struct PurgeQuery {
    /// Only this voice's entries (blends that use it included).
    pub voice: Option<String>,
}

/// Empty the cache, or remove one voice's entries (admin only).
#[utoipa::path(
    delete,
    path = "/v1/cache",
    tag = "cache",
    params(("voice" = Option<String>, Query, description = "Only this voice's entries")),
    responses(
        (status = 200, description = "`{\"removed\": n, \"voice\": ...}`"),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
pub async fn purge(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<PurgeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let Query(query) = query.map_err(|err| ApiError::Invalid {
        code: "invalid_field",
        field: Some("voice".into()),
        message: err.body_text(),
    })?;
    let removed = match query.voice.as_deref() {
        Some(voice) if voice.trim().is_empty() => {
            return Err(ApiError::invalid(
                "invalid_voice",
                "voice",
                "voice is empty",
            ))
        }
        Some(voice) => state.cache.purge_voice(voice.trim()).await,
        None => state.cache.purge_all().await,
    }
    .map_err(|err| ApiError::Internal(format!("purging the cache: {err}")))?;
    tracing::info!(voice = ?query.voice, removed, "cache purged");
    Ok(Json(json!({ "removed": removed, "voice": query.voice })).into_response())
}

/// A cached file by its key (`X-Cache-Key` of a response, or a batch item's `cache_key`).
#[utoipa::path(
    get,
    path = "/v1/audio/{key}",
    tag = "cache",
    params(("key" = String, Path, description = "64 hex characters")),
    responses(
        (status = 200, description = "The stored audio file", content_type = "audio/mpeg"),
        (status = 400, description = "Malformed key", body = ErrorBody),
        (status = 404, description = "Not in the cache", body = ErrorBody),
    )
)]
pub async fn audio(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let key = CacheKey::parse(&key)
        .map_err(|err| ApiError::invalid("invalid_cache_key", "key", err.to_string()))?;
    // Sentence entries are the WebSocket's building blocks, not files anyone asked for.
    let Some((audio, status)) = state
        .cache
        .get(&key)
        .await
        .filter(|(audio, _)| audio.meta.format != crate::cache::SENTENCE_PCM_FORMAT)
    else {
        return Err(ApiError::NotFound);
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&audio.meta.content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(X_CACHE, HeaderValue::from_static(status.as_str()));
    headers.insert(
        X_CACHE_KEY,
        HeaderValue::from_str(key.as_str()).unwrap_or_else(|_| HeaderValue::from_static("")),
    );
    headers.insert(
        super::tts::X_SAMPLE_RATE,
        HeaderValue::from(audio.meta.sample_rate),
    );
    Ok((headers, audio.bytes).into_response())
}
