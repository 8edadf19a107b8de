//! The crate's error type. Upload problems carry enough to tell the uploader what to fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("the file is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("the file is not audio we can decode (WAV, MP3, FLAC, Ogg Vorbis or Opus): {0}")]
    Undecodable(String),
    #[error("the recording's sample rate is {rate} Hz; at least {min} Hz is required")]
    SampleRateTooLow { rate: u32, min: u32 },
    #[error(
        "the recording is mostly silence: speech in {speech_percent:.0}% of it, at least {min_percent:.0}% is required"
    )]
    MostlySilence {
        speech_percent: f64,
        min_percent: f64,
    },
    #[error("the recording has {secs:.1} s of sound after trimming silence; at least {min:.1} s is required")]
    TooShort { secs: f64, min: f64 },
    #[error("the recording has {secs:.1} s of sound after trimming silence; at most {max:.1} s is allowed")]
    TooLong { secs: f64, max: f64 },
    #[error("the recording is heavily clipped: {percent:.1}% of samples at full scale, at most {max_percent:.1}% is allowed")]
    Clipped { percent: f64, max_percent: f64 },
    #[error("invalid {field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    #[error("invalid voice id {0:?}")]
    InvalidId(String),
    #[error("no uploaded voice {0:?}")]
    NotFound(String),
    #[error("stored voice {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Audio(#[from] tts_audio::AudioError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl VoiceError {
    /// True for problems with the uploaded recording itself (the client's to fix).
    pub fn is_bad_upload(&self) -> bool {
        matches!(
            self,
            Self::TooLarge { .. }
                | Self::Undecodable(_)
                | Self::SampleRateTooLow { .. }
                | Self::MostlySilence { .. }
                | Self::TooShort { .. }
                | Self::TooLong { .. }
                | Self::Clipped { .. }
                | Self::InvalidInput { .. }
                | Self::InvalidId(_)
        )
    }

    /// A stable machine-readable code for the HTTP error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "file_too_large",
            Self::Undecodable(_) => "undecodable_audio",
            Self::SampleRateTooLow { .. } => "sample_rate_too_low",
            Self::MostlySilence { .. } => "mostly_silence",
            Self::TooShort { .. } => "audio_too_short",
            Self::TooLong { .. } => "audio_too_long",
            Self::Clipped { .. } => "audio_clipped",
            Self::InvalidInput { .. } => "invalid_input",
            Self::InvalidId(_) => "invalid_voice_id",
            Self::NotFound(_) => "voice_not_found",
            Self::Corrupt { .. } | Self::Io { .. } | Self::Audio(_) | Self::Candle(_) => {
                "voice_storage_error"
            }
        }
    }

    /// The request field at fault: `file` for the recording, else the named field.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidInput { field, .. } => Some(field),
            Self::InvalidId(_) | Self::NotFound(_) => Some("id"),
            e if e.is_bad_upload() => Some("file"),
            _ => None,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
