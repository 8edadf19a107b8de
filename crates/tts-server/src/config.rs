//! Server configuration: built-in defaults, overridden by a TOML file, overridden by flags and
//! environment variables (the `serve` command's arguments, see `main.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::EngineConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing config {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
}

/// Every setting of `tts-server serve`. All fields have defaults, so a TOML file may set any subset.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub models_dir: PathBuf,
    /// Cache, uploaded voices and usage live here (created at start).
    pub storage_dir: PathBuf,
    /// Inference worker threads.
    pub workers: usize,
    /// Requests waiting for a worker before new ones get 503.
    pub queue_capacity: usize,
    /// Seconds a refused client is told to wait (`Retry-After`).
    pub retry_after_secs: u64,
    /// Most sentences of concurrent requests synthesized in one padded batch (1: no batching).
    pub max_batch_size: usize,
    /// Milliseconds a worker waits for more sentences to fill a batch.
    pub max_batch_wait_ms: f64,
    /// A request's synthesis is abandoned after this many seconds.
    pub request_timeout_secs: f64,
    /// Seconds given to in-flight requests on SIGTERM/SIGINT.
    pub shutdown_grace_secs: f64,
    /// Text limit of `/v1/tts*` and the WebSocket, in characters.
    pub max_text_chars: usize,
    /// Text limit of `/v1/audio/speech` (OpenAI's is 4,096).
    pub openai_max_text_chars: usize,
    /// Voice used when a request names none; default: the first English voice, else the first voice.
    pub default_voice: Option<String>,
    /// Fade applied at each sentence's edges so joins never click, in milliseconds.
    pub sentence_fade_ms: f32,
    /// Silence inserted between sentences, in milliseconds.
    pub sentence_pause_ms: f32,
    /// OpenAI voice names (`alloy`, …) → our voice ids; unmapped names use `default_voice`.
    pub openai_voices: BTreeMap<String, String>,
    /// Named blends: voice id → a mix of one model's voices, e.g. `"jf_alpha(2)+jm_kumo(1)"`.
    pub voice_blends: BTreeMap<String, String>,
    /// Device the models run on: `auto` (a GPU when compiled in and present), `cpu`, `cuda:N`, `metal`.
    pub device: tts_models::device::DeviceChoice,
    /// Kokoro's weight precision: `f32`, or `f16`/`bf16` on a GPU.
    pub dtype: tts_models::device::ModelDtype,
    /// API keys: `auto` (on when `bind` is not a loopback address), `on` or `off`.
    pub auth: crate::auth::AuthMode,
    /// TOML file of API keys (SHA-256 hashes only); `tts-server keys add` creates it.
    pub keys_file: PathBuf,
    /// Default per-key rate limit in requests per minute (0: unlimited); a key's own wins.
    pub rate_per_minute: u32,
    /// Requests a key may make at once before the rate applies; default: `rate_per_minute`.
    pub rate_burst: Option<u32>,
    /// Price of synthesizing one million characters, for the usage report's cost estimates.
    pub price_per_million_chars: f64,
    /// Most items one `POST /v1/batch` may hold.
    pub batch_max_items: usize,
    /// Items of all batch jobs synthesized at the same time.
    pub batch_concurrency: usize,
    /// Phrases synthesized into the cache at start-up (strings, or `{ text, voice, format, speed }`).
    pub pregen: Vec<crate::pregen::PregenPhrase>,
    /// Shortest and longest voice sample accepted by `POST /v1/voices`, in seconds of sound.
    pub voice_min_secs: f64,
    pub voice_max_secs: f64,
    /// Largest voice sample upload, in MiB (larger: 413).
    pub voice_upload_max_mb: f64,
    /// Time budget and iteration cap of a voice's style refinement (0 s: the stock-voice blend only).
    pub voice_fit_secs: f32,
    pub voice_fit_iterations: usize,
    /// Audio cache in process memory, in MiB (0: off).
    pub cache_memory_mb: u64,
    /// Audio cache on disk under `<storage_dir>/cache`, in MiB (0: off).
    pub cache_disk_mb: u64,
    /// Disk cache eviction: `lru` or `cost-aware` (keeps entries with most hits per character).
    pub cache_policy: tts_cache::EvictionPolicy,
    /// Memory (and Redis) entries expire after this many seconds (0: never).
    pub cache_ttl_secs: u64,
    /// Redis shared by replicas (`redis://host:6379`); none by default.
    pub redis_url: Option<String>,
    /// Limit of each Redis call in milliseconds; slower calls count as failures.
    pub redis_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            models_dir: PathBuf::from("models"),
            storage_dir: PathBuf::from("storage"),
            workers: 1,
            queue_capacity: 32,
            retry_after_secs: 1,
            max_batch_size: 8,
            max_batch_wait_ms: 5.0,
            request_timeout_secs: 120.0,
            shutdown_grace_secs: 30.0,
            max_text_chars: 5_000,
            openai_max_text_chars: 4_096,
            default_voice: None,
            sentence_fade_ms: 5.0,
            sentence_pause_ms: 150.0,
            openai_voices: BTreeMap::new(),
            voice_blends: BTreeMap::new(),
            device: tts_models::device::DeviceChoice::Auto,
            dtype: tts_models::device::ModelDtype::F32,
            auth: crate::auth::AuthMode::Auto,
            keys_file: PathBuf::from("keys.toml"),
            rate_per_minute: 0,
            rate_burst: None,
            // OpenAI's public tts-1 list price, a reference point operators replace with their own.
            price_per_million_chars: 15.0,
            batch_max_items: 100,
            batch_concurrency: 2,
            pregen: Vec::new(),
            voice_min_secs: 6.0,
            voice_max_secs: 30.0,
            voice_upload_max_mb: 20.0,
            voice_fit_secs: 55.0,
            voice_fit_iterations: 64,
            cache_memory_mb: 256,
            cache_disk_mb: 2_048,
            cache_policy: tts_cache::EvictionPolicy::Lru,
            cache_ttl_secs: 86_400,
            redis_url: None,
            redis_timeout_ms: 250,
        }
    }
}

/// The voice names the OpenAI API accepts; each maps to one of ours.
pub const OPENAI_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];

impl ServerConfig {
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            workers: self.workers.max(1),
            queue_capacity: self.queue_capacity.max(1),
            retry_after: Duration::from_secs(self.retry_after_secs.max(1)),
            max_batch_size: self.max_batch_size.max(1),
            max_batch_wait: Duration::from_secs_f64(self.max_batch_wait_ms.max(0.0) / 1000.0),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_secs.max(0.1))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs_f64(self.shutdown_grace_secs.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_toml_keeps_other_defaults() {
        let config: ServerConfig = toml::from_str(
            "bind = \"0.0.0.0:9000\"\nworkers = 3\n[openai_voices]\nalloy = \"jf_alpha\"\n",
        )
        .unwrap();
        assert_eq!(config.bind.port(), 9000);
        assert_eq!(config.workers, 3);
        assert_eq!(config.max_text_chars, 5_000);
        assert_eq!(config.openai_voices["alloy"], "jf_alpha");
    }

    #[test]
    fn shipped_example_config_parses() {
        let config: ServerConfig =
            toml::from_str(include_str!("../tts-server.example.toml")).unwrap();
        assert_eq!(config.openai_voices["alloy"], "en_US-joe-medium");
        // The TOML-only voice keys are listed with their defaults.
        let defaults = ServerConfig::default();
        assert_eq!(config.voice_min_secs, defaults.voice_min_secs);
        assert_eq!(config.voice_max_secs, defaults.voice_max_secs);
        assert_eq!(config.voice_upload_max_mb, defaults.voice_upload_max_mb);
        assert_eq!(config.voice_fit_secs, defaults.voice_fit_secs);
        assert_eq!(config.voice_fit_iterations, defaults.voice_fit_iterations);
    }

    #[test]
    fn unknown_key_in_toml_is_an_error() {
        assert!(toml::from_str::<ServerConfig>("wrokers = 3").is_err());
    }
}
