//! Tier 3 (optional): a Redis shared by every replica. Entries are `<prefix>audio:<key>` (a JSON
//! header with the metadata and checksum, then the bytes), each voice has a set of its keys for
//! purging, and `<prefix>lock:<key>` is the short lock that elects one replica to synthesize.
//! A replica streaming a synthesis publishes its chunks as they are encoded to the Redis stream
//! `<prefix>flight:<key>`, so streaming followers on other replicas get them from the first
//! byte ([`RedisTier::claim_stream`]).
//!
//! Redis is a helper, never a dependency: every call has a short timeout, a failure is counted
//! (`tts_cache_redis_errors_total`) and logged at most every few seconds, and callers fall back to
//! the local tiers and synthesis.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::key::sha256_hex;
use crate::{CacheError, CacheKey, CachedAudio, EntryMeta};

/// Failures are logged at most this often (a dead Redis must not flood the log).
const LOG_INTERVAL_MS: u64 = 10_000;
/// A failed connection is retried at most this often.
const RECONNECT_INTERVAL_MS: u64 = 1_000;
/// How often a waiting replica looks for the leader's result.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How long a flight's published chunks stay readable after its last one.
const FLIGHT_TTL_MS: u64 = 60_000;
/// Field names of a flight's stream entries.
const CHUNK: &str = "chunk";
const DONE: &str = "done";
const FAILED: &str = "failed";

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db`
    pub url: String,
    /// Limit of every Redis call; past it the call counts as failed.
    pub timeout: Duration,
    /// Entries expire after this; `None` keeps them until purged or evicted by Redis.
    pub ttl: Option<Duration>,
    /// The synthesis lock expires after this unless its holder refreshes it (a dead replica's
    /// lock frees itself).
    pub lock_ttl: Duration,
    /// Prefix of every key, so several deployments can share one Redis.
    pub prefix: String,
}

impl RedisConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: Duration::from_millis(250),
            ttl: Some(Duration::from_secs(7 * 24 * 3600)),
            lock_ttl: Duration::from_secs(10),
            prefix: "tts:".into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    sha256: String,
    meta: EntryMeta,
}

pub struct RedisTier {
    client: redis::Client,
    connection: RwLock<Option<ConnectionManager>>,
    config: RedisConfig,
    /// Identifies this process as a lock holder.
    owner: String,
    last_connect_attempt: AtomicU64,
    last_log: AtomicU64,
    errors: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RedisTier {
    /// Checks the URL; the connection is made on first use (and again after failures), so a
    /// server starts while Redis is down.
    pub fn new(config: RedisConfig) -> Result<Arc<Self>, CacheError> {
        let client = redis::Client::open(config.url.as_str())?;
        let owner = sha256_hex(
            format!(
                "{}-{}-{:?}",
                std::process::id(),
                now_ms(),
                std::thread::current().id()
            )
            .as_bytes(),
        );
        Ok(Arc::new(Self {
            client,
            connection: RwLock::new(None),
            config,
            owner,
            last_connect_attempt: AtomicU64::new(0),
            last_log: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }))
    }

    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Failed calls so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    async fn connection(&self) -> Result<ConnectionManager, CacheError> {
        if let Some(connection) = self
            .connection
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(connection);
        }
        let now = now_ms();
        let last = self.last_connect_attempt.load(Ordering::Relaxed);
        if now.saturating_sub(last) < RECONNECT_INTERVAL_MS
            || self
                .last_connect_attempt
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Err(CacheError::RedisDown);
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(self.config.timeout)
            .set_response_timeout(self.config.timeout)
            .set_number_of_retries(1);
        let connection = tokio::time::timeout(
            self.config.timeout,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| CacheError::RedisTimeout(self.config.timeout))??;
        *self.connection.write().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
        tracing::info!(url = %self.config.url, "connected to redis");
        Ok(connection)
    }

    /// Runs one call under the timeout, counting and logging failures.
    async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, CacheError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let result = async {
            let connection = self.connection().await?;
            tokio::time::timeout(self.config.timeout, f(connection))
                .await
                .map_err(|_| CacheError::RedisTimeout(self.config.timeout))?
                .map_err(CacheError::from)
        }
        .await;
        if let Err(err) = &result {
            self.errors.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("tts_cache_redis_errors_total", "op" => op).increment(1);
            let now = now_ms();
            let last = self.last_log.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= LOG_INTERVAL_MS
                && self
                    .last_log
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(op, error = %err, "redis unavailable; serving from local tiers and synthesis");
            }
        }
        result
    }

    fn audio_key(&self, key: &CacheKey) -> String {
        format!("{}audio:{}", self.config.prefix, key)
    }

    fn lock_key(&self, key: &CacheKey) -> String {
        format!("{}lock:{}", self.config.prefix, key)
    }

    fn flight_key(&self, key: &CacheKey) -> String {
        format!("{}flight:{}", self.config.prefix, key)
    }

    fn voice_key(&self, voice: &str) -> String {
        format!("{}voice:{}", self.config.prefix, voice)
    }

    pub async fn get(&self, key: &CacheKey) -> Result<Option<CachedAudio>, CacheError> {
        let name = self.audio_key(key);
        let value: Option<Vec<u8>> = self
            .call("get", |mut c| async move { c.get(name).await })
            .await?;
        Ok(value.and_then(|bytes| decode(key, &bytes)))
    }

    pub async fn put(&self, key: &CacheKey, audio: &CachedAudio) -> Result<(), CacheError> {
        let value = encode(audio)?;
        let name = self.audio_key(key);
        let ttl_ms = self.config.ttl.map(|t| t.as_millis() as u64);
        let voices: Vec<String> = voice_components(&audio.meta.voice_id)
            .map(|v| self.voice_key(v))
            .collect();
        let member = key.to_string();
        self.call("put", |mut c| async move {
            let mut pipe = redis::pipe();
            match ttl_ms {
                Some(ms) => pipe.cmd("SET").arg(&name).arg(value).arg("PX").arg(ms),
                None => pipe.cmd("SET").arg(&name).arg(value),
            }
            .ignore();
            for voice in &voices {
                pipe.sadd(voice, &member).ignore();
            }
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    /// Deletes the entries of `voice`; returns how many keys were removed.
    pub async fn purge_voice(&self, voice: &str) -> Result<u64, CacheError> {
        let set = self.voice_key(voice);
        let prefix = format!("{}audio:", self.config.prefix);
        self.call("purge_voice", |mut c| async move {
            let members: Vec<String> = c.smembers(&set).await?;
            let mut removed = 0u64;
            for chunk in members.chunks(256) {
                let names: Vec<String> = chunk.iter().map(|m| format!("{prefix}{m}")).collect();
                removed += c.del::<_, u64>(names).await?;
            }
            c.del::<_, ()>(&set).await?;
            Ok(removed)
        })
        .await
    }

    /// Deletes every key under the prefix; returns how many audio entries were removed.
    pub async fn purge_all(&self) -> Result<u64, CacheError> {
        let pattern = format!("{}*", self.config.prefix);
        let audio_prefix = format!("{}audio:", self.config.prefix);
        self.call("purge_all", |mut c| async move {
            let mut cursor: u64 = 0;
            let mut removed = 0u64;
            loop {
                let (next, names): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut c)
                    .await?;
                removed += names
                    .iter()
                    .filter(|n| n.starts_with(&audio_prefix))
                    .count() as u64;
                if !names.is_empty() {
                    c.del::<_, ()>(names).await?;
                }
                if next == 0 {
                    return Ok(removed);
                }
                cursor = next;
            }
        })
        .await
    }

    async fn try_lock(&self, key: &CacheKey) -> Result<bool, CacheError> {
        let name = self.lock_key(key);
        let owner = self.owner.clone();
        let ttl = self.config.lock_ttl.as_millis() as u64;
        self.call("lock", |mut c| async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(name)
                .arg(owner)
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .query_async(&mut c)
                .await?;
            Ok(set.is_some())
        })
        .await
    }

    async fn lock_held(&self, key: &CacheKey) -> Result<bool, CacheError> {
        let name = self.lock_key(key);
        self.call("lock_check", |mut c| async move { c.exists(name).await })
            .await
    }

    /// Extends our lock; false when it is no longer ours.
    async fn refresh_lock(&self, key: &CacheKey) -> Result<bool, CacheError> {
        let script = redis::Script::new(
            "if redis.call('get', KEYS[1]) == ARGV[1] then \
             return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end",
        );
        let name = self.lock_key(key);
        let owner = self.owner.clone();
        let ttl = self.config.lock_ttl.as_millis() as u64;
        self.call("lock_refresh", |mut c| async move {
            let extended: i64 = script
                .key(name)
                .arg(owner)
                .arg(ttl)
                .invoke_async(&mut c)
                .await?;
            Ok(extended == 1)
        })
        .await
    }

    async fn unlock(&self, key: &CacheKey) -> Result<(), CacheError> {
        let script = redis::Script::new(
            "if redis.call('get', KEYS[1]) == ARGV[1] then \
             return redis.call('del', KEYS[1]) else return 0 end",
        );
        let name = self.lock_key(key);
        let owner = self.owner.clone();
        self.call("unlock", |mut c| async move {
            script
                .key(name)
                .arg(owner)
                .invoke_async::<i64>(&mut c)
                .await
                .map(|_| ())
        })
        .await
    }

    /// Elects one replica to synthesize `key`: either we take the lock, or another replica holds
    /// it and we wait (until `deadline`) for its entry to appear, taking over if its lock expires
    /// without one (the holder died).
    pub async fn lock_or_wait(self: &Arc<Self>, key: &CacheKey, deadline: Instant) -> RemoteLock {
        loop {
            match self.try_lock(key).await {
                Err(_) => return RemoteLock::Unavailable,
                Ok(true) => {
                    let _ = self.reset_flight(key).await;
                    return RemoteLock::Acquired(LockGuard::new(self.clone(), key.clone()));
                }
                Ok(false) => {}
            }
            loop {
                if Instant::now() + POLL_INTERVAL > deadline {
                    return RemoteLock::Unavailable;
                }
                tokio::time::sleep(POLL_INTERVAL).await;
                match self.get(key).await {
                    Ok(Some(audio)) => return RemoteLock::Filled(audio),
                    Ok(None) => {}
                    Err(_) => return RemoteLock::Unavailable,
                }
                match self.lock_held(key).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => return RemoteLock::Unavailable,
                }
            }
            tracing::info!(key = %key, "synthesis lock expired without a result; taking over");
        }
    }
}

impl RedisTier {
    /// Elects one replica to stream `key`: we take the lock and publish our chunks, or another
    /// replica holds it and we read its chunks from the first one.
    pub async fn claim_stream(self: &Arc<Self>, key: &CacheKey) -> StreamClaim {
        match self.try_lock(key).await {
            Err(_) => StreamClaim::Unavailable,
            Ok(true) => {
                if self.reset_flight(key).await.is_err() {
                    return StreamClaim::Unavailable;
                }
                StreamClaim::Lead(
                    LockGuard::new(self.clone(), key.clone()),
                    FlightPublisher::new(self.clone(), key.clone()),
                )
            }
            Ok(false) => StreamClaim::Follow(RemoteFlight {
                tier: self.clone(),
                key: key.clone(),
                last_id: "0-0".into(),
                pending: Default::default(),
            }),
        }
    }

    /// Forgets a previous flight of `key` (a failed one, or one whose entry was evicted since),
    /// so that it is not replayed to the new leader's followers.
    async fn reset_flight(&self, key: &CacheKey) -> Result<(), CacheError> {
        let name = self.flight_key(key);
        self.call(
            "flight_reset",
            |mut c| async move { c.del::<_, ()>(name).await },
        )
        .await
    }

    async fn publish(&self, key: &CacheKey, field: &'static str, value: Vec<u8>) -> bool {
        let name = self.flight_key(key);
        self.call("flight_publish", |mut c| async move {
            redis::pipe()
                .cmd("XADD")
                .arg(&name)
                .arg("*")
                .arg(field)
                .arg(value)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&name)
                .arg(FLIGHT_TTL_MS)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
        .is_ok()
    }

    /// Stream entries after `after`: `(id, [field, value])`.
    async fn flight_entries(
        &self,
        key: &CacheKey,
        after: &str,
    ) -> Result<Vec<(String, Vec<Vec<u8>>)>, CacheError> {
        let name = self.flight_key(key);
        let start = format!("({after}");
        self.call("flight_read", |mut c| async move {
            redis::cmd("XRANGE")
                .arg(name)
                .arg(start)
                .arg("+")
                .arg("COUNT")
                .arg(64)
                .query_async(&mut c)
                .await
        })
        .await
    }
}

/// The outcome of [`RedisTier::claim_stream`].
pub enum StreamClaim {
    /// We synthesize: publish every chunk, then the outcome; release the guard after.
    Lead(LockGuard, FlightPublisher),
    /// Another replica synthesizes: read its flight.
    Follow(RemoteFlight),
    /// Redis failed: synthesize locally, unpublished.
    Unavailable,
}

/// Publishes one synthesis's chunks in order, from a task of its own, so the leader never
/// waits for Redis. A failed publish stops publishing (followers then take over when the
/// lock frees); the stream itself goes on.
pub struct FlightPublisher {
    records: mpsc::UnboundedSender<(&'static str, Vec<u8>)>,
    task: tokio::task::JoinHandle<()>,
}

impl FlightPublisher {
    fn new(tier: Arc<RedisTier>, key: CacheKey) -> Self {
        let (records, mut rx) = mpsc::unbounded_channel::<(&'static str, Vec<u8>)>();
        let task = tokio::spawn(async move {
            while let Some((field, value)) = rx.recv().await {
                if !tier.publish(&key, field, value).await {
                    return;
                }
            }
        });
        Self { records, task }
    }

    pub fn chunk(&self, chunk: &[u8]) {
        let _ = self.records.send((CHUNK, chunk.to_vec()));
    }

    /// Publishes the outcome and waits until everything is written (call before releasing the
    /// lock, so a follower that sees the lock gone has seen the end too).
    pub async fn finish(self, outcome: Result<&EntryMeta, String>) {
        let record = match outcome {
            Ok(meta) => serde_json::to_vec(meta).map(|json| (DONE, json)),
            Err(message) => Ok((FAILED, message.into_bytes())),
        };
        if let Ok(record) = record {
            let _ = self.records.send(record);
        }
        drop(self.records);
        let _ = self.task.await;
    }
}

/// What a follower on another replica reads.
#[derive(Debug)]
pub enum RemoteEvent {
    Chunk(Bytes),
    /// The flight ended well; its bytes are the chunks read.
    Done(EntryMeta),
    /// The leader failed, with its message.
    Failed(String),
    /// The leader published no chunks (a whole-file request) and stored the entry.
    Stored(CachedAudio),
    /// The leader's lock is gone without an outcome: it died.
    Orphaned,
}

/// Another replica's synthesis of a key, read from its first chunk.
pub struct RemoteFlight {
    tier: Arc<RedisTier>,
    key: CacheKey,
    last_id: String,
    pending: std::collections::VecDeque<RemoteEvent>,
}

impl RemoteFlight {
    /// The next event, polling Redis until there is one. A Redis failure ends the flight for
    /// this follower (the caller synthesizes itself or fails).
    pub async fn next(&mut self) -> Result<RemoteEvent, CacheError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let entries = self.tier.flight_entries(&self.key, &self.last_id).await?;
            if entries.is_empty() {
                if let Some(audio) = self.tier.get(&self.key).await? {
                    return Ok(RemoteEvent::Stored(audio));
                }
                if !self.tier.lock_held(&self.key).await? {
                    // The leader may have ended between the two reads: look once more.
                    if self
                        .tier
                        .flight_entries(&self.key, &self.last_id)
                        .await?
                        .is_empty()
                    {
                        return Ok(RemoteEvent::Orphaned);
                    }
                    continue;
                }
                tokio::time::sleep(POLL_INTERVAL).await;
                continue;
            }
            for (id, fields) in entries {
                self.last_id = id;
                let event = match fields.as_slice() {
                    [field, value] if field == CHUNK.as_bytes() => {
                        RemoteEvent::Chunk(Bytes::from(value.clone()))
                    }
                    [field, value] if field == DONE.as_bytes() => {
                        match serde_json::from_slice::<EntryMeta>(value) {
                            Ok(meta) => RemoteEvent::Done(meta),
                            Err(err) => RemoteEvent::Failed(format!("unreadable outcome: {err}")),
                        }
                    }
                    [field, value] if field == FAILED.as_bytes() => {
                        RemoteEvent::Failed(String::from_utf8_lossy(value).into_owned())
                    }
                    _ => RemoteEvent::Failed("malformed flight entry".into()),
                };
                self.pending.push_back(event);
            }
        }
    }
}

/// The outcome of [`RedisTier::lock_or_wait`].
pub enum RemoteLock {
    /// We synthesize; release the guard once the entry is stored.
    Acquired(LockGuard),
    /// Another replica stored the entry while we waited.
    Filled(CachedAudio),
    /// Redis failed or the wait ran out: synthesize locally.
    Unavailable,
}

/// Holds a synthesis lock, refreshing it until released or dropped.
pub struct LockGuard {
    tier: Arc<RedisTier>,
    key: CacheKey,
    refresher: tokio::task::JoinHandle<()>,
    released: bool,
}

impl LockGuard {
    fn new(tier: Arc<RedisTier>, key: CacheKey) -> Self {
        let refresher = {
            let tier = tier.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let period = tier.config.lock_ttl / 3;
                loop {
                    tokio::time::sleep(period).await;
                    if !matches!(tier.refresh_lock(&key).await, Ok(true)) {
                        return;
                    }
                }
            })
        };
        Self {
            tier,
            key,
            refresher,
            released: false,
        }
    }

    pub async fn release(mut self) {
        self.refresher.abort();
        self.released = true;
        let _ = self.tier.unlock(&self.key).await;
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.refresher.abort();
        if !self.released {
            let tier = self.tier.clone();
            let key = self.key.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = tier.unlock(&key).await;
                });
            }
        }
    }
}

fn voice_components(voice: &str) -> impl Iterator<Item = &str> {
    voice
        .split('+')
        .map(|part| part.split('(').next().unwrap_or(part).trim())
}

fn encode(audio: &CachedAudio) -> Result<Vec<u8>, CacheError> {
    let header = serde_json::to_vec(&Header {
        sha256: sha256_hex(&audio.bytes),
        meta: (*audio.meta).clone(),
    })?;
    let mut value = Vec::with_capacity(4 + header.len() + audio.bytes.len());
    value.extend((header.len() as u32).to_le_bytes());
    value.extend(header);
    value.extend_from_slice(&audio.bytes);
    Ok(value)
}

/// `None` for a value that is malformed or fails its checksum (never served).
fn decode(key: &CacheKey, value: &[u8]) -> Option<CachedAudio> {
    let length = u32::from_le_bytes(value.get(..4)?.try_into().ok()?) as usize;
    let header: Header = serde_json::from_slice(value.get(4..4 + length)?).ok()?;
    let bytes = value.get(4 + length..)?;
    if sha256_hex(bytes) != header.sha256 {
        tracing::warn!(key = %key, "redis entry fails its checksum; ignored");
        return None;
    }
    Some(CachedAudio::new(bytes.to_vec(), header.meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_entry_round_trips_and_corruption_is_refused() {
        let key = crate::fixtures::key("t");
        let audio = crate::fixtures::entry("v", 5, 1);
        let mut value = encode(&audio).unwrap();
        let back = decode(&key, &value).unwrap();
        assert_eq!(back.bytes, audio.bytes);
        assert_eq!(*back.meta, *audio.meta);
        let last = value.len() - 1;
        value[last] ^= 1;
        assert!(decode(&key, &value).is_none());
        assert!(decode(&key, &value[..3]).is_none());
    }
}
