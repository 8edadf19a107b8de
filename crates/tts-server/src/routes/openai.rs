//! `POST /v1/audio/speech`: OpenAI's speech API, so the official SDKs work by changing the base
//! URL. OpenAI voice names map to ours by configuration; `pcm` is 24 kHz s16le as OpenAI sends it.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use serde::Deserialize;
use tts_audio::AudioFormat;
use utoipa::ToSchema;

use super::sse::sse_response;
use super::stream::audio_response;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::speech::RequestContext;
use crate::state::{AppState, SpeechInput};

/// OpenAI's model names; any of them means "the model of the chosen voice".
const OPENAI_MODELS: &[&str] = &[
    "tts-1",
    "tts-1-hd",
    "gpt-4o-mini-tts",
    "gpt-4o-mini-tts-2025-12-15",
];
/// OpenAI's raw PCM is 24 kHz mono s16le.
const OPENAI_PCM_RATE: u32 = 24_000;

/// OpenAI `CreateSpeechRequest`. Unknown fields are ignored, as OpenAI SDKs may send newer ones.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SpeechRequest {
    /// `tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`, or one of ours (`piper`, `kokoro`).
    pub model: String,
    /// Text, at most 4,096 characters.
    pub input: String,
    /// An OpenAI voice (`alloy`, `echo`, …, mapped by configuration), one of ours, or `{"id": "..."}`.
    pub voice: VoiceField,
    /// `mp3` (default), `opus`, `flac`, `wav`, `pcm` (24 kHz s16le); `aac` is not supported.
    pub response_format: Option<String>,
    /// 0.25 to 4 (default 1).
    pub speed: Option<f32>,
    /// `audio` (default: chunked audio) or `sse`.
    pub stream_format: Option<String>,
    /// Accepted for compatibility; these models take no instructions.
    pub instructions: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum VoiceField {
    Name(String),
    Object { id: String },
}

/// OpenAI-compatible speech synthesis.
#[utoipa::path(
    post,
    path = "/v1/audio/speech",
    tag = "openai",
    request_body = SpeechRequest,
    responses(
        (status = 200, description = "Audio (chunked), or text/event-stream when stream_format is sse", content_type = "audio/mpeg"),
        (status = 400, description = "Invalid request; the field is named", body = ErrorBody),
        (status = 503, description = "Queue full (Retry-After)", body = ErrorBody),
    )
)]
pub async fn speech(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SpeechRequest>,
) -> Result<Response, ApiError> {
    let sse = match body.stream_format.as_deref() {
        None | Some("audio") => false,
        Some("sse") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "invalid_stream_format",
                "stream_format",
                format!("stream_format {other:?} is not audio or sse"),
            ))
        }
    };
    let model = if OPENAI_MODELS.contains(&body.model.as_str()) {
        None
    } else {
        Some(body.model.as_str())
    };
    let requested = match &body.voice {
        VoiceField::Name(name) | VoiceField::Object { id: name } => name.as_str(),
    };
    let voice = state.openai_voice(requested);
    let is_pcm = body
        .response_format
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("pcm"));
    let params = state.validate(SpeechInput {
        text: &body.input,
        text_field: "input",
        max_chars: state.config.openai_max_text_chars,
        voice: Some(&voice),
        model,
        format: body.response_format.as_deref(),
        format_field: "response_format",
        default_format: Some(AudioFormat::Mp3),
        sample_rate: is_pcm.then_some(OPENAI_PCM_RATE),
        speed: body.speed,
        bitrate: None,
        normalize_loudness: None,
    })?;

    let ctx = RequestContext::new("/v1/audio/speech");
    let (audio, cache_status, cache_key) = state.stream_cached(&params, &ctx).await?;
    if sse {
        let mut response = sse_response(audio, &ctx);
        super::stream::cache_headers(&mut response, cache_status, cache_key);
        return Ok(response);
    }
    let mut response = audio_response(audio, &ctx);
    super::stream::cache_headers(&mut response, cache_status, cache_key);
    if is_pcm {
        // Players need the rate of headerless PCM.
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("audio/pcm;rate=24000;channels=1"),
        );
    }
    Ok(response)
}
