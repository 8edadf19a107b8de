//! What a caller asks for and what comes back with the audio: the request body shared by
//! `/v1/tts`, `/v1/tts/stream` and `/v1/tts/sse`, and the response headers worth reading.

use bytes::Bytes;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use serde::Serialize;

/// Body of `/v1/tts`, `/v1/tts/stream` and `/v1/tts/sse`. Unset fields take the server's defaults.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SpeechRequest {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `wav`, `mp3` (server default), `opus`, `flac`, `pcm` (s16le) or `mulaw`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<f32>,
    /// Bitrate in kbps (mp3, opus).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize_loudness: Option<bool>,
}

impl SpeechRequest {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    pub fn voice(mut self, voice: impl Into<String>) -> Self {
        self.voice = Some(voice.into());
        self
    }

    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    pub fn format(mut self, format: impl Into<String>) -> Self {
        self.format = Some(format.into());
        self
    }

    pub fn sample_rate(mut self, hz: u32) -> Self {
        self.sample_rate = Some(hz);
        self
    }

    pub fn speed(mut self, speed: f32) -> Self {
        self.speed = Some(speed);
        self
    }
}

/// Response headers of an audio answer. Fields are `None` when the server did not send them
/// (streams have no duration header; `X-Cache` exists only where the cache is wired in).
#[derive(Debug, Clone, Default)]
pub struct AudioInfo {
    pub content_type: Option<String>,
    pub sample_rate: Option<u32>,
    /// `X-Audio-Duration`, seconds.
    pub audio_seconds: Option<f64>,
    /// `X-RTF`, the server's real-time factor.
    pub rtf: Option<f64>,
    pub request_id: Option<String>,
    /// `X-Cache`: `hit-memory`, `hit-disk`, `hit-redis`, `miss`, `coalesced`.
    pub cache: Option<String>,
    /// Every header, for anything not parsed above.
    pub headers: HeaderMap,
}

impl AudioInfo {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Self {
            content_type: text(CONTENT_TYPE.as_str()),
            sample_rate: text("x-sample-rate").and_then(|v| v.parse().ok()),
            audio_seconds: text("x-audio-duration").and_then(|v| v.parse().ok()),
            rtf: text("x-rtf").and_then(|v| v.parse().ok()),
            request_id: text("x-request-id"),
            cache: text("x-cache"),
            headers: headers.clone(),
        }
    }

    /// Whether the server answered from its cache (any `hit-*` tier).
    pub fn is_cache_hit(&self) -> bool {
        self.cache.as_deref().is_some_and(|c| c.starts_with("hit"))
    }
}

/// A whole synthesized file.
#[derive(Debug, Clone)]
pub struct Synthesis {
    pub audio: Bytes,
    pub info: AudioInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_fields_are_left_out_of_the_json() {
        let body = serde_json::to_value(SpeechRequest::new("Hi.").voice("v")).unwrap();
        assert_eq!(body, serde_json::json!({"text": "Hi.", "voice": "v"}));
    }

    #[test]
    fn audio_headers_are_parsed() {
        let mut headers = HeaderMap::new();
        headers.insert("x-audio-duration", "1.250".parse().unwrap());
        headers.insert("x-cache", "hit-disk".parse().unwrap());
        headers.insert("x-sample-rate", "22050".parse().unwrap());
        let info = AudioInfo::from_headers(&headers);
        assert_eq!(info.audio_seconds, Some(1.25));
        assert_eq!(info.sample_rate, Some(22050));
        assert!(info.is_cache_hit());
    }
}
