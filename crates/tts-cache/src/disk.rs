//! Tier 2: a persistent store on local disk. Each file lives at `objects/<2 hex>/<key>`, written to
//! `tmp/` first, fsynced and renamed, so a crash never leaves a half file under a key. A `redb`
//! index (`index.redb`) holds per entry its size, characters, hits, creation and last-hit times,
//! voice and the sha256 of the bytes; a file whose bytes no longer match is dropped on read, never
//! served. When the stored bytes pass the budget, entries are evicted by the configured policy.
//!
//! Every method blocks (file and index I/O): call from a blocking thread.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::key::sha256_hex;
use crate::{CacheError, CacheKey, CachedAudio, EntryMeta};

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");

/// Which entries go first when the disk budget is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvictionPolicy {
    /// Least recently used first.
    #[default]
    Lru,
    /// Fewest hits per character first (cheap, unpopular entries), oldest first among equals: the
    /// entries that save the most synthesis per byte stay.
    CostAware,
}

impl FromStr for EvictionPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "lru" => Ok(Self::Lru),
            "cost-aware" | "cost_aware" => Ok(Self::CostAware),
            other => Err(format!(
                "unknown cache policy {other:?}; use lru or cost-aware"
            )),
        }
    }
}

/// One index row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskRecord {
    pub size: u64,
    pub characters: u64,
    pub hits: u64,
    /// Unix milliseconds.
    pub created: u64,
    pub last_hit: u64,
    pub voice_id: String,
    pub sha256: String,
    pub meta: EntryMeta,
}

impl DiskRecord {
    /// Eviction order: smaller goes first.
    fn eviction_rank(&self, policy: EvictionPolicy) -> (f64, u64) {
        match policy {
            EvictionPolicy::Lru => (0.0, self.last_hit),
            EvictionPolicy::CostAware => {
                // A new entry counts as one hit, so it is not the first to go before it had a
                // chance; popularity fades with the hours since the last hit.
                let idle_hours = now_ms().saturating_sub(self.last_hit) as f64 / 3_600_000.0;
                let per_char = (self.hits + 1) as f64 / self.characters.max(1) as f64;
                (per_char / (1.0 + idle_hours), self.last_hit)
            }
        }
    }
}

pub struct DiskStore {
    dir: PathBuf,
    db: Database,
    budget: u64,
    policy: EvictionPolicy,
    /// Bytes of every indexed file; the lock also serialises eviction.
    total: Mutex<u64>,
}

/// What a read found.
pub enum DiskRead {
    Hit(CachedAudio),
    Missing,
    /// The file was absent, short or did not match its checksum; it has been dropped.
    Corrupt,
}

fn ix(err: impl Into<redb::Error>) -> CacheError {
    CacheError::from(err.into())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl DiskStore {
    /// Opens (or creates) the store in `dir`, removing leftovers of interrupted writes and files
    /// the index does not know.
    pub fn open(dir: &Path, budget_bytes: u64, policy: EvictionPolicy) -> Result<Self, CacheError> {
        for sub in ["objects", "tmp"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(|e| CacheError::io(&path, e))?;
        }
        let tmp = dir.join("tmp");
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        let index_path = dir.join("index.redb");
        let db = Database::create(&index_path).map_err(ix)?;
        let txn = db.begin_write().map_err(ix)?;
        let mut total = 0;
        let mut known = std::collections::HashSet::new();
        {
            let table = txn.open_table(ENTRIES).map_err(ix)?;
            for row in table.iter().map_err(ix)? {
                let (key, value) = row.map_err(ix)?;
                if let Ok(record) = serde_json::from_slice::<DiskRecord>(value.value()) {
                    total += record.size;
                }
                known.insert(key.value().to_string());
            }
        }
        txn.commit().map_err(ix)?;
        let store = Self {
            dir: dir.to_path_buf(),
            db,
            budget: budget_bytes,
            policy,
            total: Mutex::new(total),
        };
        store.remove_orphans(&known);
        Ok(store)
    }

    fn remove_orphans(&self, known: &std::collections::HashSet<String>) {
        let Ok(shards) = fs::read_dir(self.dir.join("objects")) else {
            return;
        };
        for shard in shards.flatten() {
            let Ok(files) = fs::read_dir(shard.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name().to_string_lossy().to_string();
                if !known.contains(&name) {
                    let _ = fs::remove_file(file.path());
                }
            }
        }
    }

    fn object_path(&self, key: &CacheKey) -> PathBuf {
        let name = key.as_str();
        self.dir.join("objects").join(&name[..2]).join(name)
    }

    pub fn record(&self, key: &CacheKey) -> Result<Option<DiskRecord>, CacheError> {
        let txn = self.db.begin_read().map_err(ix)?;
        let table = txn.open_table(ENTRIES).map_err(ix)?;
        let Some(value) = table.get(key.as_str()).map_err(ix)? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(value.value())?))
    }

    /// Reads and verifies an entry, counting the hit.
    pub fn get(&self, key: &CacheKey) -> Result<DiskRead, CacheError> {
        let Some(mut record) = self.record(key)? else {
            return Ok(DiskRead::Missing);
        };
        let path = self.object_path(key);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(CacheError::io(&path, err)),
        };
        if bytes.len() as u64 != record.size || sha256_hex(&bytes) != record.sha256 {
            tracing::warn!(key = %key, path = %path.display(), expected = record.size, found = bytes.len(), "cached file is corrupt; dropped");
            self.remove(key)?;
            return Ok(DiskRead::Corrupt);
        }
        record.hits += 1;
        record.last_hit = now_ms();
        // Hit counts only steer eviction: losing the last few in a crash is fine, an fsync per hit
        // is not.
        self.write_record(key, &record, Durability::None)?;
        Ok(DiskRead::Hit(CachedAudio::new(bytes, record.meta)))
    }

    fn write_record(
        &self,
        key: &CacheKey,
        record: &DiskRecord,
        durability: Durability,
    ) -> Result<(), CacheError> {
        let value = serde_json::to_vec(record)?;
        let mut txn = self.db.begin_write().map_err(ix)?;
        txn.set_durability(durability);
        {
            let mut table = txn.open_table(ENTRIES).map_err(ix)?;
            table.insert(key.as_str(), value.as_slice()).map_err(ix)?;
        }
        txn.commit().map_err(ix)
    }

    /// Stores an entry (replacing any previous one), then evicts down to the budget.
    pub fn put(&self, key: &CacheKey, audio: &CachedAudio) -> Result<(), CacheError> {
        let size = audio.bytes.len() as u64;
        if size > self.budget {
            return Ok(());
        }
        let path = self.object_path(key);
        let tmp = self
            .dir
            .join("tmp")
            .join(format!("{}.{}", key.as_str(), uuid_like()));
        write_synced(&tmp, &audio.bytes)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| CacheError::io(parent, e))?;
        }
        fs::rename(&tmp, &path).map_err(|e| CacheError::io(&path, e))?;
        let now = now_ms();
        let previous = self.record(key)?;
        let record = DiskRecord {
            size,
            characters: audio.meta.characters,
            hits: previous.as_ref().map_or(0, |r| r.hits),
            created: now,
            last_hit: now,
            voice_id: audio.meta.voice_id.clone(),
            sha256: sha256_hex(&audio.bytes),
            meta: (*audio.meta).clone(),
        };
        self.write_record(key, &record, Durability::Immediate)?;
        let mut total = self.total.lock().unwrap_or_else(|p| p.into_inner());
        *total = *total - previous.map_or(0, |r| r.size).min(*total) + size;
        if *total > self.budget {
            *total -= self.evict(*total - self.budget)?;
        }
        Ok(())
    }

    /// Removes entries in policy order until `needed` bytes are freed; returns the bytes freed.
    fn evict(&self, needed: u64) -> Result<u64, CacheError> {
        let mut rows = self.all_records()?;
        rows.sort_by(|(_, a), (_, b)| {
            a.eviction_rank(self.policy)
                .partial_cmp(&b.eviction_rank(self.policy))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut freed = 0;
        let mut victims = Vec::new();
        for (key, record) in rows {
            if freed >= needed {
                break;
            }
            freed += record.size;
            victims.push(key);
        }
        self.delete_rows(&victims)?;
        metrics::counter!("tts_cache_evictions_total", "tier" => "disk")
            .increment(victims.len() as u64);
        tracing::debug!(entries = victims.len(), bytes = freed, policy = ?self.policy, "evicted");
        Ok(freed)
    }

    fn all_records(&self) -> Result<Vec<(CacheKey, DiskRecord)>, CacheError> {
        let txn = self.db.begin_read().map_err(ix)?;
        let table = txn.open_table(ENTRIES).map_err(ix)?;
        let mut rows = Vec::new();
        for row in table.iter().map_err(ix)? {
            let (key, value) = row.map_err(ix)?;
            let (Ok(key), Ok(record)) = (
                CacheKey::parse(key.value()),
                serde_json::from_slice::<DiskRecord>(value.value()),
            ) else {
                continue;
            };
            rows.push((key, record));
        }
        Ok(rows)
    }

    /// Deletes index rows and files; returns the bytes they held.
    fn delete_rows(&self, keys: &[CacheKey]) -> Result<u64, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let txn = self.db.begin_write().map_err(ix)?;
        let mut freed = 0;
        {
            let mut table = txn.open_table(ENTRIES).map_err(ix)?;
            for key in keys {
                if let Some(old) = table.remove(key.as_str()).map_err(ix)? {
                    if let Ok(record) = serde_json::from_slice::<DiskRecord>(old.value()) {
                        freed += record.size;
                    }
                }
            }
        }
        txn.commit().map_err(ix)?;
        // Files go after the index: a crash in between leaves orphans, removed at the next open.
        for key in keys {
            let _ = fs::remove_file(self.object_path(key));
        }
        Ok(freed)
    }

    pub fn remove(&self, key: &CacheKey) -> Result<(), CacheError> {
        let freed = self.delete_rows(std::slice::from_ref(key))?;
        let mut total = self.total.lock().unwrap_or_else(|p| p.into_inner());
        *total = total.saturating_sub(freed);
        Ok(())
    }

    /// Removes every entry spoken by `voice` (blends included); returns how many.
    pub fn purge_voice(&self, voice: &str) -> Result<u64, CacheError> {
        let victims: Vec<CacheKey> = self
            .all_records()?
            .into_iter()
            .filter(|(_, r)| r.meta.uses_voice(voice))
            .map(|(k, _)| k)
            .collect();
        self.purge(&victims)
    }

    pub fn purge_all(&self) -> Result<u64, CacheError> {
        let victims: Vec<CacheKey> = self.all_records()?.into_iter().map(|(k, _)| k).collect();
        self.purge(&victims)
    }

    fn purge(&self, victims: &[CacheKey]) -> Result<u64, CacheError> {
        let mut total = self.total.lock().unwrap_or_else(|p| p.into_inner());
        let freed = self.delete_rows(victims)?;
        *total = total.saturating_sub(freed);
        Ok(victims.len() as u64)
    }

    /// Entries and bytes in the index.
    pub fn usage(&self) -> Result<(u64, u64), CacheError> {
        let txn = self.db.begin_read().map_err(ix)?;
        let table = txn.open_table(ENTRIES).map_err(ix)?;
        let entries = table.len().map_err(ix)?;
        let bytes = *self.total.lock().unwrap_or_else(|p| p.into_inner());
        Ok((entries, bytes))
    }

    /// Adds hits counted elsewhere (memory-tier hits) so eviction sees an entry's popularity.
    pub fn add_hits(&self, hits: &HashMap<CacheKey, u64>) -> Result<(), CacheError> {
        let mut txn = self.db.begin_write().map_err(ix)?;
        txn.set_durability(Durability::None);
        {
            let mut table = txn.open_table(ENTRIES).map_err(ix)?;
            let now = now_ms();
            for (key, count) in hits {
                let record = match table.get(key.as_str()).map_err(ix)? {
                    Some(value) => serde_json::from_slice::<DiskRecord>(value.value()).ok(),
                    None => None,
                };
                if let Some(mut record) = record {
                    record.hits += count;
                    record.last_hit = now;
                    let value = serde_json::to_vec(&record)?;
                    table.insert(key.as_str(), value.as_slice()).map_err(ix)?;
                }
            }
        }
        txn.commit().map_err(ix)
    }

    pub fn path_of(&self, key: &CacheKey) -> PathBuf {
        self.object_path(key)
    }
}

/// Writes `bytes` to `path` and fsyncs it before returning.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let mut file = fs::File::create(path).map_err(|e| CacheError::io(path, e))?;
    file.write_all(bytes).map_err(|e| CacheError::io(path, e))?;
    file.sync_all().map_err(|e| CacheError::io(path, e))
}

/// A unique-enough suffix for temp files written concurrently under the same key.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        now_ms(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{entry, key};

    fn hit(store: &DiskStore, key: &CacheKey) -> Option<CachedAudio> {
        match store.get(key).unwrap() {
            DiskRead::Hit(audio) => Some(audio),
            DiskRead::Missing | DiskRead::Corrupt => None,
        }
    }

    #[test]
    fn policy_names_parse_from_config_and_flags() {
        let parsed: EvictionPolicy = serde_json::from_str("\"cost-aware\"").unwrap();
        assert_eq!(parsed, EvictionPolicy::CostAware);
        assert_eq!("lru".parse::<EvictionPolicy>(), Ok(EvictionPolicy::Lru));
        assert_eq!(
            "cost-aware".parse::<EvictionPolicy>(),
            Ok(EvictionPolicy::CostAware)
        );
        assert!("fifo".parse::<EvictionPolicy>().is_err());
    }

    #[test]
    fn entries_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let stored = entry("v", 5_000, 10);
        {
            let store = DiskStore::open(dir.path(), 1 << 20, EvictionPolicy::Lru).unwrap();
            store.put(&key("a"), &stored).unwrap();
        }
        let store = DiskStore::open(dir.path(), 1 << 20, EvictionPolicy::Lru).unwrap();
        let found = hit(&store, &key("a")).expect("entry after reopen");
        assert_eq!(found.bytes, stored.bytes);
        assert_eq!(*found.meta, *stored.meta);
        assert_eq!(store.usage().unwrap(), (1, 5_000));
    }

    #[test]
    fn truncated_file_is_dropped_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 1 << 20, EvictionPolicy::Lru).unwrap();
        store.put(&key("a"), &entry("v", 5_000, 10)).unwrap();
        let path = store.path_of(&key("a"));
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..1_000]).unwrap();
        assert!(matches!(store.get(&key("a")).unwrap(), DiskRead::Corrupt));
        assert!(matches!(store.get(&key("a")).unwrap(), DiskRead::Missing));
        assert_eq!(store.usage().unwrap(), (0, 0));
    }

    #[test]
    fn flipped_byte_is_detected_by_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 1 << 20, EvictionPolicy::Lru).unwrap();
        store.put(&key("a"), &entry("v", 2_000, 10)).unwrap();
        let path = store.path_of(&key("a"));
        let mut bytes = fs::read(&path).unwrap();
        bytes[1_000] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(store.get(&key("a")).unwrap(), DiskRead::Corrupt));
    }

    #[test]
    fn lru_evicts_the_least_recently_used_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 2_500, EvictionPolicy::Lru).unwrap();
        store.put(&key("old"), &entry("v", 1_000, 10)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        store.put(&key("used"), &entry("v", 1_000, 10)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(hit(&store, &key("old")).is_some());
        std::thread::sleep(std::time::Duration::from_millis(5));
        store.put(&key("new"), &entry("v", 1_000, 10)).unwrap();
        // "used" was touched least recently ("old" was just read).
        assert!(store.record(&key("used")).unwrap().is_none());
        assert!(store.record(&key("old")).unwrap().is_some());
        assert!(store.record(&key("new")).unwrap().is_some());
        assert!(store.usage().unwrap().1 <= 2_500);
    }

    #[test]
    fn cost_aware_keeps_entries_with_most_hits_per_character() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 2_500, EvictionPolicy::CostAware).unwrap();
        store.put(&key("popular"), &entry("v", 1_000, 10)).unwrap();
        store
            .put(&key("unpopular"), &entry("v", 1_000, 10))
            .unwrap();
        for _ in 0..3 {
            assert!(hit(&store, &key("popular")).is_some());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        // Read last, so LRU would keep it; cost-aware still prefers the popular one.
        assert!(hit(&store, &key("unpopular")).is_some());
        store.put(&key("new"), &entry("v", 1_000, 1)).unwrap();
        assert!(store.record(&key("popular")).unwrap().is_some());
        assert!(store.record(&key("unpopular")).unwrap().is_none());
        assert!(store.record(&key("new")).unwrap().is_some());
        assert!(store.usage().unwrap().1 <= 2_500);
    }

    #[test]
    fn purge_by_voice_removes_only_that_voice() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 1 << 20, EvictionPolicy::Lru).unwrap();
        store.put(&key("a"), &entry("alice", 100, 10)).unwrap();
        store
            .put(&key("b"), &entry("alice(1)+bob(1)", 100, 10))
            .unwrap();
        store.put(&key("c"), &entry("carol", 100, 10)).unwrap();
        assert_eq!(store.purge_voice("alice").unwrap(), 2);
        assert_eq!(store.usage().unwrap(), (1, 100));
        assert!(!store.path_of(&key("a")).exists());
        assert_eq!(store.purge_all().unwrap(), 1);
        assert_eq!(store.usage().unwrap(), (0, 0));
    }
}
