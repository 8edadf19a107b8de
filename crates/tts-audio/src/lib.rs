//! Audio building blocks for the TTS server, chunk in and chunk out: mono f32 [`Pcm`],
//! EBU R128 [`loudness`] normalisation, streaming resampling ([`StreamResampler`]),
//! streaming encoders ([`StreamEncoder`]: WAV, MP3, Ogg Opus, FLAC, raw s16le, mu-law) and
//! decoding of uploads ([`decode`]).
//!
//! Streaming a synthesised sentence as Ogg Opus, chunk by chunk:
//!
//! ```
//! use tts_audio::{decode, new_encoder, AudioFormat, EncoderOptions, Pcm};
//!
//! let tone: Vec<f32> = (0..24_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
//! let mut encoder = new_encoder(&EncoderOptions::new(AudioFormat::Opus, 24_000))?;
//! let mut body = Vec::new();
//! for chunk in tone.chunks(4800) {
//!     body.extend(encoder.push(chunk)?); // send these bytes to the client now
//! }
//! body.extend(encoder.finish()?);
//! assert_eq!(decode(&body, Some("opus"))?.samples.len(), tone.len());
//! # Ok::<(), tts_audio::AudioError>(())
//! ```

mod decode;
mod encode;
mod error;
mod format;
pub mod loudness;
mod pcm;
mod resample;

pub use decode::decode;
pub use encode::{
    encode, new_encoder, opus_rate_for, EncoderOptions, FlacStreamEncoder, Mp3StreamEncoder,
    MulawStreamEncoder, OpusStreamEncoder, PcmStreamEncoder, StreamEncoder, WavStreamEncoder,
    FLAC_BLOCK_SIZE, MP3_DEFAULT_KBPS, MP3_ENCODER_DELAY, MULAW_RATE, OPUS_DEFAULT_KBPS,
    PACKETS_PER_PAGE,
};
pub use error::AudioError;
pub use format::AudioFormat;
pub use pcm::{trim_silence, Pcm};
pub use resample::{resample, StreamResampler, COMMON_RATES};
