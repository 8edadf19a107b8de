//! Mono f32 PCM buffer, sample conversions and silence trimming.

use std::path::Path;

use crate::AudioError;

/// Mono PCM audio, samples nominally in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    /// Mono samples.
    pub samples: Vec<f32>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
}

impl Pcm {
    /// Wraps samples at the given rate.
    pub fn new(samples: Vec<f32>, sample_rate: u32) -> Self {
        Self {
            samples,
            sample_rate,
        }
    }

    /// Duration in seconds (0 when the rate is 0).
    pub fn duration_secs(&self) -> f64 {
        if self.sample_rate == 0 {
            0.0
        } else {
            self.samples.len() as f64 / self.sample_rate as f64
        }
    }

    /// Writes a 16-bit mono WAV file (via `hound`, which patches the header sizes on close).
    pub fn write_wav_file(&self, path: &Path) -> Result<(), AudioError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: self.sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let wav_err = |e: hound::Error| AudioError::Encode {
            format: "wav",
            message: e.to_string(),
        };
        let mut writer = hound::WavWriter::create(path, spec).map_err(wav_err)?;
        for &s in &self.samples {
            writer.write_sample(f32_to_i16(s)).map_err(wav_err)?;
        }
        writer.finalize().map_err(wav_err)
    }
}

/// Converts a float sample to 16-bit, clipping out-of-range values instead of wrapping.
pub(crate) fn f32_to_i16(sample: f32) -> i16 {
    let s = if sample.is_finite() { sample } else { 0.0 };
    (s.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// Margin kept around the detected speech so that soft onsets and decays are not clipped.
const TRIM_MARGIN_MS: u32 = 10;

/// Removes leading and trailing audio whose sample peak stays below `threshold_dbfs`
/// (e.g. -50.0), keeping 10 ms of margin on each side.
/// An all-silent input gives an empty buffer at the same rate.
pub fn trim_silence(pcm: &Pcm, threshold_dbfs: f32) -> Pcm {
    let threshold = 10f32.powf(threshold_dbfs / 20.0);
    let loud = |s: &f32| s.abs() > threshold;
    let (Some(first), Some(last)) = (
        pcm.samples.iter().position(loud),
        pcm.samples.iter().rposition(loud),
    ) else {
        return Pcm::new(Vec::new(), pcm.sample_rate);
    };
    let margin = (pcm.sample_rate as usize * TRIM_MARGIN_MS as usize) / 1000;
    let start = first.saturating_sub(margin);
    let end = (last + 1 + margin).min(pcm.samples.len());
    Pcm::new(pcm.samples[start..end].to_vec(), pcm.sample_rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_is_samples_over_rate() {
        let pcm = Pcm::new(vec![0.0; 24_000], 24_000);
        assert!((pcm.duration_secs() - 1.0).abs() < 1e-12);
        assert_eq!(Pcm::new(vec![0.0; 10], 0).duration_secs(), 0.0);
    }

    #[test]
    fn f32_to_i16_clips_and_rounds() {
        assert_eq!(f32_to_i16(2.0), 32767);
        assert_eq!(f32_to_i16(-2.0), -32767);
        assert_eq!(f32_to_i16(0.5), 16384);
        assert_eq!(f32_to_i16(f32::NAN), 0);
    }

    #[test]
    fn trim_silence_keeps_tone_plus_margin() {
        let rate = 16_000;
        let mut samples = vec![0.0f32; rate as usize / 2];
        samples
            .extend((0..rate as usize).map(|i| {
                0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin()
            }));
        samples.extend(vec![0.0f32; rate as usize]);
        let trimmed = trim_silence(&Pcm::new(samples, rate), -50.0);
        let margin = 2 * (rate as usize * TRIM_MARGIN_MS as usize / 1000);
        // The tone's first sample is 0, so the detected start may be one sample late.
        assert!(trimmed.samples.len() <= rate as usize + margin);
        assert!(trimmed.samples.len() >= rate as usize + margin - 4);
    }

    #[test]
    fn trim_silence_of_silence_is_empty() {
        let trimmed = trim_silence(&Pcm::new(vec![1e-6; 1000], 8000), -40.0);
        assert!(trimmed.samples.is_empty());
        assert_eq!(trimmed.sample_rate, 8000);
    }
}
