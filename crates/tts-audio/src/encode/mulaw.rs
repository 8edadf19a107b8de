//! Raw G.711 mu-law at 8 kHz for telephony; other input rates are resampled internally.
//!
//! The companding is the ITU-T G.711 formula (bias 0x84, 8 segments); no maintained crate
//! offers it, and it is a dozen lines.

use super::{ensure_open, StreamEncoder};
use crate::pcm::f32_to_i16;
use crate::{AudioError, StreamResampler};

/// G.711 telephony rate.
pub const MULAW_RATE: u32 = 8000;

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// Encodes one 16-bit sample to a mu-law byte (G.711).
pub(crate) fn linear_to_mulaw(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    // Segment = position of the highest set bit above bit 7.
    let exponent = (31 - (s as u32).leading_zeros()).saturating_sub(7).min(7) as i32;
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Streaming mu-law encoder.
pub struct MulawStreamEncoder {
    resampler: StreamResampler,
    finished: bool,
}

impl MulawStreamEncoder {
    /// Creates an encoder for input at `sample_rate`.
    pub fn new(sample_rate: u32) -> Result<Self, AudioError> {
        Ok(Self {
            resampler: StreamResampler::new(sample_rate, MULAW_RATE)?,
            finished: false,
        })
    }
}

fn to_mulaw(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .map(|&s| linear_to_mulaw(f32_to_i16(s)))
        .collect()
}

impl StreamEncoder for MulawStreamEncoder {
    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, AudioError> {
        ensure_open(self.finished)?;
        Ok(to_mulaw(&self.resampler.process(samples)?))
    }

    fn finish(&mut self) -> Result<Vec<u8>, AudioError> {
        ensure_open(self.finished)?;
        self.finished = true;
        Ok(to_mulaw(&self.resampler.finish()?))
    }

    fn output_sample_rate(&self) -> u32 {
        MULAW_RATE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_reference_points() {
        // Values from the G.711 tables: silence, extremes and a mid-scale step.
        assert_eq!(linear_to_mulaw(0), 0xFF);
        assert_eq!(linear_to_mulaw(-1), 0x7F);
        assert_eq!(linear_to_mulaw(32767), 0x80);
        assert_eq!(linear_to_mulaw(-32768), 0x00);
        assert_eq!(linear_to_mulaw(1000), 0xCE);
    }
}
