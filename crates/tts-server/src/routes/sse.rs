//! `POST /v1/tts/sse`: Server-Sent Events with OpenAI's event names: `speech.audio.delta` (base64
//! audio) … `speech.audio.done` (usage, duration, RTF); `error` if synthesis fails midway.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::json;

use super::tts::{header_value, TtsRequest, X_REQUEST_ID};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::speech::{AudioStream, RequestContext, StreamEvent};
use crate::state::AppState;

/// Stream audio as Server-Sent Events.
#[utoipa::path(
    post,
    path = "/v1/tts/sse",
    tag = "tts",
    request_body = TtsRequest,
    responses(
        (status = 200, description = "text/event-stream of speech.audio.delta and speech.audio.done", content_type = "text/event-stream"),
        (status = 400, description = "Invalid request; the field is named", body = ErrorBody),
        (status = 503, description = "Queue full (Retry-After)", body = ErrorBody),
    )
)]
pub async fn sse(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TtsRequest>,
) -> Result<Response, ApiError> {
    let params = state.validate(body.input(state.config.max_text_chars))?;
    let ctx = RequestContext::new("/v1/tts/sse");
    let (audio, cache_status, cache_key) = state.stream_cached(&params, &ctx).await?;
    let mut response = sse_response(audio, &ctx);
    super::stream::cache_headers(&mut response, cache_status, cache_key);
    Ok(response)
}

/// The SSE rendering of an audio stream, shared with the OpenAI route.
pub fn sse_response(audio: AudioStream, ctx: &RequestContext) -> Response {
    let format = audio.format.as_str();
    let events = audio.filter_map(move |event| async move {
        let event = match event {
            StreamEvent::Audio(bytes) => json_event(
                "speech.audio.delta",
                json!({
                    "type": "speech.audio.delta",
                    "audio": base64::engine::general_purpose::STANDARD.encode(&bytes),
                }),
            ),
            StreamEvent::Sentence(_) => return None,
            StreamEvent::Done(summary) => json_event(
                "speech.audio.done",
                json!({
                    "type": "speech.audio.done",
                    // OpenAI counts tokens; characters are this server's unit of input.
                    "usage": {
                        "input_tokens": summary.characters,
                        "output_tokens": 0,
                        "total_tokens": summary.characters,
                    },
                    "format": format,
                    "sample_rate": summary.sample_rate,
                    "audio_duration": summary.audio_seconds,
                    "rtf": summary.rtf,
                    "sentences": summary.sentences,
                    "latency_ms": summary.latency_ms,
                }),
            ),
            StreamEvent::Failed(err) => json_event(
                "error",
                json!({ "type": "error", "error": err.body().error }),
            ),
        };
        Some(Ok::<Event, Infallible>(event))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    response
        .headers_mut()
        .insert(X_REQUEST_ID, header_value(ctx.id.clone()));
    response
}

fn json_event(name: &str, data: serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}
