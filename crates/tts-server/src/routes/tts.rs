//! `POST /v1/tts`: the whole file in one response, with duration and RTF headers.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::speech::RequestContext;
use crate::state::{AppState, SpeechInput};

/// Body of `/v1/tts`, `/v1/tts/stream` and `/v1/tts/sse`, and one item of `/v1/batch`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TtsRequest {
    /// Text to speak (at most 5,000 characters by default).
    pub text: String,
    /// Voice id (`en_US-joe-medium`, `jf_alpha`, a Kokoro blend `jf_alpha(2)+jm_kumo(1)`); default: the server's default voice.
    pub voice: Option<String>,
    /// Model id (`piper`, `kokoro`); optional because voice ids are unique.
    pub model: Option<String>,
    /// `wav`, `mp3` (default), `opus`, `flac`, `pcm` (s16le) or `mulaw` (8 kHz).
    pub format: Option<String>,
    /// Output sample rate in Hz (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000); default: the model's.
    pub sample_rate: Option<u32>,
    /// Speaking rate, 0.25 to 4 (default 1).
    pub speed: Option<f32>,
    /// Bitrate in kbps for mp3/opus.
    pub bitrate: Option<u32>,
    /// Normalise to -20 LUFS with a -1 dBTP ceiling.
    pub normalize_loudness: Option<bool>,
}

impl TtsRequest {
    pub fn input(&self, max_chars: usize) -> SpeechInput<'_> {
        SpeechInput {
            text: &self.text,
            text_field: "text",
            max_chars,
            voice: self.voice.as_deref(),
            model: self.model.as_deref(),
            format: self.format.as_deref(),
            format_field: "format",
            default_format: None,
            sample_rate: self.sample_rate,
            speed: self.speed,
            bitrate: self.bitrate,
            normalize_loudness: self.normalize_loudness,
        }
    }
}

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_AUDIO_DURATION: HeaderName = HeaderName::from_static("x-audio-duration");
pub const X_RTF: HeaderName = HeaderName::from_static("x-rtf");
pub const X_SAMPLE_RATE: HeaderName = HeaderName::from_static("x-sample-rate");

/// Synthesize text and return the whole audio file.
#[utoipa::path(
    post,
    path = "/v1/tts",
    tag = "tts",
    request_body = TtsRequest,
    responses(
        (status = 200, description = "Audio file; headers X-Audio-Duration (s), X-RTF, X-Request-Id, X-Sample-Rate", content_type = "audio/mpeg"),
        (status = 400, description = "Invalid request; the field is named", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Queue full (Retry-After)", body = ErrorBody),
        (status = 504, description = "Request timeout", body = ErrorBody),
    )
)]
pub async fn synthesize(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TtsRequest>,
) -> Result<Response, ApiError> {
    let params = state.validate(body.input(state.config.max_text_chars))?;
    let ctx = RequestContext::new("/v1/tts");
    let (file, cache_status, cache_key) = state.synthesize_cached(&params, &ctx).await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        crate::cache::X_CACHE,
        HeaderValue::from_static(cache_status.as_str()),
    );
    headers.insert(crate::cache::X_CACHE_KEY, header_value(cache_key));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.format.content_type()),
    );
    headers.insert(
        X_AUDIO_DURATION,
        header_value(format!("{:.3}", file.summary.audio_seconds)),
    );
    headers.insert(X_RTF, header_value(format!("{:.4}", file.summary.rtf)));
    headers.insert(X_SAMPLE_RATE, HeaderValue::from(file.sample_rate));
    headers.insert(X_REQUEST_ID, header_value(ctx.id));
    Ok((headers, file.bytes).into_response())
}

pub fn header_value(text: String) -> HeaderValue {
    // Only ASCII digits, dots and uuids reach here; an empty value is the harmless fallback.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}
