//! The tiers in lookup order (memory → disk → Redis), with promotion of lower-tier hits, writes to
//! every tier, purges, and the counters behind `/v1/cache/stats`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::coalesce::Coalescer;
use crate::disk::{DiskRead, DiskStore, EvictionPolicy};
use crate::memory::MemoryTier;
use crate::remote::{RedisConfig, RedisTier};
use crate::{CacheError, CacheKey, CachedAudio};

/// Memory hits are written to the disk index in batches of this many (they steer eviction only).
const HIT_FLUSH_BATCH: u64 = 256;

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// The disk tier's directory (`<storage>/cache`).
    pub dir: PathBuf,
    pub memory_bytes: u64,
    /// 0 turns the disk tier off.
    pub disk_bytes: u64,
    pub policy: EvictionPolicy,
    /// Memory entries expire after this.
    pub ttl: Option<Duration>,
    pub redis: Option<RedisConfig>,
}

/// Where a hit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Memory,
    Disk,
    Redis,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Disk => "disk",
            Self::Redis => "redis",
        }
    }
}

#[derive(Default)]
struct Counters {
    hits: [AtomicU64; 3],
    misses: AtomicU64,
    coalesced: AtomicU64,
    stores: AtomicU64,
    corrupt: AtomicU64,
    bytes_saved: AtomicU64,
    /// Microseconds, to keep counters integral.
    synth_micros_saved: AtomicU64,
}

/// One tier's figures.
#[derive(Debug, Clone, Serialize)]
pub struct TierStats {
    pub enabled: bool,
    pub entries: u64,
    pub bytes: u64,
    pub hits: u64,
    /// Hits over lookups that reached this tier.
    pub hit_rate: f64,
}

/// `GET /v1/cache/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    pub memory: TierStats,
    pub disk: TierStats,
    pub redis: TierStats,
    pub lookups: u64,
    pub misses: u64,
    /// Requests that shared another request's synthesis.
    pub coalesced: u64,
    /// Hits (any tier) plus coalesced requests over all lookups.
    pub hit_rate: f64,
    pub stores: u64,
    pub corrupt_dropped: u64,
    pub redis_errors: u64,
    pub in_flight: usize,
    pub bytes_saved: u64,
    pub synthesis_seconds_saved: f64,
    pub policy: EvictionPolicy,
}

pub struct TieredCache {
    memory: MemoryTier,
    disk: Option<Arc<DiskStore>>,
    redis: Option<Arc<RedisTier>>,
    coalescer: Coalescer,
    counters: Counters,
    policy: EvictionPolicy,
    pending_hits: Mutex<HashMap<CacheKey, u64>>,
    pending_count: AtomicU64,
}

impl TieredCache {
    /// Opens the disk store (blocking work done off the async threads) and prepares Redis.
    pub async fn open(config: CacheConfig) -> Result<Self, CacheError> {
        let disk = if config.disk_bytes > 0 {
            let (dir, budget, policy) = (config.dir.clone(), config.disk_bytes, config.policy);
            let store = tokio::task::spawn_blocking(move || DiskStore::open(&dir, budget, policy))
                .await??;
            Some(Arc::new(store))
        } else {
            None
        };
        let redis = config.redis.map(RedisTier::new).transpose()?;
        Ok(Self {
            memory: MemoryTier::new(config.memory_bytes, config.ttl),
            disk,
            redis,
            coalescer: Coalescer::new(),
            counters: Counters::default(),
            policy: config.policy,
            pending_hits: Mutex::new(HashMap::new()),
            pending_count: AtomicU64::new(0),
        })
    }

    /// Memory only: no disk, no Redis (a placeholder until the configured cache is opened).
    pub fn memory_only(memory_bytes: u64, ttl: Option<Duration>) -> Self {
        Self {
            memory: MemoryTier::new(memory_bytes, ttl),
            disk: None,
            redis: None,
            coalescer: Coalescer::new(),
            counters: Counters::default(),
            policy: EvictionPolicy::default(),
            pending_hits: Mutex::new(HashMap::new()),
            pending_count: AtomicU64::new(0),
        }
    }

    pub fn coalescer(&self) -> &Coalescer {
        &self.coalescer
    }

    pub fn redis(&self) -> Option<&Arc<RedisTier>> {
        self.redis.as_ref()
    }

    /// Looks the key up in every tier, promoting a lower-tier hit to the tiers above it. Tier
    /// failures are logged and count as misses: the request then synthesizes.
    pub async fn get(&self, key: &CacheKey) -> Option<(CachedAudio, Tier)> {
        let found = self.lookup(key).await;
        match &found {
            Some((audio, tier)) => {
                self.counters.hits[*tier as usize].fetch_add(1, Ordering::Relaxed);
                metrics::counter!("tts_cache_hits_total", "tier" => tier.as_str()).increment(1);
                self.count_saved(audio);
            }
            None => {
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("tts_cache_misses_total").increment(1);
            }
        }
        found
    }

    async fn lookup(&self, key: &CacheKey) -> Option<(CachedAudio, Tier)> {
        if let Some(audio) = self.memory.get(key) {
            self.note_memory_hit(key);
            return Some((audio, Tier::Memory));
        }
        if let Some(disk) = &self.disk {
            let (store, k) = (disk.clone(), key.clone());
            match tokio::task::spawn_blocking(move || store.get(&k)).await {
                Ok(Ok(DiskRead::Hit(audio))) => {
                    self.memory.insert(key.clone(), audio.clone());
                    return Some((audio, Tier::Disk));
                }
                Ok(Ok(DiskRead::Missing)) => {}
                Ok(Ok(DiskRead::Corrupt)) => {
                    self.counters.corrupt.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("tts_cache_corrupt_total").increment(1);
                }
                Ok(Err(err)) => tracing::warn!(key = %key, error = %err, "disk cache read failed"),
                Err(err) => tracing::warn!(key = %key, error = %err, "disk cache task failed"),
            }
        }
        if let Some(redis) = &self.redis {
            if let Ok(Some(audio)) = redis.get(key).await {
                self.memory.insert(key.clone(), audio.clone());
                self.store_disk(key, &audio).await;
                return Some((audio, Tier::Redis));
            }
        }
        None
    }

    /// Counts a request served by another request's synthesis.
    pub fn note_coalesced(&self, audio: &CachedAudio) {
        self.counters.coalesced.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("tts_cache_coalesced_total").increment(1);
        self.count_saved(audio);
    }

    fn count_saved(&self, audio: &CachedAudio) {
        let micros = (audio.meta.synth_seconds.max(0.0) * 1e6) as u64;
        self.counters
            .bytes_saved
            .fetch_add(audio.bytes.len() as u64, Ordering::Relaxed);
        self.counters
            .synth_micros_saved
            .fetch_add(micros, Ordering::Relaxed);
        metrics::counter!("tts_cache_bytes_saved_total").increment(audio.bytes.len() as u64);
        metrics::counter!("tts_cache_synthesis_microseconds_saved_total").increment(micros);
    }

    fn note_memory_hit(&self, key: &CacheKey) {
        if self.disk.is_none() {
            return;
        }
        *self
            .pending_hits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default() += 1;
        if self.pending_count.fetch_add(1, Ordering::Relaxed) + 1 >= HIT_FLUSH_BATCH {
            self.flush_hits();
        }
    }

    /// Writes memory-tier hit counts to the disk index in the background.
    fn flush_hits(&self) {
        let Some(disk) = self.disk.clone() else {
            return;
        };
        self.pending_count.store(0, Ordering::Relaxed);
        let hits =
            std::mem::take(&mut *self.pending_hits.lock().unwrap_or_else(|p| p.into_inner()));
        if hits.is_empty() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn_blocking(move || {
                if let Err(err) = disk.add_hits(&hits) {
                    tracing::warn!(error = %err, "recording cache hits failed");
                }
            });
        }
    }

    /// Stores a complete file in every tier. Failures are logged: the audio was served anyway.
    pub async fn put(&self, key: &CacheKey, audio: &CachedAudio) {
        self.memory.insert(key.clone(), audio.clone());
        self.store_disk(key, audio).await;
        if let Some(redis) = &self.redis {
            let _ = redis.put(key, audio).await;
        }
        self.counters.stores.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("tts_cache_stores_total").increment(1);
    }

    /// Stores an entry that came from Redis in the local tiers only.
    pub async fn put_local(&self, key: &CacheKey, audio: &CachedAudio) {
        self.memory.insert(key.clone(), audio.clone());
        self.store_disk(key, audio).await;
    }

    async fn store_disk(&self, key: &CacheKey, audio: &CachedAudio) {
        let Some(disk) = self.disk.clone() else {
            return;
        };
        let (k, a) = (key.clone(), audio.clone());
        match tokio::task::spawn_blocking(move || disk.put(&k, &a)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(key = %key, error = %err, "disk cache write failed"),
            Err(err) => tracing::warn!(key = %key, error = %err, "disk cache task failed"),
        }
    }

    /// Removes one entry from the local tiers (e.g. after it failed to decode).
    pub async fn remove(&self, key: &CacheKey) -> Result<(), CacheError> {
        self.memory.remove(key);
        if let Some(disk) = self.disk.clone() {
            let k = key.clone();
            tokio::task::spawn_blocking(move || disk.remove(&k)).await??;
        }
        Ok(())
    }

    /// Removes every entry spoken by `voice` from every tier; returns the most entries removed
    /// from one tier (the same entry usually sits in several).
    pub async fn purge_voice(&self, voice: &str) -> Result<u64, CacheError> {
        let mut removed = self.memory.purge_voice(voice);
        if let Some(disk) = self.disk.clone() {
            let v = voice.to_string();
            removed =
                removed.max(tokio::task::spawn_blocking(move || disk.purge_voice(&v)).await??);
        }
        if let Some(redis) = &self.redis {
            removed = removed.max(redis.purge_voice(voice).await?);
        }
        Ok(removed)
    }

    pub async fn purge_all(&self) -> Result<u64, CacheError> {
        let mut removed = self.memory.purge_all();
        if let Some(disk) = self.disk.clone() {
            removed = removed.max(tokio::task::spawn_blocking(move || disk.purge_all()).await??);
        }
        if let Some(redis) = &self.redis {
            removed = removed.max(redis.purge_all().await?);
        }
        Ok(removed)
    }

    pub async fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let hits = |tier: Tier| c.hits[tier as usize].load(Ordering::Relaxed);
        let misses = c.misses.load(Ordering::Relaxed);
        let coalesced = c.coalesced.load(Ordering::Relaxed);
        let (memory_hits, disk_hits, redis_hits) =
            (hits(Tier::Memory), hits(Tier::Disk), hits(Tier::Redis));
        let lookups = memory_hits + disk_hits + redis_hits + misses;
        let rate = |hits: u64, reached: u64| {
            if reached == 0 {
                0.0
            } else {
                hits as f64 / reached as f64
            }
        };
        let (disk_entries, disk_bytes) = match self.disk.clone() {
            Some(disk) => tokio::task::spawn_blocking(move || disk.usage())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or((0, 0)),
            None => (0, 0),
        };
        let after_memory = lookups - memory_hits;
        let after_disk = after_memory - disk_hits;
        CacheStats {
            memory: TierStats {
                enabled: true,
                entries: self.memory.entries(),
                bytes: self.memory.bytes(),
                hits: memory_hits,
                hit_rate: rate(memory_hits, lookups),
            },
            disk: TierStats {
                enabled: self.disk.is_some(),
                entries: disk_entries,
                bytes: disk_bytes,
                hits: disk_hits,
                hit_rate: rate(disk_hits, after_memory),
            },
            redis: TierStats {
                enabled: self.redis.is_some(),
                // Redis is shared with other replicas: its size is not ours to report.
                entries: 0,
                bytes: 0,
                hits: redis_hits,
                hit_rate: rate(redis_hits, after_disk),
            },
            lookups,
            misses,
            coalesced,
            hit_rate: rate(lookups - misses + coalesced, lookups),
            stores: c.stores.load(Ordering::Relaxed),
            corrupt_dropped: c.corrupt.load(Ordering::Relaxed),
            redis_errors: self.redis.as_ref().map_or(0, |r| r.errors()),
            in_flight: self.coalescer.in_flight(),
            bytes_saved: c.bytes_saved.load(Ordering::Relaxed),
            synthesis_seconds_saved: c.synth_micros_saved.load(Ordering::Relaxed) as f64 / 1e6,
            policy: self.policy,
        }
    }
}
