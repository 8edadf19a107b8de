//! Raw headerless PCM, signed 16-bit little-endian, mono, at the input rate.

use super::{ensure_open, StreamEncoder};
use crate::pcm::f32_to_i16;
use crate::AudioError;

/// Raw s16le encoder: each chunk maps straight to bytes.
#[derive(Debug)]
pub struct PcmStreamEncoder {
    sample_rate: u32,
    finished: bool,
}

impl PcmStreamEncoder {
    /// Creates an encoder for samples at `sample_rate`.
    pub fn new(sample_rate: u32) -> Self {
        Self {
            sample_rate,
            finished: false,
        }
    }
}

/// Appends samples as s16le bytes.
pub(crate) fn push_s16le(out: &mut Vec<u8>, samples: &[f32]) {
    out.reserve(samples.len() * 2);
    for &s in samples {
        out.extend_from_slice(&f32_to_i16(s).to_le_bytes());
    }
}

impl StreamEncoder for PcmStreamEncoder {
    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, AudioError> {
        ensure_open(self.finished)?;
        let mut out = Vec::new();
        push_s16le(&mut out, samples);
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, AudioError> {
        ensure_open(self.finished)?;
        self.finished = true;
        Ok(Vec::new())
    }

    fn output_sample_rate(&self) -> u32 {
        self.sample_rate
    }
}
