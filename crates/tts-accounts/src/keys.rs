//! API keys: the TOML keys file (hashes only), constant-time verification, roles and key
//! generation.
//!
//! ```toml
//! [[keys]]
//! id = "alice"                 # shown in usage reports and logs
//! role = "user"                # or "admin"
//! sha256 = "9f86d08…"          # hex SHA-256 of the key; the key itself is never stored
//! rate_per_minute = 120        # optional; default: the server's
//! burst = 20                   # optional; default: rate_per_minute
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::rate::RateSpec;
use crate::AccountsError;

/// Prefix of generated keys, so a leaked key is recognisable in logs and by secret scanners.
pub const KEY_PREFIX: &str = "tts_";
/// Random bytes in a generated key (256 bits).
const KEY_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Self::Admin),
            "user" => Ok(Self::User),
            other => Err(format!("unknown role {other:?}: use admin or user")),
        }
    }
}

/// One entry of the keys file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    #[serde(alias = "name")]
    pub id: String,
    pub role: Role,
    /// Hex SHA-256 of the key.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// When the key was created (RFC 3339), for people reading the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

impl ApiKey {
    /// This key's own rate, when the file sets one.
    pub fn rate(&self) -> Option<RateSpec> {
        self.rate_per_minute.map(|per_minute| RateSpec {
            per_minute,
            burst: self.burst,
        })
    }
}

/// The keys file as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    #[serde(default)]
    pub keys: Vec<ApiKey>,
}

impl KeysFile {
    /// Reads `path`; a missing file is an empty key list only when `missing_ok`.
    pub fn read(path: &Path, missing_ok: bool) -> Result<Self, AccountsError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if missing_ok && err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default())
            }
            Err(source) => {
                return Err(AccountsError::ReadKeys {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let file: Self = toml::from_str(&text).map_err(|source| AccountsError::ParseKeys {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        file.check(path)?;
        Ok(file)
    }

    /// Unique ids, well-formed hashes, positive rates.
    fn check(&self, path: &Path) -> Result<(), AccountsError> {
        let invalid = |message: String| AccountsError::InvalidKeys {
            path: path.to_path_buf(),
            message,
        };
        let mut seen = std::collections::HashSet::new();
        for key in &self.keys {
            if !valid_name(&key.id) {
                return Err(invalid(format!("key id {:?} is not a valid name", key.id)));
            }
            if !seen.insert(key.id.as_str()) {
                return Err(invalid(format!("key id {:?} appears twice", key.id)));
            }
            let hash_ok = key.sha256.len() == 64 && hex::decode(&key.sha256).is_ok();
            if !hash_ok {
                return Err(invalid(format!(
                    "key {:?}: sha256 must be 64 hex digits (the hash, never the key)",
                    key.id
                )));
            }
            if key.rate_per_minute == Some(0) || key.burst == Some(0) {
                return Err(invalid(format!(
                    "key {:?}: rate_per_minute and burst must be at least 1",
                    key.id
                )));
            }
        }
        Ok(())
    }

    /// Generates a key named `id`, appends its hash and returns the key in clear (shown once).
    pub fn add(&mut self, id: &str, role: Role) -> Result<String, AccountsError> {
        if !valid_name(id) {
            return Err(AccountsError::InvalidKeyName(id.to_string()));
        }
        if self.keys.iter().any(|k| k.id == id) {
            return Err(AccountsError::DuplicateKey(id.to_string()));
        }
        let key = generate_key()?;
        self.keys.push(ApiKey {
            id: id.to_string(),
            role,
            sha256: hash_key(&key),
            rate_per_minute: None,
            burst: None,
            created: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        });
        Ok(key)
    }

    /// Writes the file atomically (temp file in the same directory, fsync, rename), readable by
    /// the owner only on Unix since it says who may do what.
    pub fn write(&self, path: &Path) -> Result<(), AccountsError> {
        let write_err = |source| AccountsError::WriteKeys {
            path: path.to_path_buf(),
            source,
        };
        let text = toml::to_string_pretty(self)
            .map_err(|err| write_err(std::io::Error::other(err.to_string())))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(write_err)?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "keys.toml".into());
        let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let result = (|| {
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(b"# API keys of tts-server: SHA-256 hashes only. Add keys with `tts-server keys add`.\n")?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, path)?;
            // The rename is durable once the directory entry is.
            fs::File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(write_err)
    }
}

fn valid_name(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Hex SHA-256 of a key, as stored in the keys file.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key: `tts_` and 64 hex digits from the operating system's generator.
pub fn generate_key() -> Result<String, AccountsError> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|err| AccountsError::Random(err.to_string()))?;
    Ok(format!("{KEY_PREFIX}{}", hex::encode(bytes)))
}

/// The loaded keys, ready to verify presented keys.
#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    keys: Vec<(ApiKey, [u8; 32])>,
}

impl KeyStore {
    pub fn new(file: KeysFile) -> Self {
        let keys = file
            .keys
            .into_iter()
            .filter_map(|key| {
                // `KeysFile::read` checked the hex; a hand-built file may not have been.
                let digest: [u8; 32] = hex::decode(&key.sha256).ok()?.try_into().ok()?;
                Some((key, digest))
            })
            .collect();
        Self { keys }
    }

    pub fn load(path: &Path) -> Result<Self, AccountsError> {
        Ok(Self::new(KeysFile::read(path, false)?))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn keys(&self) -> impl Iterator<Item = &ApiKey> {
        self.keys.iter().map(|(key, _)| key)
    }

    /// The entry whose hash matches `presented`. Every stored hash is compared, each in constant
    /// time, so timing tells neither how much of a hash matched nor which entry did.
    pub fn verify(&self, presented: &str) -> Option<&ApiKey> {
        let digest = Sha256::digest(presented.as_bytes());
        let mut found = None;
        for (key, stored) in &self.keys {
            if bool::from(stored.ct_eq(digest.as_slice())) {
                found = Some(key);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_key_verifies_and_only_its_hash_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let mut file = KeysFile::read(&path, true).unwrap();
        let key = file.add("alice", Role::User).unwrap();
        file.write(&path).unwrap();

        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&key), "the key itself must not be stored");
        assert!(text.contains(&hash_key(&key)));

        let store = KeyStore::load(&path).unwrap();
        let entry = store.verify(&key).expect("key verifies");
        assert_eq!(entry.id, "alice");
        assert_eq!(entry.role, Role::User);
        assert!(store.verify("tts_wrong").is_none());
        assert!(store.verify("").is_none());
    }

    #[test]
    fn generated_keys_differ_and_carry_the_prefix() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 2 * KEY_BYTES);
    }

    #[test]
    fn duplicate_name_is_refused() {
        let mut file = KeysFile::default();
        file.add("ops", Role::Admin).unwrap();
        assert!(matches!(
            file.add("ops", Role::User),
            Err(AccountsError::DuplicateKey(_))
        ));
        assert!(matches!(
            file.add("bad name", Role::User),
            Err(AccountsError::InvalidKeyName(_))
        ));
    }

    #[test]
    fn hand_written_file_with_rate_and_name_alias_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let hash = hash_key("secret");
        fs::write(
            &path,
            format!(
                "[[keys]]\nname = \"bob\"\nrole = \"admin\"\nsha256 = \"{hash}\"\nrate_per_minute = 30\nburst = 5\n"
            ),
        )
        .unwrap();
        let store = KeyStore::load(&path).unwrap();
        let bob = store.verify("secret").unwrap();
        assert_eq!(bob.role, Role::Admin);
        assert_eq!(
            bob.rate(),
            Some(RateSpec {
                per_minute: 30,
                burst: Some(5)
            })
        );
    }

    #[test]
    fn clear_text_key_in_the_hash_field_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        fs::write(
            &path,
            "[[keys]]\nid = \"eve\"\nrole = \"user\"\nsha256 = \"tts_plaintext\"\n",
        )
        .unwrap();
        assert!(matches!(
            KeyStore::load(&path),
            Err(AccountsError::InvalidKeys { .. })
        ));
    }

    #[test]
    fn duplicate_ids_and_unknown_roles_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let hash = hash_key("x");
        let entry = format!("[[keys]]\nid = \"a\"\nrole = \"user\"\nsha256 = \"{hash}\"\n");
        fs::write(&path, format!("{entry}{entry}")).unwrap();
        assert!(KeyStore::load(&path).is_err());
        fs::write(&path, entry.replace("user", "root")).unwrap();
        assert!(matches!(
            KeyStore::load(&path),
            Err(AccountsError::ParseKeys { .. })
        ));
    }

    #[test]
    fn missing_file_is_an_error_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.toml");
        assert!(KeyStore::load(&path).is_err());
        assert!(KeysFile::read(&path, true).unwrap().keys.is_empty());
    }
}
