//! The crate's error type.

/// Everything that can go wrong while loading the encoder, embedding audio or fitting a voice.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// The weights file is missing or malformed.
    #[error("speaker encoder weights {path}: {message}")]
    Weights { path: String, message: String },
    /// The audio cannot be embedded (empty, silent, too short, bad rate).
    #[error("invalid audio: {0}")]
    InvalidAudio(String),
    /// A fitting option or voice is unusable.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Audio(#[from] tts_audio::AudioError),
    #[error(transparent)]
    Model(#[from] tts_models::ModelError),
    #[error(transparent)]
    Text(#[from] tts_text::TextError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
