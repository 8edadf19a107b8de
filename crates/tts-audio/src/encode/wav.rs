//! Streaming RIFF/WAVE writer (16-bit PCM mono).
//!
//! `hound` patches the sizes on close and so needs `Seek`; an HTTP body cannot seek, so the
//! 44-byte header is written here. With an unknown length the RIFF and data sizes are
//! `0xFFFFFFFF` (the usual streaming convention, understood by ffmpeg, browsers and symphonia);
//! with a known length they are exact.

use super::pcm::push_s16le;
use super::{ensure_open, StreamEncoder};
use crate::AudioError;

/// Size used for RIFF/data chunk lengths when the total is not known yet.
const UNKNOWN_SIZE: u32 = 0xFFFF_FFFF;

/// Streaming WAV encoder.
#[derive(Debug)]
pub struct WavStreamEncoder {
    sample_rate: u32,
    total_samples: Option<u64>,
    header_written: bool,
    samples_written: u64,
    finished: bool,
}

impl WavStreamEncoder {
    /// Creates an encoder; `total_samples` gives an exact header when known.
    pub fn new(sample_rate: u32, total_samples: Option<u64>) -> Result<Self, AudioError> {
        // The byte-rate field is `rate * 2` in 32 bits.
        if sample_rate == 0 || sample_rate > u32::MAX / 2 {
            return Err(AudioError::UnsupportedSampleRate(sample_rate));
        }
        if let Some(n) = total_samples {
            // The data size must fit the 32-bit RIFF fields (with 36 bytes of header).
            if n.saturating_mul(2) > (u32::MAX - 36) as u64 {
                return Err(AudioError::InvalidArgument(format!(
                    "{n} samples do not fit in a WAV file"
                )));
            }
        }
        Ok(Self {
            sample_rate,
            total_samples,
            header_written: false,
            samples_written: 0,
            finished: false,
        })
    }

    fn header(&self, total_samples: Option<u64>) -> Vec<u8> {
        let (riff_size, data_size) = match total_samples {
            // Checked in `new` to fit.
            Some(n) => (36 + (n * 2) as u32, (n * 2) as u32),
            None => (UNKNOWN_SIZE, UNKNOWN_SIZE),
        };
        let mut h = Vec::with_capacity(44);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&riff_size.to_le_bytes());
        h.extend_from_slice(b"WAVE");
        h.extend_from_slice(b"fmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes()); // PCM
        h.extend_from_slice(&1u16.to_le_bytes()); // mono
        h.extend_from_slice(&self.sample_rate.to_le_bytes());
        h.extend_from_slice(&(self.sample_rate * 2).to_le_bytes()); // byte rate
        h.extend_from_slice(&2u16.to_le_bytes()); // block align
        h.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
        h.extend_from_slice(b"data");
        h.extend_from_slice(&data_size.to_le_bytes());
        h
    }
}

impl StreamEncoder for WavStreamEncoder {
    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, AudioError> {
        ensure_open(self.finished)?;
        let after = self.samples_written + samples.len() as u64;
        if let Some(total) = self.total_samples {
            if after > total {
                return Err(AudioError::InvalidArgument(format!(
                    "WAV header promised {total} samples, got at least {after}"
                )));
            }
        }
        let mut out = Vec::new();
        if !self.header_written {
            out = self.header(self.total_samples);
            self.header_written = true;
        }
        push_s16le(&mut out, samples);
        self.samples_written = after;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, AudioError> {
        ensure_open(self.finished)?;
        self.finished = true;
        if let Some(total) = self.total_samples {
            if self.samples_written != total {
                return Err(AudioError::InvalidArgument(format!(
                    "WAV header promised {total} samples, got {}",
                    self.samples_written
                )));
            }
        }
        if self.header_written {
            Ok(Vec::new())
        } else {
            // Nothing was pushed: the length (0) is known now, so the header can be exact.
            self.header_written = true;
            Ok(self.header(Some(0)))
        }
    }

    fn output_sample_rate(&self) -> u32 {
        self.sample_rate
    }
}
