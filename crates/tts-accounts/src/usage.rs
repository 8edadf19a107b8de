//! Usage per key and UTC day, persisted in redb (`<storage_dir>/usage.redb`).
//!
//! Recording only adds to an in-memory table, so a cache hit costs no disk write; [`UsageStore::flush`]
//! (called periodically by the server, at shutdown, and before every query) adds the pending totals
//! to the database in one transaction. Cost is computed when recorded, at the price then in force,
//! so a later price change does not rewrite history.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use chrono::NaiveDate;
use redb::{Database, ReadableTable, TableDefinition};
use serde::Serialize;

use crate::{db_err, AccountsError};

/// (key id, `YYYY-MM-DD`) → (requests, characters synthesized, characters from cache,
/// audio seconds, cost, cost saved). ISO dates sort as strings, so a key's days form a range.
const DAILY: TableDefinition<(&str, &str), DayValue> = TableDefinition::new("usage_daily_v1");

type DayValue = (u64, u64, u64, f64, f64, f64);

/// What synthesis costs, to estimate spend and what the cache saved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pricing {
    /// Price of synthesizing one million characters, in the operator's currency.
    pub per_million_characters: f64,
}

impl Pricing {
    fn of(self, characters: u64) -> f64 {
        characters as f64 * self.per_million_characters / 1e6
    }
}

/// Totals over some requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    pub requests: u64,
    /// Characters the model synthesized.
    pub characters_synthesized: u64,
    /// Characters answered from the cache (no synthesis).
    pub characters_cached: u64,
    pub audio_seconds: f64,
    /// Estimated cost of the synthesized characters.
    pub cost: f64,
    /// What the cached characters would have cost.
    pub cost_saved: f64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.requests += other.requests;
        self.characters_synthesized += other.characters_synthesized;
        self.characters_cached += other.characters_cached;
        self.audio_seconds += other.audio_seconds;
        self.cost += other.cost;
        self.cost_saved += other.cost_saved;
    }

    fn to_value(self) -> DayValue {
        (
            self.requests,
            self.characters_synthesized,
            self.characters_cached,
            self.audio_seconds,
            self.cost,
            self.cost_saved,
        )
    }

    fn from_value(v: DayValue) -> Self {
        Self {
            requests: v.0,
            characters_synthesized: v.1,
            characters_cached: v.2,
            audio_seconds: v.3,
            cost: v.4,
            cost_saved: v.5,
        }
    }
}

/// One key's totals on one day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    pub key_id: String,
    pub date: NaiveDate,
    #[serde(flatten)]
    pub totals: Totals,
}

/// The answer to a query: rows by key then day, and their sum.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub price_per_million_characters: f64,
    pub rows: Vec<UsageRow>,
    pub total: Totals,
}

pub struct UsageStore {
    db: Database,
    pricing: Pricing,
    pending: Mutex<BTreeMap<(String, NaiveDate), Totals>>,
}

impl UsageStore {
    /// Opens (or creates) the database file. One process may hold it open at a time.
    pub fn open(path: &Path, pricing: Pricing) -> Result<Self, AccountsError> {
        let db = Database::create(path).map_err(|source| AccountsError::OpenUsage {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        Self::init(db, pricing)
    }

    /// A store that lives in memory only (auth off without storage, tests).
    pub fn in_memory(pricing: Pricing) -> Result<Self, AccountsError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(db_err)?;
        Self::init(db, pricing)
    }

    fn init(db: Database, pricing: Pricing) -> Result<Self, AccountsError> {
        // Create the table up front so read transactions never meet a missing table.
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(DAILY).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self {
            db,
            pricing,
            pending: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn pricing(&self) -> Pricing {
        self.pricing
    }

    /// Adds one request's usage for `key_id` on `date`: `characters` synthesized by the model,
    /// `cached_characters` answered from the cache.
    pub fn record_on(
        &self,
        key_id: &str,
        date: NaiveDate,
        requests: u64,
        characters: u64,
        cached_characters: u64,
        audio_seconds: f64,
    ) {
        let delta = Totals {
            requests,
            characters_synthesized: characters,
            characters_cached: cached_characters,
            audio_seconds: audio_seconds.max(0.0),
            cost: self.pricing.of(characters),
            cost_saved: self.pricing.of(cached_characters),
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .entry((key_id.to_string(), date))
            .or_default()
            .add(&delta);
    }

    /// [`record_on`](Self::record_on) today (UTC).
    pub fn record(
        &self,
        key_id: &str,
        requests: u64,
        characters: u64,
        cached_characters: u64,
        audio_seconds: f64,
    ) {
        let today = chrono::Utc::now().date_naive();
        self.record_on(
            key_id,
            today,
            requests,
            characters,
            cached_characters,
            audio_seconds,
        );
    }

    /// Writes pending totals in one durable transaction. On failure they stay pending.
    pub fn flush(&self) -> Result<(), AccountsError> {
        let batch = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *pending)
        };
        if batch.is_empty() {
            return Ok(());
        }
        match self.write(&batch) {
            Ok(()) => Ok(()),
            Err(err) => {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for (slot, totals) in batch {
                    pending.entry(slot).or_default().add(&totals);
                }
                Err(err)
            }
        }
    }

    fn write(&self, batch: &BTreeMap<(String, NaiveDate), Totals>) -> Result<(), AccountsError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(DAILY).map_err(db_err)?;
            for ((key_id, date), delta) in batch {
                let day = date.format("%Y-%m-%d").to_string();
                let mut totals = table
                    .get((key_id.as_str(), day.as_str()))
                    .map_err(db_err)?
                    .map(|v| Totals::from_value(v.value()))
                    .unwrap_or_default();
                totals.add(delta);
                table
                    .insert((key_id.as_str(), day.as_str()), totals.to_value())
                    .map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Totals per key and day within `from..=to`, of one key or of all. Flushes first, so the
    /// answer includes every request recorded before the call.
    pub fn query(
        &self,
        key_id: Option<&str>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<UsageReport, AccountsError> {
        if from > to {
            return Err(AccountsError::InvalidRange(format!(
                "from {from} is after to {to}"
            )));
        }
        self.flush()?;
        let (from_s, to_s) = (
            from.format("%Y-%m-%d").to_string(),
            to.format("%Y-%m-%d").to_string(),
        );
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(DAILY).map_err(db_err)?;
        let mut rows = Vec::new();
        let mut push = |key: (&str, &str), value: DayValue| {
            if key.1 < from_s.as_str() || key.1 > to_s.as_str() {
                return;
            }
            if let Ok(date) = NaiveDate::parse_from_str(key.1, "%Y-%m-%d") {
                rows.push(UsageRow {
                    key_id: key.0.to_string(),
                    date,
                    totals: Totals::from_value(value),
                });
            }
        };
        match key_id {
            Some(id) => {
                let range = table
                    .range((id, from_s.as_str())..=(id, to_s.as_str()))
                    .map_err(db_err)?;
                for entry in range {
                    let (k, v) = entry.map_err(db_err)?;
                    push(k.value(), v.value());
                }
            }
            None => {
                for entry in table.iter().map_err(db_err)? {
                    let (k, v) = entry.map_err(db_err)?;
                    push(k.value(), v.value());
                }
            }
        }
        let mut total = Totals::default();
        for row in &rows {
            total.add(&row.totals);
        }
        Ok(UsageReport {
            from,
            to,
            price_per_million_characters: self.pricing.per_million_characters,
            rows,
            total,
        })
    }
}

impl Drop for UsageStore {
    /// Last chance for totals recorded since the last flush.
    fn drop(&mut self) {
        if let Err(err) = self.flush() {
            tracing::error!(error = %err, "usage totals lost at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRICE: Pricing = Pricing {
        per_million_characters: 15.0,
    };

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn totals_add_up_per_key_and_day_with_cost() {
        let store = UsageStore::in_memory(PRICE).unwrap();
        store.record_on("alice", day("2026-11-20"), 1, 1000, 0, 2.5);
        store.record_on("alice", day("2026-11-20"), 1, 0, 1000, 2.5);
        store.record_on("alice", day("2026-11-21"), 1, 500, 0, 1.0);
        store.record_on("bob", day("2026-11-21"), 1, 200_000, 0, 10.0);

        let alice = store
            .query(Some("alice"), day("2026-11-01"), day("2026-11-30"))
            .unwrap();
        assert_eq!(alice.rows.len(), 2);
        assert_eq!(alice.rows[0].date, day("2026-11-20"));
        assert_eq!(alice.rows[0].totals.requests, 2);
        assert_eq!(alice.total.requests, 3);
        assert_eq!(alice.total.characters_synthesized, 1500);
        assert_eq!(alice.total.characters_cached, 1000);
        assert!((alice.total.audio_seconds - 6.0).abs() < 1e-9);
        assert!((alice.total.cost - 1500.0 * 15.0 / 1e6).abs() < 1e-12);
        assert!((alice.total.cost_saved - 1000.0 * 15.0 / 1e6).abs() < 1e-12);

        let all = store
            .query(None, day("2026-11-21"), day("2026-11-21"))
            .unwrap();
        assert_eq!(all.rows.len(), 2);
        assert_eq!(all.total.characters_synthesized, 200_500);
        assert!((all.total.cost - 3.0075).abs() < 1e-9);
    }

    #[test]
    fn range_bounds_are_inclusive_and_other_keys_excluded() {
        let store = UsageStore::in_memory(PRICE).unwrap();
        for d in ["2026-10-31", "2026-11-01", "2026-11-15", "2026-11-16"] {
            store.record_on("k", day(d), 1, 10, 0, 0.0);
        }
        // A key whose id sorts between others must not leak into a one-key range.
        store.record_on("k2", day("2026-11-10"), 1, 10, 0, 0.0);
        let report = store
            .query(Some("k"), day("2026-11-01"), day("2026-11-15"))
            .unwrap();
        let dates: Vec<_> = report.rows.iter().map(|r| r.date).collect();
        assert_eq!(dates, vec![day("2026-11-01"), day("2026-11-15")]);
        assert!(store
            .query(Some("k"), day("2026-11-15"), day("2026-11-01"))
            .is_err());
    }

    #[test]
    fn totals_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.redb");
        {
            let store = UsageStore::open(&path, PRICE).unwrap();
            store.record_on("alice", day("2026-11-21"), 2, 100, 50, 3.0);
            store.flush().unwrap();
            // Recorded after the last flush: written when the store is dropped.
            store.record_on("alice", day("2026-11-21"), 1, 10, 0, 1.0);
        }
        let store = UsageStore::open(&path, PRICE).unwrap();
        let report = store
            .query(Some("alice"), day("2026-11-21"), day("2026-11-21"))
            .unwrap();
        assert_eq!(report.total.requests, 3);
        assert_eq!(report.total.characters_synthesized, 110);
        assert_eq!(report.total.characters_cached, 50);
        assert!((report.total.audio_seconds - 4.0).abs() < 1e-9);
    }

    #[test]
    fn opening_a_file_held_by_another_store_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.redb");
        let _first = UsageStore::open(&path, PRICE).unwrap();
        assert!(matches!(
            UsageStore::open(&path, PRICE),
            Err(AccountsError::OpenUsage { .. })
        ));
    }
}
