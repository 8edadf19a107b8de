//! The server's side of the audio cache: cache keys from validated requests (with digests of the
//! weights that speak each voice), and whole-file and streamed synthesis through the cache and the
//! single-flight coalescer. Routes call [`AppState::synthesize_cached`] or
//! [`AppState::stream_cached`] and put [`CacheStatus::as_str`] in the `X-Cache` header.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use axum::http::HeaderName;
use bytes::Bytes;
use tokio::sync::mpsc;
use tts_audio::Pcm;
use tts_cache::{
    CacheConfig, CacheError, CacheKey, CacheStats, CachedAudio, EntryMeta, FlightAborted,
    FlightError, FlightEvent, FlightPublisher, FlightReader, FlightWriter, Joined, KeyInput,
    LockGuard, RedisConfig, RemoteEvent, RemoteFlight, RemoteLock, StreamClaim, Tier, TieredCache,
};
use tts_models::registry::ModelRegistry;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::speech::{AudioFile, AudioStream, RequestContext, SpeechParams, StreamEvent, Summary};
use crate::state::AppState;

/// The internal format of sentence entries: the model's f32 samples, little endian. Not a
/// format a request can ask for, so these keys never collide with a file's.
pub const SENTENCE_PCM_FORMAT: &str = "sentence-f32le";

pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
pub const X_CACHE_KEY: HeaderName = HeaderName::from_static("x-cache-key");

/// How a response was produced; `as_str` is the `X-Cache` header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    HitMemory,
    HitDisk,
    HitRedis,
    Miss,
    /// Shared the synthesis of an identical request in flight.
    Coalesced,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HitMemory => "hit-memory",
            Self::HitDisk => "hit-disk",
            Self::HitRedis => "hit-redis",
            Self::Miss => "miss",
            Self::Coalesced => "coalesced",
        }
    }

    fn from_tier(tier: Tier) -> Self {
        match tier {
            Tier::Memory => Self::HitMemory,
            Tier::Disk => Self::HitDisk,
            Tier::Redis => Self::HitRedis,
        }
    }
}

/// The tiered cache plus what keys are built from.
pub struct AudioCache {
    tiers: TieredCache,
    /// Voice id → digest of the weight files of the model that speaks it.
    weights: HashMap<String, String>,
    /// Voices added at run time (cloned voices) → digest of their data, set by the voices code.
    voice_digests: RwLock<HashMap<String, String>>,
}

impl AudioCache {
    /// A memory-only cache, used until `with_cache` opens the configured one.
    pub fn memory_only(memory_bytes: u64) -> Self {
        Self {
            tiers: TieredCache::memory_only(memory_bytes, None),
            weights: HashMap::new(),
            voice_digests: RwLock::new(HashMap::new()),
        }
    }

    /// Opens the configured tiers and hashes the weights of every loaded voice.
    pub async fn open(config: &ServerConfig, registry: &ModelRegistry) -> Result<Self, CacheError> {
        let sources = weight_files(&config.models_dir, registry);
        let weights = tokio::task::spawn_blocking(move || digest_weights(sources)).await?;
        let redis = config.redis_url.as_ref().map(|url| {
            let mut redis = RedisConfig::new(url.clone());
            redis.timeout = Duration::from_millis(config.redis_timeout_ms.max(1));
            redis.ttl = ttl(config.cache_ttl_secs);
            redis
        });
        let tiers = TieredCache::open(CacheConfig {
            dir: config.storage_dir.join("cache"),
            memory_bytes: config.cache_memory_mb.saturating_mul(1 << 20),
            disk_bytes: config.cache_disk_mb.saturating_mul(1 << 20),
            policy: config.cache_policy,
            ttl: ttl(config.cache_ttl_secs),
            redis,
        })
        .await?;
        Ok(Self {
            tiers,
            weights,
            voice_digests: RwLock::new(HashMap::new()),
        })
    }

    pub fn tiers(&self) -> &TieredCache {
        &self.tiers
    }

    /// Records the digest of a voice added at run time (a cloned voice's `voice.json`), so its
    /// entries change when the voice is replaced under the same id.
    pub fn set_voice_digest(&self, voice: &str, digest: &str) {
        self.voice_digests
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(voice.to_string(), digest.to_string());
    }

    /// What decides one voice's audio besides the text: its weights and, for a voice added at
    /// run time, its own digest.
    pub fn voice_digest(&self, voice: &str) -> String {
        let runtime = self.voice_digests.read().unwrap_or_else(|p| p.into_inner());
        tts_cache::key::combine_digests([
            self.weights.get(voice).map_or("", String::as_str),
            runtime.get(voice).map_or("", String::as_str),
        ])
    }

    /// The content address of a request's audio.
    pub fn key(&self, params: &SpeechParams) -> CacheKey {
        self.key_as(params, params.format.as_str())
    }

    fn key_as(&self, params: &SpeechParams, format: &str) -> CacheKey {
        let components: Vec<&str> = params
            .voice
            .split('+')
            .map(|part| part.split('(').next().unwrap_or(part).trim())
            .collect();
        let runtime = self.voice_digests.read().unwrap_or_else(|p| p.into_inner());
        let model_digest = tts_cache::key::combine_digests(
            components
                .iter()
                .map(|v| self.weights.get(*v).map_or("", String::as_str)),
        );
        let voice_digest = tts_cache::key::combine_digests(
            components
                .iter()
                .map(|v| runtime.get(*v).map_or("", String::as_str)),
        );
        CacheKey::for_request(&KeyInput {
            model_id: &params.model.id,
            model_digest: &model_digest,
            voice_id: &params.voice,
            voice_digest: &voice_digest,
            text: &params.text,
            speed: params.speed,
            format,
            sample_rate: params.sample_rate,
            bitrate_kbps: params.bitrate_kbps,
            normalize_loudness: params.normalize_loudness,
        })
    }

    /// The content address of one sentence's model output (before joining, loudness,
    /// resampling and encoding), for the WebSocket, whose utterances are built sentence by
    /// sentence as text arrives. Output settings are not part of it: they apply afterwards.
    pub fn sentence_key(&self, params: &SpeechParams, sentence: &str) -> CacheKey {
        let sentence_params = SpeechParams {
            text: sentence.to_string(),
            sample_rate: None,
            bitrate_kbps: None,
            normalize_loudness: false,
            ..params.clone()
        };
        self.key_as(&sentence_params, SENTENCE_PCM_FORMAT)
    }

    /// A sentence's model output from the cache.
    pub async fn get_sentence(&self, key: &CacheKey) -> Option<(Pcm, CacheStatus)> {
        let (audio, status) = self.get(key).await?;
        Some((sentence_pcm(&audio)?, status))
    }

    /// Stores a sentence entry made by [`sentence_entry`].
    pub async fn put_sentence(&self, key: &CacheKey, entry: &CachedAudio) {
        self.tiers.put(key, entry).await;
    }

    pub async fn get(&self, key: &CacheKey) -> Option<(CachedAudio, CacheStatus)> {
        let (audio, tier) = self.tiers.get(key).await?;
        Some((audio, CacheStatus::from_tier(tier)))
    }

    /// Removes every entry spoken by `voice` (blends included); the voices code calls it when a
    /// voice is deleted.
    pub async fn purge_voice(&self, voice: &str) -> Result<u64, CacheError> {
        self.voice_digests
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(voice);
        self.tiers.purge_voice(voice).await
    }

    pub async fn purge_all(&self) -> Result<u64, CacheError> {
        self.tiers.purge_all().await
    }

    pub async fn stats(&self) -> CacheStats {
        self.tiers.stats().await
    }
}

fn ttl(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Replaces the placeholder cache of a fresh state with the configured one.
pub async fn with_cache(mut state: AppState) -> Result<AppState, CacheError> {
    let cache = AudioCache::open(&state.config, state.registry()).await?;
    state.cache = Arc::new(cache);
    Ok(state)
}

/// For each voice, the files whose bytes decide its audio: a Piper voice's `.onnx` and
/// `.onnx.json`, or every file of a multi-voice model's directory (Kokoro's weights, voice packs,
/// vocabulary).
fn weight_files(models_dir: &Path, registry: &ModelRegistry) -> Vec<(String, Vec<PathBuf>)> {
    let mut sources = Vec::new();
    for voice in registry.voices() {
        let Ok(loaded) = registry.resolve(None, &voice.id) else {
            continue;
        };
        let files = if loaded.id == "piper" {
            let dir = models_dir.join("piper");
            vec![
                dir.join(format!("{}.onnx", voice.id)),
                dir.join(format!("{}.onnx.json", voice.id)),
            ]
        } else {
            let mut files: Vec<PathBuf> = std::fs::read_dir(models_dir.join(&loaded.id))
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_file())
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            files
        };
        sources.push((voice.id.clone(), files));
    }
    sources
}

/// Hashes each voice's files. Blocking; each file is read once per process (keyed by path, size
/// and modification time), so servers started again in one process do not re-read the weights.
fn digest_weights(sources: Vec<(String, Vec<PathBuf>)>) -> HashMap<String, String> {
    type Memo = Mutex<HashMap<(PathBuf, u64, std::time::SystemTime), String>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    let mut digests = HashMap::new();
    for (voice, files) in sources {
        let mut parts = Vec::new();
        for path in &files {
            let Ok(meta) = std::fs::metadata(path) else {
                tracing::warn!(voice, path = %path.display(), "weights file not found; cache keys use the voice id only");
                continue;
            };
            let id = (
                path.clone(),
                meta.len(),
                meta.modified().unwrap_or(std::time::UNIX_EPOCH),
            );
            let known = memo
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
                .cloned();
            let digest = match known {
                Some(digest) => digest,
                None => match tts_cache::key::file_digest(path) {
                    Ok(digest) => {
                        memo.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(id, digest.clone());
                        digest
                    }
                    Err(err) => {
                        tracing::warn!(voice, path = %path.display(), error = %err, "hashing weights failed");
                        continue;
                    }
                },
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            parts.push(name);
            parts.push(digest);
        }
        digests.insert(
            voice,
            tts_cache::key::combine_digests(parts.iter().map(String::as_str)),
        );
    }
    digests
}

fn entry_meta(params: &SpeechParams, summary: &Summary, sample_rate: u32) -> EntryMeta {
    EntryMeta {
        format: params.format.as_str().to_string(),
        content_type: params.format.content_type().to_string(),
        sample_rate,
        voice_id: params.voice.clone(),
        characters: summary.characters as u64,
        sentences: summary.sentences as u64,
        audio_seconds: summary.audio_seconds,
        synth_seconds: summary.latency_ms / 1000.0,
    }
}

/// The summary of a response answered from a stored entry.
fn cached_summary(meta: &EntryMeta, ctx: &RequestContext) -> Summary {
    Summary {
        characters: meta.characters as usize,
        sentences: meta.sentences as usize,
        audio_seconds: meta.audio_seconds,
        rtf: if meta.audio_seconds > 0.0 {
            meta.synth_seconds / meta.audio_seconds
        } else {
            0.0
        },
        latency_ms: ctx.started.elapsed().as_secs_f64() * 1000.0,
        sample_rate: meta.sample_rate,
    }
}

fn cached_file(audio: &CachedAudio, params: &SpeechParams, ctx: &RequestContext) -> AudioFile {
    AudioFile {
        bytes: audio.bytes.clone(),
        format: params.format,
        sample_rate: audio.meta.sample_rate,
        summary: cached_summary(&audio.meta, ctx),
    }
}

/// A sentence's model output as a cache entry: f32 samples, exact, so a hit sounds the same as
/// the miss did.
pub fn sentence_entry(voice: &str, text: &str, pcm: &Pcm, synth_time: Duration) -> CachedAudio {
    let bytes: Vec<u8> = pcm.samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let meta = EntryMeta {
        format: SENTENCE_PCM_FORMAT.to_string(),
        content_type: "application/octet-stream".to_string(),
        sample_rate: pcm.sample_rate,
        voice_id: voice.to_string(),
        characters: text.chars().count() as u64,
        sentences: 1,
        audio_seconds: pcm.duration_secs(),
        synth_seconds: synth_time.as_secs_f64(),
    };
    CachedAudio::new(bytes, meta)
}

/// The samples of a sentence entry; `None` for an entry that is not one.
pub fn sentence_pcm(audio: &CachedAudio) -> Option<Pcm> {
    if audio.meta.format != SENTENCE_PCM_FORMAT || audio.bytes.len() % 4 != 0 {
        return None;
    }
    let samples = audio
        .bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some(Pcm::new(samples, audio.meta.sample_rate))
}

/// A follower answers with the leader's own error (503 + Retry-After for a full queue, 504, 400
/// for text the model refuses); only a leader that vanished gives a generic 500.
pub fn flight_error(error: FlightError) -> ApiError {
    error
        .downcast_ref::<ApiError>()
        .cloned()
        .unwrap_or_else(|| ApiError::Internal(format!("shared synthesis failed: {error}")))
}

impl AppState {
    /// The whole file of a request: from the cache when stored, else from an identical request in
    /// flight, else synthesized (and stored). Returns how it was produced and its cache key.
    pub async fn synthesize_cached(
        &self,
        params: &SpeechParams,
        ctx: &RequestContext,
    ) -> Result<(AudioFile, CacheStatus, String), ApiError> {
        let key = self.cache.key(params);
        if let Some((audio, status)) = self.cache.get(&key).await {
            ctx.record_cached(audio.meta.characters as usize, audio.meta.audio_seconds);
            return Ok((cached_file(&audio, params, ctx), status, key.to_string()));
        }
        let (writer, reader) = match self.cache.tiers().coalescer().join(&key) {
            Joined::Follower(reader) => {
                let (bytes, meta) = reader.collect().await.map_err(flight_error)?;
                let audio = CachedAudio { bytes, meta };
                self.cache.tiers().note_coalesced(&audio);
                ctx.record_cached(audio.meta.characters as usize, audio.meta.audio_seconds);
                let file = cached_file(&audio, params, ctx);
                return Ok((file, CacheStatus::Coalesced, key.to_string()));
            }
            Joined::Leader(writer, reader) => (writer, reader),
        };
        let driver = tokio::spawn(lead_file(
            self.clone(),
            params.clone(),
            ctx.clone(),
            key.clone(),
            writer,
        ));
        match reader.collect().await {
            Ok((bytes, meta)) => {
                let status = driver.await.unwrap_or(Ok(CacheStatus::Miss))?;
                let audio = CachedAudio { bytes, meta };
                if status != CacheStatus::Miss {
                    ctx.record_cached(audio.meta.characters as usize, audio.meta.audio_seconds);
                }
                let file = cached_file(&audio, params, ctx);
                Ok((file, status, key.to_string()))
            }
            Err(message) => match driver.await {
                Ok(Err(err)) => Err(err),
                _ => Err(flight_error(message)),
            },
        }
    }

    /// A streamed response: a stored entry at once, an identical request's stream from its first
    /// chunk, or a new synthesis whose chunks are teed into the cache (stored only when complete).
    /// Refusals (queue full) come back as errors before any byte is sent.
    pub async fn stream_cached(
        &self,
        params: &SpeechParams,
        ctx: &RequestContext,
    ) -> Result<(AudioStream, CacheStatus, String), ApiError> {
        let key = self.cache.key(params);
        if let Some((audio, status)) = self.cache.get(&key).await {
            ctx.record_cached(audio.meta.characters as usize, audio.meta.audio_seconds);
            let (tx, rx) = mpsc::channel(2);
            let summary = cached_summary(&audio.meta, ctx);
            // Capacity 2 holds both events: nothing waits.
            let _ = tx.try_send(StreamEvent::Audio(audio.bytes.clone()));
            let _ = tx.try_send(StreamEvent::Done(summary));
            let stream = AudioStream::from_events(rx, params.format, audio.meta.sample_rate);
            return Ok((stream, status, key.to_string()));
        }
        match self.cache.tiers().coalescer().join(&key) {
            Joined::Follower(reader) => {
                let rate = output_rate(params);
                let stream = follow(self.clone(), reader, params, ctx, true, rate);
                Ok((stream, CacheStatus::Coalesced, key.to_string()))
            }
            Joined::Leader(writer, reader) => {
                let claim = match self.cache.tiers().redis() {
                    Some(redis) => redis.claim_stream(&key).await,
                    None => StreamClaim::Unavailable,
                };
                let rate = output_rate(params);
                let (publish, status) = match claim {
                    StreamClaim::Follow(remote) => {
                        tokio::spawn(follow_remote(
                            self.clone(),
                            params.clone(),
                            ctx.clone(),
                            key.clone(),
                            writer,
                            remote,
                        ));
                        let stream = follow(self.clone(), reader, params, ctx, true, rate);
                        return Ok((stream, CacheStatus::Coalesced, key.to_string()));
                    }
                    StreamClaim::Lead(guard, publisher) => {
                        (Some((guard, publisher)), CacheStatus::Miss)
                    }
                    StreamClaim::Unavailable => (None, CacheStatus::Miss),
                };
                let audio = self.speech.stream(params, ctx)?;
                let rate = audio.sample_rate;
                tokio::spawn(lead_stream(
                    self.clone(),
                    params.clone(),
                    key.clone(),
                    writer,
                    audio,
                    publish,
                ));
                let stream = follow(self.clone(), reader, params, ctx, false, rate);
                Ok((stream, status, key.to_string()))
            }
        }
    }
}

/// Relays another replica's streamed synthesis of `key` into this replica's flight. When that
/// replica dies or fails before sending any audio, this one synthesizes instead; after audio was
/// relayed, the stream can only fail.
async fn follow_remote(
    state: AppState,
    params: SpeechParams,
    ctx: RequestContext,
    key: CacheKey,
    writer: FlightWriter,
    mut remote: RemoteFlight,
) {
    let deadline = tokio::time::Instant::from_std(ctx.started + state.speech.settings().timeout);
    let mut relayed = false;
    let reason = loop {
        let event = tokio::select! {
            event = tokio::time::timeout_at(deadline, remote.next()) => event,
            () = writer.abandoned() => return,
        };
        match event {
            Err(_) => {
                writer.fail(Arc::new(ApiError::Timeout));
                return;
            }
            Ok(Ok(RemoteEvent::Chunk(chunk))) => {
                relayed = true;
                writer.push(chunk);
            }
            Ok(Ok(RemoteEvent::Done(meta))) => {
                let audio = CachedAudio::new(writer.collected(), meta);
                state.cache.tiers().put_local(&key, &audio).await;
                writer.finish(audio.meta);
                return;
            }
            Ok(Ok(RemoteEvent::Stored(audio))) if !relayed => {
                state.cache.tiers().put_local(&key, &audio).await;
                writer.push(audio.bytes.clone());
                writer.finish(audio.meta);
                return;
            }
            Ok(Ok(RemoteEvent::Stored(_))) => {
                break "the other replica stored a different take".to_string()
            }
            Ok(Ok(RemoteEvent::Failed(message))) => break message,
            Ok(Ok(RemoteEvent::Orphaned)) => {
                break "the replica synthesizing it went away".to_string()
            }
            Ok(Err(err)) => break err.to_string(),
        }
    };
    if relayed {
        writer.fail(FlightAborted::error(format!(
            "shared stream ended: {reason}"
        )));
        return;
    }
    tracing::info!(key = %key, reason, "taking over a stream from another replica");
    match state.speech.stream(&params, &ctx) {
        Ok(audio) => lead_stream(state, params, key, writer, audio, None).await,
        Err(err) => writer.fail(Arc::new(err)),
    }
}

/// The sample rate a stream of `params` will have (for followers, before the leader's meta).
fn output_rate(params: &SpeechParams) -> u32 {
    params
        .sample_rate
        .unwrap_or_else(|| params.model.model.sample_rate())
}

/// Turns a flight into an `AudioStream`. Dropping the stream (client gone) drops the reader, which
/// lets the leader cancel when nobody is left.
fn follow(
    state: AppState,
    mut reader: FlightReader,
    params: &SpeechParams,
    ctx: &RequestContext,
    coalesced: bool,
    sample_rate: u32,
) -> AudioStream {
    let (tx, rx) = mpsc::channel(8);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let mut bytes = 0usize;
        loop {
            // A client that leaves is noticed at once, not at the next chunk.
            let event = tokio::select! {
                event = reader.next() => event,
                () = tx.closed() => return,
            };
            let Some(event) = event else { break };
            let event = match event {
                FlightEvent::Chunk(chunk) => {
                    bytes += chunk.len();
                    StreamEvent::Audio(chunk)
                }
                FlightEvent::Done(meta) => {
                    if coalesced {
                        let audio = CachedAudio {
                            bytes: Bytes::new(),
                            meta: meta.clone(),
                        };
                        state.cache.tiers().note_coalesced(&audio);
                        ctx.record_cached(meta.characters as usize, meta.audio_seconds);
                    }
                    StreamEvent::Done(cached_summary(&meta, &ctx))
                }
                FlightEvent::Failed(message) => StreamEvent::Failed(flight_error(message)),
            };
            if tx.send(event).await.is_err() {
                return;
            }
        }
        tracing::debug!(request_id = %ctx.id, bytes, coalesced, "flight stream ended");
    });
    AudioStream::from_events(rx, params.format, sample_rate)
}

/// The leader's whole-file synthesis, detached from its client: elects this replica through Redis
/// when configured, synthesizes unless every reader left, stores the entry, then ends the flight.
async fn lead_file(
    state: AppState,
    params: SpeechParams,
    ctx: RequestContext,
    key: CacheKey,
    writer: FlightWriter,
) -> Result<CacheStatus, ApiError> {
    let mut lock = None;
    if let Some(redis) = state.cache.tiers().redis() {
        let deadline = ctx.started + state.speech.settings().timeout;
        match redis.lock_or_wait(&key, deadline).await {
            RemoteLock::Acquired(guard) => lock = Some(guard),
            RemoteLock::Filled(audio) => {
                state.cache.tiers().put_local(&key, &audio).await;
                writer.push(audio.bytes.clone());
                writer.finish(audio.meta);
                return Ok(CacheStatus::HitRedis);
            }
            RemoteLock::Unavailable => {}
        }
    }
    let result = tokio::select! {
        result = state.speech.synthesize_file(&params, &ctx) => result,
        () = writer.abandoned() => Err(ApiError::from(crate::engine::EngineError::Cancelled)),
    };
    let outcome = match result {
        Ok(file) => {
            let meta = entry_meta(&params, &file.summary, file.sample_rate);
            let audio = CachedAudio::new(file.bytes, meta);
            writer.push(audio.bytes.clone());
            state.cache.tiers().put(&key, &audio).await;
            writer.finish(audio.meta);
            Ok(CacheStatus::Miss)
        }
        Err(err) => {
            writer.fail(Arc::new(err.clone()));
            Err(err)
        }
    };
    if let Some(guard) = lock {
        guard.release().await;
    }
    outcome
}

/// The leader's streamed synthesis: every chunk goes to the flight as it is encoded; the complete
/// file is stored only when the stream ends successfully. Stops when every reader has left.
/// With Redis, the leader also publishes every chunk and the outcome for followers on other
/// replicas (`publish`), releasing its lock after the outcome.
async fn lead_stream(
    state: AppState,
    params: SpeechParams,
    key: CacheKey,
    writer: FlightWriter,
    mut audio: AudioStream,
    publish: Option<(LockGuard, FlightPublisher)>,
) {
    use futures_util::StreamExt;
    let sample_rate = audio.sample_rate;
    let (guard, publisher) = publish.unzip();
    let outcome = loop {
        let event = tokio::select! {
            event = audio.next() => event,
            () = writer.abandoned() => break Err(FlightAborted::error("every client left")),
        };
        match event {
            Some(StreamEvent::Audio(bytes)) => {
                if let Some(publisher) = &publisher {
                    publisher.chunk(&bytes);
                }
                writer.push(bytes);
            }
            Some(StreamEvent::Sentence(_)) => {}
            Some(StreamEvent::Done(summary)) => {
                let entry = CachedAudio::new(
                    writer.collected(),
                    entry_meta(&params, &summary, sample_rate),
                );
                state.cache.tiers().put(&key, &entry).await;
                break Ok(entry.meta);
            }
            Some(StreamEvent::Failed(err)) => break Err(Arc::new(err) as FlightError),
            None => break Err(FlightAborted::error("stream ended without a result")),
        }
    };
    if let Some(publisher) = publisher {
        let published = match &outcome {
            Ok(meta) => Ok(meta.as_ref()),
            Err(err) => Err(err.to_string()),
        };
        publisher.finish(published).await;
    }
    if let Some(guard) = guard {
        guard.release().await;
    }
    match outcome {
        Ok(meta) => writer.finish(meta),
        Err(err) => writer.fail(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_status_values_are_the_x_cache_header_values() {
        let values: Vec<_> = [
            CacheStatus::HitMemory,
            CacheStatus::HitDisk,
            CacheStatus::HitRedis,
            CacheStatus::Miss,
            CacheStatus::Coalesced,
        ]
        .into_iter()
        .map(CacheStatus::as_str)
        .collect();
        assert_eq!(
            values,
            ["hit-memory", "hit-disk", "hit-redis", "miss", "coalesced"]
        );
    }
}
