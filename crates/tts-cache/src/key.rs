//! Cache keys: sha256 over a canonical JSON encoding of everything that changes the audio bytes.
//! Two replicas that load the same weights compute the same key for the same request.

use serde::Serialize;
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::CacheError;

/// Bumped whenever the stored bytes for the same request would change (encoder, joining, layout),
/// so old entries stop matching instead of being served.
pub const CACHE_FORMAT_VERSION: u32 = 1;

/// Everything a request's audio depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInput<'a> {
    pub model_id: &'a str,
    /// Digest of the model's weight files (see `file_digest`).
    pub model_digest: &'a str,
    /// Voice id as requested, blends included (`a(2)+b(1)`).
    pub voice_id: &'a str,
    /// Digest of the voice's data (style pack, cloned voice); empty when the model digest covers it.
    pub voice_digest: &'a str,
    pub text: &'a str,
    pub speed: f32,
    /// Format name (`mp3`, `wav`, …).
    pub format: &'a str,
    pub sample_rate: Option<u32>,
    pub bitrate_kbps: Option<u32>,
    pub normalize_loudness: bool,
}

/// The canonical form hashed into a key. Field order is fixed by this declaration (serde_json
/// writes struct fields in order); floats are written as their shortest round-trip text.
#[derive(Serialize)]
struct Canonical<'a> {
    version: u32,
    model_id: &'a str,
    model_digest: &'a str,
    voice_id: &'a str,
    voice_digest: &'a str,
    text: String,
    speed: String,
    format: String,
    sample_rate: Option<u32>,
    bitrate_kbps: Option<u32>,
    normalize_loudness: bool,
}

/// A 64-character lowercase hex sha256.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    pub fn for_request(input: &KeyInput<'_>) -> Self {
        let canonical = Canonical {
            version: CACHE_FORMAT_VERSION,
            model_id: input.model_id,
            model_digest: input.model_digest,
            voice_id: input.voice_id.trim(),
            voice_digest: input.voice_digest,
            text: normalize_text(input.text),
            // -0.0 and 0.0 are one speed; the range check happens before keys are built.
            speed: format!("{}", input.speed + 0.0),
            format: input.format.to_ascii_lowercase(),
            sample_rate: input.sample_rate,
            bitrate_kbps: input.bitrate_kbps,
            normalize_loudness: input.normalize_loudness,
        };
        // Serialising plain strings and numbers cannot fail.
        let encoded = serde_json::to_vec(&canonical).unwrap_or_default();
        Self(hex::encode(Sha256::digest(&encoded)))
    }

    /// Accepts exactly 64 hex characters (any case; stored lowercase).
    pub fn parse(text: &str) -> Result<Self, CacheError> {
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(text.to_ascii_lowercase()))
        } else {
            Err(CacheError::InvalidKey(text.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Unicode NFC with runs of whitespace collapsed to one space and the ends trimmed: texts that
/// differ only there are spoken the same.
pub fn normalize_text(text: &str) -> String {
    let composed: String = text.nfc().collect();
    composed.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hex sha256 of a file's content, read in blocks (weights are tens of megabytes).
/// Blocking: call from a blocking thread.
pub fn file_digest(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Hex sha256 over several digests (order matters), e.g. a model's files or a blend's voices.
pub fn combine_digests<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> KeyInput<'static> {
        KeyInput {
            model_id: "piper",
            model_digest: "aaaa",
            voice_id: "en_US-joe-medium",
            voice_digest: "",
            text: "Hello there. How are you?",
            speed: 1.0,
            format: "mp3",
            sample_rate: None,
            bitrate_kbps: None,
            normalize_loudness: false,
        }
    }

    #[test]
    fn same_inputs_give_the_same_key() {
        let a = CacheKey::for_request(&base());
        let owned_text = String::from("Hello there. How are you?");
        let b = CacheKey::for_request(&KeyInput {
            text: &owned_text,
            ..base()
        });
        assert_eq!(a, b);
        assert_eq!(a.as_str().len(), 64);
        assert!(CacheKey::parse(a.as_str()).is_ok());
    }

    #[test]
    fn whitespace_and_unicode_composition_do_not_change_the_key() {
        let a = CacheKey::for_request(&KeyInput {
            text: "Caf\u{e9}  au\n lait ",
            ..base()
        });
        let b = CacheKey::for_request(&KeyInput {
            text: " Cafe\u{301} au lait",
            ..base()
        });
        assert_eq!(a, b);
    }

    #[test]
    fn every_field_changes_the_key() {
        let reference = CacheKey::for_request(&base());
        let variants = [
            KeyInput {
                model_id: "kokoro",
                ..base()
            },
            KeyInput {
                model_digest: "bbbb",
                ..base()
            },
            KeyInput {
                voice_id: "en_US-amy-low",
                ..base()
            },
            KeyInput {
                voice_digest: "cccc",
                ..base()
            },
            KeyInput {
                text: "Hello there. How are you!",
                ..base()
            },
            KeyInput {
                speed: 1.25,
                ..base()
            },
            KeyInput {
                format: "wav",
                ..base()
            },
            KeyInput {
                sample_rate: Some(16_000),
                ..base()
            },
            KeyInput {
                bitrate_kbps: Some(64),
                ..base()
            },
            KeyInput {
                normalize_loudness: true,
                ..base()
            },
        ];
        let mut seen = std::collections::HashSet::new();
        seen.insert(reference.clone());
        for variant in &variants {
            let key = CacheKey::for_request(variant);
            assert_ne!(key, reference, "{variant:?} did not change the key");
            assert!(
                seen.insert(key),
                "{variant:?} collides with another variant"
            );
        }
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        // "ab"+"c" and "a"+"bc" must not encode alike.
        let a = CacheKey::for_request(&KeyInput {
            model_id: "ab",
            model_digest: "c",
            ..base()
        });
        let b = CacheKey::for_request(&KeyInput {
            model_id: "a",
            model_digest: "bc",
            ..base()
        });
        assert_ne!(a, b);
        assert_ne!(combine_digests(["ab", "c"]), combine_digests(["a", "bc"]));
    }

    #[test]
    fn malformed_keys_are_rejected() {
        assert!(CacheKey::parse("abc").is_err());
        assert!(CacheKey::parse(&"g".repeat(64)).is_err());
        assert!(CacheKey::parse(&"../".repeat(22)[..64]).is_err());
        assert_eq!(
            CacheKey::parse(&"AB".repeat(32)).unwrap().as_str(),
            "ab".repeat(32)
        );
    }
}
