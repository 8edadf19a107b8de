//! Tier 1: in-process memory, bounded by bytes (each entry weighs its audio size) and by age.

use std::time::Duration;

use crate::{CacheKey, CachedAudio};

/// Entries whose bytes exceed this fraction of the budget are not kept in memory (one large file
/// must not flush everything else).
const MAX_ENTRY_FRACTION: u64 = 4;

pub struct MemoryTier {
    cache: moka::sync::Cache<CacheKey, CachedAudio>,
    budget: u64,
}

impl MemoryTier {
    pub fn new(budget_bytes: u64, ttl: Option<Duration>) -> Self {
        let mut builder = moka::sync::Cache::builder()
            .max_capacity(budget_bytes)
            .weigher(|_key: &CacheKey, value: &CachedAudio| {
                u32::try_from(value.bytes.len()).unwrap_or(u32::MAX)
            });
        if let Some(ttl) = ttl {
            builder = builder.time_to_live(ttl);
        }
        Self {
            cache: builder.build(),
            budget: budget_bytes,
        }
    }

    pub fn get(&self, key: &CacheKey) -> Option<CachedAudio> {
        self.cache.get(key)
    }

    pub fn insert(&self, key: CacheKey, audio: CachedAudio) {
        if self.budget == 0 || audio.bytes.len() as u64 > self.budget / MAX_ENTRY_FRACTION {
            return;
        }
        self.cache.insert(key, audio);
    }

    pub fn remove(&self, key: &CacheKey) {
        self.cache.invalidate(key);
    }

    /// Removes every entry spoken by `voice`; returns how many.
    pub fn purge_voice(&self, voice: &str) -> u64 {
        let keys: Vec<_> = self
            .cache
            .iter()
            .filter(|(_, audio)| audio.meta.uses_voice(voice))
            .map(|(key, _)| key)
            .collect();
        for key in &keys {
            self.cache.invalidate(key.as_ref());
        }
        keys.len() as u64
    }

    pub fn purge_all(&self) -> u64 {
        let count = self.entries();
        self.cache.invalidate_all();
        count
    }

    /// Entries and bytes, after applying pending evictions.
    pub fn entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    pub fn bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{entry, key};

    #[test]
    fn byte_budget_bounds_the_stored_bytes() {
        let tier = MemoryTier::new(10_000, None);
        for i in 0..20 {
            tier.insert(key(&i.to_string()), entry("v", 1_000, 10));
        }
        assert!(tier.bytes() <= 10_000, "{} bytes kept", tier.bytes());
        assert!(tier.entries() >= 1);
    }

    #[test]
    fn purge_by_voice_leaves_other_voices() {
        let tier = MemoryTier::new(1 << 20, None);
        tier.insert(key("a"), entry("alice", 10, 10));
        tier.insert(key("b"), entry("bob", 10, 10));
        assert_eq!(tier.purge_voice("alice"), 1);
        assert!(tier.get(&key("a")).is_none());
        assert!(tier.get(&key("b")).is_some());
    }
}
