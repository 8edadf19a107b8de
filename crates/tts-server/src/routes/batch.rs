//! `POST /v1/batch` (queue many texts for synthesis into the cache) and `GET /v1/batch/{id}`
//! (progress and per-item results with download URLs).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::batch::JobView;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::routes::tts::TtsRequest;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Texts to synthesize (each with the fields of `/v1/tts`), at most `batch_max_items`
    /// (100 by default).
    pub items: Vec<TtsRequest>,
}

/// Queue a batch job.
#[utoipa::path(
    post,
    path = "/v1/batch",
    tag = "batch",
    request_body = BatchRequest,
    responses(
        (status = 202, description = "Job queued; poll GET /v1/batch/{id}", body = JobView),
        (status = 400, description = "No items, too many, or a malformed body", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BatchRequest>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let view = state.batches.submit(&state, caller, body.items).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// A batch job's progress and per-item results.
#[utoipa::path(
    get,
    path = "/v1/batch/{id}",
    tag = "batch",
    params(("id" = String, Path, description = "Job id from POST /v1/batch")),
    responses(
        (status = 200, description = "Progress and items", body = JobView),
        (status = 404, description = "No such job (or another key's)", body = ErrorBody),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.batches.view(&id, &caller)?))
}
