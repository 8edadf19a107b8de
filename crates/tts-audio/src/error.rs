//! The crate's error type.

/// Everything that can go wrong in audio processing, encoding or decoding.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// A caller-supplied parameter is out of range (sample rate, bitrate, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The sample rate is not supported by the operation.
    #[error("unsupported sample rate {0} Hz")]
    UnsupportedSampleRate(u32),
    /// An unknown format name was given.
    #[error("unknown audio format {0:?}")]
    UnknownFormat(String),
    /// Resampler construction or processing failed.
    #[error("resampling failed: {0}")]
    Resample(String),
    /// Loudness measurement failed.
    #[error("loudness measurement failed: {0}")]
    Loudness(String),
    /// An encoder failed.
    #[error("{format} encoding failed: {message}")]
    Encode {
        /// Format name.
        format: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Input bytes could not be decoded.
    #[error("decoding failed: {0}")]
    Decode(String),
    /// The encoder was used after `finish`.
    #[error("encoder already finished")]
    Finished,
    /// I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
