//! `POST /v1/tts/stream`: chunked transfer of one continuous file, each sentence's audio flushed as
//! soon as it is encoded (first sentence first).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;

use super::tts::{header_value, TtsRequest, X_REQUEST_ID, X_SAMPLE_RATE};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::speech::{AudioStream, RequestContext, StreamEvent};
use crate::state::AppState;

/// Stream the audio of a text sentence by sentence as one continuous file.
#[utoipa::path(
    post,
    path = "/v1/tts/stream",
    tag = "tts",
    request_body = TtsRequest,
    responses(
        (status = 200, description = "Chunked audio; one valid file when complete", content_type = "audio/mpeg"),
        (status = 400, description = "Invalid request; the field is named", body = ErrorBody),
        (status = 503, description = "Queue full (Retry-After)", body = ErrorBody),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TtsRequest>,
) -> Result<Response, ApiError> {
    let params = state.validate(body.input(state.config.max_text_chars))?;
    let ctx = RequestContext::new("/v1/tts/stream");
    let (audio, cache_status, cache_key) = state.stream_cached(&params, &ctx).await?;
    let mut response = audio_response(audio, &ctx);
    cache_headers(&mut response, cache_status, cache_key);
    Ok(response)
}

/// `X-Cache` and `X-Cache-Key` on a response.
pub fn cache_headers(response: &mut Response, status: crate::cache::CacheStatus, key: String) {
    let headers = response.headers_mut();
    headers.insert(
        crate::cache::X_CACHE,
        HeaderValue::from_static(status.as_str()),
    );
    headers.insert(crate::cache::X_CACHE_KEY, header_value(key));
}

/// A chunked response of the stream's audio. A failure mid-stream aborts the body, so the client
/// sees a broken transfer instead of a silently short file.
pub fn audio_response(audio: AudioStream, ctx: &RequestContext) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(audio.format.content_type()),
    );
    headers.insert(X_SAMPLE_RATE, HeaderValue::from(audio.sample_rate));
    headers.insert(X_REQUEST_ID, header_value(ctx.id.clone()));
    // Reverse proxies must pass chunks through instead of buffering the whole answer.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    let body = audio.filter_map(|event| async move {
        match event {
            StreamEvent::Audio(bytes) => Some(Ok::<Bytes, std::io::Error>(bytes)),
            StreamEvent::Sentence(_) | StreamEvent::Done(_) => None,
            StreamEvent::Failed(err) => Some(Err(std::io::Error::other(err.to_string()))),
        }
    });
    (headers, Body::from_stream(body)).into_response()
}
