//! Command-line arguments. Every `serve` flag also reads an environment variable, and overrides the
//! TOML file given by `--config`, which overrides the built-in defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{ConfigError, ServerConfig};

#[derive(Debug, Parser)]
#[command(
    name = "tts-server",
    version,
    about = "Self-hosted neural text-to-speech server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API.
    Serve(ServeArgs),
    /// Synthesize one text to a file, without a server.
    Synth(SynthArgs),
    /// Manage API keys (`keys add --name N --role user`).
    Keys(crate::auth::KeysArgs),
    /// Synthesize a file of phrases (one per line) into the cache.
    Pregen(crate::pregen::PregenArgs),
    /// Download the official Kokoro release from the Hugging Face hub (`--features hub`).
    FetchKokoro(crate::fetch::FetchKokoroArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (and `openai_voices`, sentence timing).
    #[arg(long, env = "TTS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TTS_BIND")]
    pub bind: Option<SocketAddr>,
    /// Directory with piper/*.onnx(.json) and kokoro/ [default: ./models].
    #[arg(long, env = "TTS_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// Directory for cache, voices and usage [default: ./storage].
    #[arg(long, env = "TTS_STORAGE_DIR")]
    pub storage_dir: Option<PathBuf>,
    /// Inference worker threads [default: 1].
    #[arg(long, env = "TTS_WORKERS")]
    pub workers: Option<usize>,
    /// Requests waiting for a worker before 503 [default: 32].
    #[arg(long, env = "TTS_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Most sentences of concurrent requests synthesized in one batch; 1 turns batching off [default: 8].
    #[arg(long, env = "TTS_MAX_BATCH_SIZE")]
    pub max_batch_size: Option<usize>,
    /// Milliseconds a worker waits for more sentences to fill a batch [default: 5].
    #[arg(long, env = "TTS_MAX_BATCH_WAIT_MS")]
    pub max_batch_wait_ms: Option<f64>,
    /// Per-request synthesis timeout in seconds [default: 120].
    #[arg(long, env = "TTS_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<f64>,
    /// Text limit of /v1/tts in characters [default: 5000].
    #[arg(long, env = "TTS_MAX_TEXT_CHARS")]
    pub max_text_chars: Option<usize>,
    /// Voice used when a request names none.
    #[arg(long, env = "TTS_DEFAULT_VOICE")]
    pub default_voice: Option<String>,
    /// Device for the models: auto (a GPU when compiled in and present), cpu, cuda:N, metal [default: auto].
    #[arg(long, env = "TTS_DEVICE")]
    pub device: Option<tts_models::device::DeviceChoice>,
    /// Kokoro weight precision: f32, f16 or bf16 (half precision on a GPU only) [default: f32].
    #[arg(long, env = "TTS_DTYPE")]
    pub dtype: Option<tts_models::device::ModelDtype>,
    /// API keys: auto (on unless bound to loopback), on, off [default: auto].
    #[arg(long, env = "TTS_AUTH")]
    pub auth: Option<crate::auth::AuthMode>,
    /// TOML file of API key hashes [default: ./keys.toml].
    #[arg(long, env = "TTS_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,
    /// Audio cache in memory, in MiB; 0 turns it off [default: 256].
    #[arg(long, env = "TTS_CACHE_MEMORY_MB")]
    pub cache_memory_mb: Option<u64>,
    /// Audio cache on disk (`<storage>/cache`), in MiB; 0 turns it off [default: 2048].
    #[arg(long, env = "TTS_CACHE_DISK_MB")]
    pub cache_disk_mb: Option<u64>,
    /// Disk cache eviction: lru or cost-aware [default: lru].
    #[arg(long, env = "TTS_CACHE_POLICY")]
    pub cache_policy: Option<tts_cache::EvictionPolicy>,
    /// Seconds a memory (and Redis) cache entry lives; 0: no limit [default: 86400].
    #[arg(long, env = "TTS_CACHE_TTL_SECS")]
    pub cache_ttl_secs: Option<u64>,
    /// Redis shared by replicas as a third cache tier, e.g. redis://127.0.0.1:6379.
    #[arg(long, env = "TTS_REDIS_URL")]
    pub redis_url: Option<String>,
}

impl ServeArgs {
    /// Defaults, then the file, then flags and environment.
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => ServerConfig::from_toml_file(path)?,
            None => ServerConfig::default(),
        };
        if let Some(bind) = self.bind {
            config.bind = bind;
        }
        if let Some(dir) = self.models_dir {
            config.models_dir = dir;
        }
        if let Some(dir) = self.storage_dir {
            config.storage_dir = dir;
        }
        if let Some(workers) = self.workers {
            config.workers = workers;
        }
        if let Some(capacity) = self.queue_capacity {
            config.queue_capacity = capacity;
        }
        if let Some(size) = self.max_batch_size {
            config.max_batch_size = size;
        }
        if let Some(ms) = self.max_batch_wait_ms {
            config.max_batch_wait_ms = ms;
        }
        if let Some(secs) = self.request_timeout_secs {
            config.request_timeout_secs = secs;
        }
        if let Some(chars) = self.max_text_chars {
            config.max_text_chars = chars;
        }
        if let Some(voice) = self.default_voice {
            config.default_voice = Some(voice);
        }
        if let Some(device) = self.device {
            config.device = device;
        }
        if let Some(dtype) = self.dtype {
            config.dtype = dtype;
        }
        if let Some(auth) = self.auth {
            config.auth = auth;
        }
        if let Some(path) = self.keys_file {
            config.keys_file = path;
        }
        if let Some(mb) = self.cache_memory_mb {
            config.cache_memory_mb = mb;
        }
        if let Some(mb) = self.cache_disk_mb {
            config.cache_disk_mb = mb;
        }
        if let Some(policy) = self.cache_policy {
            config.cache_policy = policy;
        }
        if let Some(secs) = self.cache_ttl_secs {
            config.cache_ttl_secs = secs;
        }
        if let Some(url) = self.redis_url {
            config.redis_url = Some(url);
        }
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    #[arg(long)]
    pub voice: String,
    /// Model id (`piper`, `kokoro`); optional, voice ids are unique.
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub text: String,
    /// Output file; the format comes from the extension (wav, mp3, opus, flac, pcm, ulaw).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, env = "TTS_MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
    #[arg(long, default_value_t = 1.0)]
    pub speed: f32,
    /// Output sample rate; default: the model's.
    #[arg(long)]
    pub sample_rate: Option<u32>,
    /// Device: auto, cpu, cuda:N, metal.
    #[arg(long, env = "TTS_DEVICE", default_value = "auto")]
    pub device: tts_models::device::DeviceChoice,
    /// Kokoro weight precision: f32, f16, bf16 (half precision on a GPU only).
    #[arg(long, env = "TTS_DTYPE", default_value = "f32")]
    pub dtype: tts_models::device::ModelDtype,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_config_file() {
        let path = std::env::temp_dir().join(format!("tts-cli-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "workers = 4\nqueue_capacity = 7\nmax_batch_size = 4\nmax_batch_wait_ms = 2.5\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "tts-server",
            "serve",
            "--config",
            path.to_str().unwrap(),
            "--workers",
            "2",
            "--max-batch-size",
            "1",
        ]);
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        let config = args.into_config();
        std::fs::remove_file(&path).ok();
        let config = config.unwrap();
        assert_eq!(config.workers, 2);
        assert_eq!(config.queue_capacity, 7);
        assert_eq!(config.max_batch_size, 1);
        assert_eq!(config.max_batch_wait_ms, 2.5);
        assert_eq!(
            config.engine().max_batch_wait,
            std::time::Duration::from_micros(2500)
        );
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
    }
}
