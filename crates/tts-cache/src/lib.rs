//! `tts-cache`: never synthesize the same audio twice.
//!
//! A request's audio is stored under a content address ([`CacheKey`], sha256 over everything that
//! changes the bytes) in up to three tiers, looked up in order: process memory ([`memory`], `moka`,
//! byte-budgeted with a TTL), local disk ([`disk`], files plus a `redb` index, checksummed, evicted
//! by LRU or cost) and an optional Redis shared by replicas ([`remote`]). Identical requests in
//! flight at once share one synthesis ([`coalesce`]); across replicas a short Redis lock elects
//! the one that synthesizes. [`TieredCache`] ties them together and keeps the counters.

pub mod coalesce;
pub mod disk;
#[cfg(test)]
mod fixtures;
pub mod key;
pub mod memory;
pub mod remote;
mod tiered;

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use coalesce::{
    Coalescer, FlightAborted, FlightError, FlightEvent, FlightReader, FlightWriter, Joined,
};
pub use disk::{DiskStore, EvictionPolicy};
pub use key::{CacheKey, KeyInput, CACHE_FORMAT_VERSION};
pub use remote::{
    FlightPublisher, LockGuard, RedisConfig, RedisTier, RemoteEvent, RemoteFlight, RemoteLock,
    StreamClaim,
};
pub use tiered::{CacheConfig, CacheStats, Tier, TierStats, TieredCache};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("invalid cache key {0:?}: expected 64 hex characters")]
    InvalidKey(String),
    #[error("cache I/O on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Boxed: redb's error is large and would bloat every `Result` here.
    #[error("cache index: {0}")]
    Index(Box<redb::Error>),
    #[error("cache record: {0}")]
    Record(#[from] serde_json::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    RedisTimeout(std::time::Duration),
    #[error("redis is not connected")]
    RedisDown,
    #[error("cache task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl From<redb::Error> for CacheError {
    fn from(err: redb::Error) -> Self {
        Self::Index(Box::new(err))
    }
}

impl CacheError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What is known about a stored file besides its bytes: enough to answer a request without
/// synthesizing (headers, summaries) and to account for what the hit saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// `mp3`, `wav`, …
    pub format: String,
    pub content_type: String,
    pub sample_rate: u32,
    /// Voice id as requested (blends included); purge by voice matches it and its components.
    pub voice_id: String,
    pub characters: u64,
    pub sentences: u64,
    pub audio_seconds: f64,
    /// Wall time the synthesis took: what each hit saves.
    pub synth_seconds: f64,
}

impl EntryMeta {
    /// True when this entry was spoken by `voice` (alone or as part of a blend).
    pub fn uses_voice(&self, voice: &str) -> bool {
        self.voice_id == voice
            || self
                .voice_id
                .split('+')
                .any(|part| part.split('(').next().unwrap_or(part).trim() == voice)
    }
}

/// One cached file; cheap to clone.
#[derive(Debug, Clone)]
pub struct CachedAudio {
    pub bytes: Bytes,
    pub meta: Arc<EntryMeta>,
}

impl CachedAudio {
    pub fn new(bytes: impl Into<Bytes>, meta: EntryMeta) -> Self {
        Self {
            bytes: bytes.into(),
            meta: Arc::new(meta),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_entries_belong_to_each_component_voice() {
        let meta = EntryMeta {
            format: "mp3".into(),
            content_type: "audio/mpeg".into(),
            sample_rate: 24_000,
            voice_id: "jf_alpha(2)+jm_kumo(1)".into(),
            characters: 5,
            sentences: 1,
            audio_seconds: 1.0,
            synth_seconds: 0.5,
        };
        assert!(meta.uses_voice("jm_kumo"));
        assert!(meta.uses_voice("jf_alpha"));
        assert!(!meta.uses_voice("jf_gongitsune"));
    }
}
