//! The speaker encoder as a function candle can back-propagate through: a tensor of 24 kHz
//! samples → embedding tensor, so voice cloning can follow the gradient of the similarity back
//! into Kokoro's decoder.
//!
//! Same network and mel front end as [`SpeakerEncoder::embed`], with two simplifications that
//! only nudge the values (scores are always taken with `embed`; this path only has to point the
//! right way): 24 → 16 kHz is a fixed windowed-sinc filter (rubato's differs slightly), and long
//! silences are not trimmed (synthesized sentences have none). The volume gain is measured on
//! the current samples and held constant.

use candle_core::{Device, Tensor, D};

use crate::audio::{self, HOP, N_FFT, N_MELS};
use crate::{SpeakerEncoder, SpeakerError, MIN_COVERAGE, PARTIALS_PER_SECOND};

/// Taps of the 24 → 16 kHz low-pass (run at the 48 kHz intermediate rate).
const RESAMPLE_TAPS: usize = 97;
/// Pass band edge of that filter; the highest mel band ends at 8 kHz.
const RESAMPLE_CUTOFF_HZ: f64 = 7_600.0;

/// Fixed tensors of the differentiable front end.
#[derive(Debug)]
pub struct DifferentiableFrontEnd {
    /// `[1, 1, RESAMPLE_TAPS]` low-pass at 48 kHz, gain 2 (it follows ×2 zero stuffing).
    lowpass: Tensor,
    /// `[2·bins, 1, N_FFT]`: window × cos rows, then window × sin rows.
    dft: Tensor,
    /// `[N_MELS, bins]`.
    filters: Tensor,
}

impl DifferentiableFrontEnd {
    pub fn new(mel: &audio::MelSpectrogram, device: &Device) -> Result<Self, SpeakerError> {
        let fc = RESAMPLE_CUTOFF_HZ / 48_000.0;
        let centre = (RESAMPLE_TAPS - 1) as f64 / 2.0;
        let lowpass: Vec<f32> = (0..RESAMPLE_TAPS)
            .map(|j| {
                let t = j as f64 - centre;
                let sinc = if t == 0.0 {
                    2.0 * fc
                } else {
                    (2.0 * std::f64::consts::PI * fc * t).sin() / (std::f64::consts::PI * t)
                };
                // Blackman window: ~-74 dB stop band.
                let x = 2.0 * std::f64::consts::PI * j as f64 / (RESAMPLE_TAPS - 1) as f64;
                let w = 0.42 - 0.5 * x.cos() + 0.08 * (2.0 * x).cos();
                (2.0 * sinc * w) as f32
            })
            .collect();
        let bins = N_FFT / 2 + 1;
        let mut dft = vec![0f32; 2 * bins * N_FFT];
        for k in 0..bins {
            for (n, w) in mel.window().iter().enumerate() {
                let angle = 2.0 * std::f64::consts::PI * (k * n) as f64 / N_FFT as f64;
                dft[k * N_FFT + n] = w * angle.cos() as f32;
                dft[(bins + k) * N_FFT + n] = w * angle.sin() as f32;
            }
        }
        let filters: Vec<f32> = mel.filters().iter().flatten().copied().collect();
        Ok(Self {
            lowpass: Tensor::from_vec(lowpass, (1, 1, RESAMPLE_TAPS), device)?,
            dft: Tensor::from_vec(dft, (2 * bins, 1, N_FFT), device)?,
            filters: Tensor::from_vec(filters, (N_MELS, bins), device)?,
        })
    }

    /// 24 kHz samples `[n]` → 16 kHz `[≈2n/3]`: ×2 zero stuffing, low-pass, every third sample.
    pub fn resample(&self, samples: &Tensor) -> Result<Tensor, SpeakerError> {
        let n = samples.dim(0)?;
        let stuffed =
            Tensor::stack(&[samples, &samples.zeros_like()?], 1)?.reshape((1, 1, 2 * n))?;
        let out = stuffed.conv1d(&self.lowpass, (RESAMPLE_TAPS - 1) / 2, 3, 1, 1)?;
        Ok(out.flatten_all()?)
    }

    /// 16 kHz samples `[n]` (zero-padded to `len ≥ n`) → power mel frames `[1 + len/HOP, N_MELS]`,
    /// as [`audio::MelSpectrogram::compute`].
    pub fn mels(&self, wav: &Tensor, len: usize) -> Result<Tensor, SpeakerError> {
        let n = wav.dim(0)?;
        let wav = if len > n {
            Tensor::cat(
                &[wav, &Tensor::zeros(len - n, wav.dtype(), wav.device())?],
                0,
            )?
        } else {
            wav.clone()
        };
        let spectrum = wav
            .reshape((1, 1, len.max(n)))?
            .conv1d(&self.dft, N_FFT / 2, HOP, 1, 1)?
            .squeeze(0)?;
        let bins = N_FFT / 2 + 1;
        let power =
            (spectrum.narrow(0, 0, bins)?.sqr()? + spectrum.narrow(0, bins, bins)?.sqr()?)?;
        Ok(self.filters.matmul(&power)?.t()?)
    }
}

impl SpeakerEncoder {
    /// The embedding `[256]` of 24 kHz `samples` `[n]`, differentiable with respect to them.
    pub fn embed_differentiable(&self, samples: &Tensor) -> Result<Tensor, SpeakerError> {
        let front = &self.differentiable;
        let host: Vec<f32> = samples.to_vec1()?;
        let gain = audio::volume_gain(&host);
        let wav = (front.resample(samples)? * gain)?;
        let n = wav.dim(0)?;
        let frames = self.net.config().partial_frames;
        let slices = audio::partial_slices(n, frames, PARTIALS_PER_SECOND, MIN_COVERAGE);
        let needed = slices.last().map_or(0, |s| (s.start + s.n_frames) * HOP);
        let mels = front.mels(&wav, needed.max(n))?;
        let partials = slices
            .iter()
            .map(|s| mels.narrow(0, s.start, s.n_frames))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let embeddings = self.net.forward(&Tensor::stack(&partials, 0)?)?;
        let mean = embeddings.mean(0)?;
        let norm = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
        Ok(mean.broadcast_div(&norm)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampler_keeps_a_tone_and_its_level() -> Result<(), SpeakerError> {
        let front = DifferentiableFrontEnd::new(&audio::MelSpectrogram::new(), &Device::Cpu)?;
        let tone = |rate: f64, n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    (2.0 * std::f64::consts::PI * 1_000.0 * i as f64 / rate).sin() as f32 * 0.5
                })
                .collect()
        };
        let input = Tensor::new(tone(24_000.0, 2_400).as_slice(), &Device::Cpu)?;
        let out: Vec<f32> = front.resample(&input)?.to_vec1()?;
        assert_eq!(out.len(), 1_600);
        let want = tone(16_000.0, 1_600);
        // Away from the edges, where the filter sees zeros.
        let err = out[100..1_500]
            .iter()
            .zip(&want[100..1_500])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 5e-3, "max error {err}");
        Ok(())
    }
}
