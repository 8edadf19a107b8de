//! Streaming encoders behind one [`StreamEncoder`] interface; one-shot [`encode`] is built on it.
//!
//! Every encoder takes mono f32 chunks of any size and returns the bytes that are ready, so an
//! HTTP body can be streamed while synthesis is still running. Concatenating all returned
//! byte chunks (including [`StreamEncoder::finish`]'s) gives a complete, valid file.

mod flac;
mod mp3;
mod mulaw;
mod opus;
mod pcm;
mod wav;

pub use flac::{FlacStreamEncoder, BLOCK_SIZE as FLAC_BLOCK_SIZE};
pub use mp3::{Mp3StreamEncoder, MP3_DEFAULT_KBPS, MP3_ENCODER_DELAY};
pub use mulaw::{MulawStreamEncoder, MULAW_RATE};
pub use opus::{opus_rate_for, OpusStreamEncoder, OPUS_DEFAULT_KBPS, PACKETS_PER_PAGE};
pub use pcm::PcmStreamEncoder;
pub use wav::WavStreamEncoder;

use crate::{AudioError, AudioFormat, Pcm};

/// Settings for [`new_encoder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderOptions {
    /// Output format.
    pub format: AudioFormat,
    /// Sample rate of the pushed samples, in Hz.
    pub sample_rate: u32,
    /// Bitrate for lossy formats (MP3, Opus); `None` picks a speech-friendly default.
    pub bitrate_kbps: Option<u32>,
    /// Total number of samples that will be pushed, when known up front. WAV then writes an
    /// exact header (instead of the streaming `0xFFFFFFFF` sizes) and FLAC a STREAMINFO total.
    pub total_samples: Option<u64>,
}

impl EncoderOptions {
    /// Options with default bitrate and unknown length.
    pub fn new(format: AudioFormat, sample_rate: u32) -> Self {
        Self {
            format,
            sample_rate,
            bitrate_kbps: None,
            total_samples: None,
        }
    }
}

/// A chunk-in, bytes-out encoder for one stream.
pub trait StreamEncoder: Send {
    /// Encodes a chunk of mono samples at the input rate; returns the bytes ready now (may be empty).
    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, AudioError>;
    /// Flushes everything that is buffered and returns the trailing bytes. Call once.
    fn finish(&mut self) -> Result<Vec<u8>, AudioError>;
    /// Rate of the encoded audio (Opus and mu-law may resample internally).
    fn output_sample_rate(&self) -> u32;
}

/// Creates a streaming encoder for `opts.format`.
pub fn new_encoder(opts: &EncoderOptions) -> Result<Box<dyn StreamEncoder>, AudioError> {
    if opts.sample_rate == 0 {
        return Err(AudioError::UnsupportedSampleRate(0));
    }
    Ok(match opts.format {
        AudioFormat::Wav => Box::new(WavStreamEncoder::new(opts.sample_rate, opts.total_samples)?),
        AudioFormat::Mp3 => Box::new(Mp3StreamEncoder::new(opts.sample_rate, opts.bitrate_kbps)?),
        AudioFormat::Opus => Box::new(OpusStreamEncoder::new(opts.sample_rate, opts.bitrate_kbps)?),
        AudioFormat::Flac => Box::new(FlacStreamEncoder::new(
            opts.sample_rate,
            opts.total_samples,
        )?),
        AudioFormat::Pcm => Box::new(PcmStreamEncoder::new(opts.sample_rate)),
        AudioFormat::Mulaw => Box::new(MulawStreamEncoder::new(opts.sample_rate)?),
    })
}

/// Encodes a whole clip in one call (the streaming encoder with a known length).
pub fn encode(
    pcm: &Pcm,
    format: AudioFormat,
    bitrate_kbps: Option<u32>,
) -> Result<Vec<u8>, AudioError> {
    let opts = EncoderOptions {
        format,
        sample_rate: pcm.sample_rate,
        bitrate_kbps,
        total_samples: Some(pcm.samples.len() as u64),
    };
    let mut enc = new_encoder(&opts)?;
    let mut out = enc.push(&pcm.samples)?;
    out.extend(enc.finish()?);
    Ok(out)
}

/// Guards against use after `finish`, shared by the encoders.
pub(crate) fn ensure_open(finished: bool) -> Result<(), AudioError> {
    if finished {
        Err(AudioError::Finished)
    } else {
        Ok(())
    }
}
