//! `AppState`: what every handler shares (Arcs and cheap clones), and request validation against
//! the loaded voices and the configured limits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tts_audio::AudioFormat;
use tts_models::registry::ModelRegistry;

use crate::config::ServerConfig;
use crate::engine::ModelServer;
use crate::error::ApiError;
use crate::speech::{
    SpeechParams, SpeechService, SpeechSettings, BITRATE_RANGE_KBPS, SAMPLE_RATES, SPEED_RANGE,
};

#[derive(Clone)]
pub struct AppState {
    pub speech: SpeechService,
    pub config: Arc<ServerConfig>,
    pub default_voice: Arc<str>,
    pub metrics: PrometheusHandle,
    /// False until models are loaded and again once shutdown starts (`/ready`).
    pub ready: Arc<AtomicBool>,
    /// Cancelled on SIGTERM/SIGINT: long-lived connections (WebSocket) finish and close.
    pub shutdown: CancellationToken,
    /// WebSocket sessions, awaited during shutdown (axum does not track upgraded connections).
    pub sessions: TaskTracker,
    /// API keys and rate limits (off until `build_state` resolves `config.auth`).
    pub auth: Arc<crate::auth::Auth>,
    /// Usage per key and day (in memory until `build_state` opens `<storage_dir>/usage.redb`).
    pub usage: Arc<crate::auth::UsageLedger>,
    /// `POST /v1/batch` jobs.
    pub batches: Arc<crate::batch::BatchJobs>,
    /// Audio cache and request coalescing (memory-only until `build_state` opens the configured tiers).
    pub cache: Arc<crate::cache::AudioCache>,
    /// Uploaded (cloned) voices; read from `<storage_dir>/voices` by `build_state`.
    pub voices: Arc<crate::voice_library::ClonedVoices>,
    /// The config's named blends (registered by `build_state`).
    pub blends: Arc<crate::blends::NamedBlends>,
}

/// The fields of a speech request as received, before validation. Field names differ per route
/// (`text`/`input`, `format`/`response_format`), so errors name the route's own fields.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpeechInput<'a> {
    pub text: &'a str,
    pub text_field: &'static str,
    pub max_chars: usize,
    pub voice: Option<&'a str>,
    pub model: Option<&'a str>,
    pub format: Option<&'a str>,
    pub format_field: &'static str,
    pub default_format: Option<AudioFormat>,
    pub sample_rate: Option<u32>,
    pub speed: Option<f32>,
    pub bitrate: Option<u32>,
    pub normalize_loudness: Option<bool>,
}

impl AppState {
    pub fn new(engine: Arc<ModelServer>, config: ServerConfig, metrics: PrometheusHandle) -> Self {
        let default_voice = pick_default_voice(engine.registry(), config.default_voice.as_deref());
        tracing::info!(voice = %default_voice, "default voice");
        let settings = SpeechSettings {
            timeout: config.request_timeout(),
            fade_ms: config.sentence_fade_ms,
            pause_ms: config.sentence_pause_ms,
        };
        Self {
            speech: SpeechService::new(engine, settings),
            // Before `config` moves into its Arc.
            voices: Arc::new(crate::voice_library::ClonedVoices::new(&config)),
            cache: Arc::new(crate::cache::AudioCache::memory_only(
                config.cache_memory_mb.saturating_mul(1 << 20),
            )),
            config: Arc::new(config),
            default_voice: default_voice.into(),
            metrics,
            ready: Arc::new(AtomicBool::new(true)),
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
            auth: Arc::new(crate::auth::Auth::off()),
            usage: Arc::new(crate::auth::UsageLedger::placeholder()),
            batches: Arc::new(crate::batch::BatchJobs::default()),
            blends: Arc::new(crate::blends::NamedBlends::default()),
        }
    }

    pub fn registry(&self) -> &ModelRegistry {
        self.speech.engine().registry()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Our voice for an OpenAI voice name: the configured mapping, else the name itself when it is
    /// one of ours, else the default voice.
    pub fn openai_voice(&self, name: &str) -> String {
        if let Some(mapped) = self.config.openai_voices.get(name) {
            return mapped.clone();
        }
        if self.registry().has_voice(name) {
            return name.to_string();
        }
        if crate::config::OPENAI_VOICES.contains(&name) {
            return self.default_voice.to_string();
        }
        name.to_string()
    }

    /// Checks every field, naming the first one at fault.
    pub fn validate(&self, input: SpeechInput<'_>) -> Result<SpeechParams, ApiError> {
        let text_field = input.text_field;
        if input.text.trim().is_empty() {
            return Err(ApiError::invalid(
                "empty_text",
                text_field,
                format!("{text_field} is empty"),
            ));
        }
        let chars = input.text.chars().count();
        if chars > input.max_chars {
            return Err(ApiError::invalid(
                "text_too_long",
                text_field,
                format!(
                    "{text_field} has {chars} characters; the limit is {}",
                    input.max_chars
                ),
            ));
        }

        let format = match input.format {
            Some(name) => parse_format(name).ok_or_else(|| {
                ApiError::invalid(
                    "unsupported_format",
                    input.format_field,
                    format!(
                        "unsupported format {name:?}; use one of wav, mp3, opus, flac, pcm, mulaw"
                    ),
                )
            })?,
            None => input.default_format.unwrap_or(AudioFormat::Mp3),
        };

        let speed = input.speed.unwrap_or(1.0);
        if !speed.is_finite() || !SPEED_RANGE.contains(&speed) {
            return Err(ApiError::invalid(
                "invalid_speed",
                "speed",
                format!("speed {speed} is outside 0.25..=4"),
            ));
        }

        if let Some(rate) = input.sample_rate {
            if !SAMPLE_RATES.contains(&rate) {
                return Err(ApiError::invalid(
                    "unsupported_sample_rate",
                    "sample_rate",
                    format!("sample rate {rate} is not one of {SAMPLE_RATES:?}"),
                ));
            }
            // G.711 mu-law is defined at 8 kHz only.
            if format == AudioFormat::Mulaw && rate != 8_000 {
                return Err(ApiError::invalid(
                    "unsupported_sample_rate",
                    "sample_rate",
                    "mulaw is 8000 Hz only",
                ));
            }
        }

        if let Some(bitrate) = input.bitrate {
            if !BITRATE_RANGE_KBPS.contains(&bitrate) {
                return Err(ApiError::invalid(
                    "invalid_bitrate",
                    "bitrate",
                    format!("bitrate {bitrate} kbps is outside 8..=320"),
                ));
            }
        }

        let voice = input.voice.unwrap_or(&self.default_voice).to_string();
        let model = self.registry().resolve(input.model, &voice)?.clone();
        Ok(SpeechParams {
            text: input.text.to_string(),
            voice,
            model,
            format,
            sample_rate: input.sample_rate,
            speed,
            bitrate_kbps: input.bitrate,
            normalize_loudness: input.normalize_loudness.unwrap_or(false),
        })
    }
}

fn parse_format(name: &str) -> Option<AudioFormat> {
    let name = name.trim().to_ascii_lowercase();
    AudioFormat::ALL
        .into_iter()
        .find(|f| f.as_str() == name || (name == "ulaw" && *f == AudioFormat::Mulaw))
}

fn pick_default_voice(registry: &ModelRegistry, configured: Option<&str>) -> String {
    if let Some(voice) = configured {
        if registry.has_voice(voice) {
            return voice.to_string();
        }
        tracing::warn!(
            voice,
            "configured default voice is not loaded; choosing another"
        );
    }
    let voices = registry.voices();
    voices
        .iter()
        .find(|v| v.language.starts_with("en"))
        .or_else(|| voices.first())
        .map(|v| v.id.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_parse_case_insensitively() {
        assert_eq!(parse_format("MP3"), Some(AudioFormat::Mp3));
        assert_eq!(parse_format("ulaw"), Some(AudioFormat::Mulaw));
        assert_eq!(parse_format("aac"), None);
    }
}
