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
            request_timeout_secs: 120.0,
            shutdown_grace_secs: 30.0,
            max_text_chars: 5_000,
            openai_max_text_chars: 4_096,
            default_voice: None,
            sentence_fade_ms: 5.0,
            sentence_pause_ms: 150.0,
            openai_voices: BTreeMap::new(),
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
    }

    #[test]
    fn unknown_key_in_toml_is_an_error() {
        assert!(toml::from_str::<ServerConfig>("wrokers = 3").is_err());
    }
}
