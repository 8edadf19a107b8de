//! EBU R128 loudness measurement (via `ebur128`) and loudness / peak normalisation.

use ebur128::{EbuR128, Mode};

use crate::{AudioError, Pcm};

/// Loudness target for [`normalize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoudnessTarget {
    /// Integrated loudness to reach, in LUFS.
    pub integrated_lufs: f64,
    /// Ceiling for the true (inter-sample) peak, in dBTP; gain is reduced to respect it.
    pub true_peak_dbtp: f64,
}

impl Default for LoudnessTarget {
    fn default() -> Self {
        Self {
            integrated_lufs: -20.0,
            true_peak_dbtp: -1.0,
        }
    }
}

/// R128 gating needs at least one 400 ms block; shorter clips are measured looped to this length.
const MIN_MEASURE_SECS: f64 = 0.4;

/// Integrated loudness and linear true peak of a clip.
struct Measurement {
    integrated_lufs: f64,
    true_peak: f64,
}

fn measure(pcm: &Pcm) -> Result<Measurement, AudioError> {
    if pcm.sample_rate == 0 {
        return Err(AudioError::UnsupportedSampleRate(0));
    }
    let err = |e: ebur128::Error| AudioError::Loudness(e.to_string());
    let mut meter = EbuR128::new(1, pcm.sample_rate, Mode::I | Mode::TRUE_PEAK).map_err(err)?;
    if pcm.samples.is_empty() {
        return Ok(Measurement {
            integrated_lufs: f64::NEG_INFINITY,
            true_peak: 0.0,
        });
    }
    meter.add_frames_f32(&pcm.samples).map_err(err)?;
    // A sentence like "Hi." is shorter than one gating block and would read as silence;
    // looping it keeps its mean power, which is what integrated loudness measures.
    let min_len = (MIN_MEASURE_SECS * pcm.sample_rate as f64).ceil() as usize;
    let mut fed = pcm.samples.len();
    while fed < min_len {
        meter.add_frames_f32(&pcm.samples).map_err(err)?;
        fed += pcm.samples.len();
    }
    Ok(Measurement {
        integrated_lufs: meter.loudness_global().map_err(err)?,
        true_peak: meter.true_peak(0).map_err(err)?,
    })
}

/// Integrated loudness in LUFS (mono, no channel weighting); `-inf` for silence.
pub fn integrated_lufs(pcm: &Pcm) -> Result<f64, AudioError> {
    measure(pcm).map(|m| m.integrated_lufs)
}

/// True peak in dBTP (4x oversampled below 96 kHz, per BS.1770); `-inf` for silence.
pub fn true_peak_dbtp(pcm: &Pcm) -> Result<f64, AudioError> {
    measure(pcm).map(|m| 20.0 * m.true_peak.log10())
}

/// Scales the clip to the target integrated loudness, lowering the gain further if the
/// true peak would exceed the ceiling. Silent clips are returned unchanged.
pub fn normalize(pcm: &Pcm, target: &LoudnessTarget) -> Result<Pcm, AudioError> {
    let m = measure(pcm)?;
    if !m.integrated_lufs.is_finite() || m.true_peak <= 0.0 {
        return Ok(pcm.clone());
    }
    let mut gain_db = target.integrated_lufs - m.integrated_lufs;
    let peak_after_db = 20.0 * m.true_peak.log10() + gain_db;
    if peak_after_db > target.true_peak_dbtp {
        gain_db -= peak_after_db - target.true_peak_dbtp;
    }
    Ok(apply_gain(pcm, 10f64.powf(gain_db / 20.0) as f32))
}

/// Scales the clip so its sample peak sits at `peak_dbfs`. Silent clips are returned unchanged.
pub fn peak_normalize(pcm: &Pcm, peak_dbfs: f64) -> Pcm {
    let peak = pcm
        .samples
        .iter()
        .filter(|s| s.is_finite())
        .fold(0.0f32, |acc, s| acc.max(s.abs()));
    if peak <= 0.0 {
        return pcm.clone();
    }
    let gain = 10f64.powf(peak_dbfs / 20.0) as f32 / peak;
    apply_gain(pcm, gain)
}

fn apply_gain(pcm: &Pcm, gain: f32) -> Pcm {
    Pcm::new(
        pcm.samples.iter().map(|s| s * gain).collect(),
        pcm.sample_rate,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, amp: f32, secs: f32, rate: u32) -> Pcm {
        let n = (secs * rate as f32) as usize;
        Pcm::new(
            (0..n)
                .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
                .collect(),
            rate,
        )
    }

    #[test]
    fn full_scale_1k_sine_reads_about_minus_3_lufs() {
        // BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LUFS.
        let lufs = integrated_lufs(&sine(997.0, 1.0, 3.0, 48_000)).unwrap();
        assert!((lufs + 3.01).abs() < 0.1, "{lufs}");
    }

    #[test]
    fn silence_has_no_loudness_and_normalize_leaves_it() {
        let pcm = Pcm::new(vec![0.0; 48_000], 48_000);
        assert!(integrated_lufs(&pcm).unwrap().is_infinite());
        assert_eq!(normalize(&pcm, &LoudnessTarget::default()).unwrap(), pcm);
    }

    #[test]
    fn short_clip_is_measured_not_silent() {
        let short = sine(440.0, 0.1, 0.15, 24_000);
        let long = sine(440.0, 0.1, 3.0, 24_000);
        let a = integrated_lufs(&short).unwrap();
        let b = integrated_lufs(&long).unwrap();
        assert!((a - b).abs() < 0.5, "{a} vs {b}");
    }

    #[test]
    fn peak_normalize_hits_requested_peak() {
        let out = peak_normalize(&sine(300.0, 0.2, 0.5, 16_000), -3.0);
        let peak = out.samples.iter().fold(0.0f32, |a, s| a.max(s.abs()));
        assert!((20.0 * peak.log10() + 3.0).abs() < 0.01);
    }
}
