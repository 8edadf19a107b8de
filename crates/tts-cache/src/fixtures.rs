//! Test fixtures shared by the unit tests of the tiers and the coalescer.

use crate::{CacheKey, CachedAudio, EntryMeta, KeyInput};

/// The key of `text` in a fixed model, voice and format.
pub fn key(text: &str) -> CacheKey {
    CacheKey::for_request(&KeyInput {
        model_id: "m",
        model_digest: "d",
        voice_id: "v",
        voice_digest: "",
        text,
        speed: 1.0,
        format: "mp3",
        sample_rate: None,
        bitrate_kbps: None,
        normalize_loudness: false,
    })
}

/// Metadata of a one-second MP3 of `characters` characters spoken by `voice`.
pub fn meta(voice: &str, characters: u64) -> EntryMeta {
    EntryMeta {
        format: "mp3".into(),
        content_type: "audio/mpeg".into(),
        sample_rate: 22_050,
        voice_id: voice.into(),
        characters,
        sentences: 1,
        audio_seconds: 1.0,
        synth_seconds: 0.2,
    }
}

/// An entry of `size` bytes (a repeating, non-constant pattern).
pub fn entry(voice: &str, size: usize, characters: u64) -> CachedAudio {
    CachedAudio::new(
        (0..size).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        meta(voice, characters),
    )
}
