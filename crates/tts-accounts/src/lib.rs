//! `tts-accounts`: who may call the server and what they used.
//!
//! - [`keys`]: API keys from a TOML file that stores only SHA-256 hashes, verified in constant time,
//!   with a role (`admin`, `user`) and an optional per-key rate.
//! - [`rate`]: one token bucket per key (GCRA via `governor`), answering how long to wait.
//! - [`usage`]: requests, characters, audio seconds and cost per key and UTC day, persisted in redb.
//!
//! Nothing here knows HTTP; the server maps [`AccountsError`] and the limiter's wait to statuses.

pub mod keys;
pub mod rate;
pub mod usage;

pub use keys::{generate_key, hash_key, ApiKey, KeyStore, KeysFile, Role};
pub use rate::{RateLimits, RateSpec};
pub use usage::{Pricing, Totals, UsageReport, UsageRow, UsageStore};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("reading keys file {path}: {source}")]
    ReadKeys {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing keys file {path}: {source}")]
    ParseKeys {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("keys file {path}: {message}")]
    InvalidKeys { path: PathBuf, message: String },
    #[error("a key named {0:?} already exists")]
    DuplicateKey(String),
    #[error("key name {0:?} is not allowed: use 1-64 letters, digits, '-', '_' or '.'")]
    InvalidKeyName(String),
    #[error("writing keys file {path}: {source}")]
    WriteKeys {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("generating a random key: {0}")]
    Random(String),
    #[error("opening usage database {path}: {source}")]
    OpenUsage {
        path: PathBuf,
        #[source]
        source: Box<redb::DatabaseError>,
    },
    #[error("usage database: {0}")]
    Usage(#[source] Box<redb::Error>),
    #[error("date range: {0}")]
    InvalidRange(String),
}

/// redb has one error type per operation; they all convert into `redb::Error`.
pub(crate) fn db_err(err: impl Into<redb::Error>) -> AccountsError {
    AccountsError::Usage(Box::new(err.into()))
}
