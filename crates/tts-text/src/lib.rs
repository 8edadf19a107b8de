//! Text front ends for the speech models: espeak-ng phonemization with Piper's conventions,
//! Japanese reading with a morphological dictionary (Kokoro), and sentence splitting for streaming.

pub mod espeak;
pub mod japanese;
pub mod kokoro;
pub mod piper;
pub mod sentences;

pub use espeak::{Espeak, PhonemeClause};
pub use piper::PhonemeIdMap;
pub use sentences::split_sentences;

/// Errors of the text front end.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("espeak-ng initialisation failed: {0}")]
    EspeakInit(String),
    #[error("espeak-ng voice {0:?} is not available")]
    UnknownVoice(String),
    #[error("espeak-ng failed: {0}")]
    Espeak(String),
    #[error("invalid text: {0}")]
    InvalidText(String),
    #[error("invalid phoneme map: {0}")]
    PhonemeMap(String),
    /// The Japanese dictionary is missing or unreadable (the message says how to fetch it).
    #[error("Japanese dictionary unavailable: {0}")]
    JapaneseDictionary(String),
}
