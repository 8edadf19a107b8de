//! The encoder's audio front end, as Resemblyzer's `audio.py` and `hparams.py`: 16 kHz mono,
//! volume raised to −30 dBFS (never lowered), long silences shortened with the WebRTC voice
//! activity detector, then a 40-band power mel spectrogram (25 ms Hann window, 10 ms hop, no log).

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};
use webrtc_vad::{SampleRate, Vad, VadMode};

/// Sample rate the encoder was trained at.
pub const SAMPLE_RATE: u32 = 16_000;
/// `mel_window_length` 25 ms → 400 samples.
pub const N_FFT: usize = 400;
/// `mel_window_step` 10 ms → 160 samples.
pub const HOP: usize = 160;
/// `mel_n_channels`.
pub const N_MELS: usize = 40;
/// `audio_norm_target_dBFS`.
const TARGET_DBFS: f64 = -30.0;
/// `vad_window_length` 30 ms at 16 kHz.
const VAD_WINDOW: usize = 480;
/// `vad_moving_average_width`.
const VAD_AVERAGE_WIDTH: usize = 8;
/// `vad_max_silence_length`.
const VAD_MAX_SILENCE: usize = 6;
const INT16_MAX: f64 = 32767.0;

/// Scales `wav` so its RMS is −30 dBFS, only ever louder (`normalize_volume(increase_only=True)`).
pub fn normalize_volume(wav: &[f32]) -> Vec<f32> {
    let gain = volume_gain(wav);
    if gain == 1.0 {
        return wav.to_vec();
    }
    wav.iter().map(|&x| (f64::from(x) * gain) as f32).collect()
}

/// The gain [`normalize_volume`] applies to `wav` (1 when it is already loud enough or silent).
pub fn volume_gain(wav: &[f32]) -> f64 {
    if wav.is_empty() {
        return 1.0;
    }
    let mean_sq = wav
        .iter()
        .map(|&x| (f64::from(x) * INT16_MAX).powi(2))
        .sum::<f64>()
        / wav.len() as f64;
    let rms = mean_sq.sqrt();
    if rms == 0.0 {
        return 1.0;
    }
    let change_db = TARGET_DBFS - 20.0 * (rms / INT16_MAX).log10();
    if change_db < 0.0 {
        return 1.0;
    }
    10f64.powf(change_db / 20.0)
}

/// Shortens silences to at most ~`VAD_MAX_SILENCE` windows (`trim_long_silences`): 30 ms windows
/// flagged by the WebRTC VAD in its most aggressive mode, smoothed by a moving average of 8,
/// rounded, dilated by 7 windows, and the unvoiced windows dropped. The tail that does not fill
/// a window is dropped too, like the reference.
pub fn trim_long_silences(wav: &[f32]) -> Vec<f32> {
    let n_windows = wav.len() / VAD_WINDOW;
    let wav = &wav[..n_windows * VAD_WINDOW];
    if n_windows == 0 {
        return Vec::new();
    }
    // The reference quantises with np.round (half to even) before the VAD sees it.
    let pcm: Vec<i16> = wav
        .iter()
        .map(|&x| {
            (f64::from(x) * INT16_MAX)
                .round_ties_even()
                .clamp(-32768.0, 32767.0) as i16
        })
        .collect();
    let mut vad = Vad::new_with_rate_and_mode(SampleRate::Rate16kHz, VadMode::VeryAggressive);
    let flags: Vec<f64> = pcm
        .chunks_exact(VAD_WINDOW)
        .map(|w| f64::from(u8::from(vad.is_voice_segment(w).unwrap_or(false))))
        .collect();
    let mask = dilate(
        &round_half_even(&moving_average(&flags, VAD_AVERAGE_WIDTH)),
        VAD_MAX_SILENCE + 1,
    );
    wav.chunks_exact(VAD_WINDOW)
        .zip(mask)
        .filter(|(_, keep)| *keep)
        .flat_map(|(w, _)| w.iter().copied())
        .collect()
}

/// Centred moving average with zero padding, `(width−1)/2` before and `width/2` after.
fn moving_average(x: &[f64], width: usize) -> Vec<f64> {
    let before = (width - 1) / 2;
    (0..x.len())
        .map(|i| {
            let lo = i as isize - before as isize;
            (lo..lo + width as isize)
                .filter(|&j| j >= 0 && (j as usize) < x.len())
                .map(|j| x[j as usize])
                .sum::<f64>()
                / width as f64
        })
        .collect()
}

fn round_half_even(x: &[f64]) -> Vec<bool> {
    x.iter().map(|v| v.round_ties_even() != 0.0).collect()
}

/// `scipy.ndimage.binary_dilation` with a flat structuring element of `size` (centre `size/2`),
/// borders treated as false.
fn dilate(mask: &[bool], size: usize) -> Vec<bool> {
    let centre = size / 2;
    (0..mask.len())
        .map(|i| {
            // Output i is set when any input j with j − i ∈ [−(size−1−centre), centre] is set
            // (the structure is symmetric in value, so the reflection scipy applies is moot).
            let lo = i.saturating_sub(size - 1 - centre);
            let hi = (i + centre).min(mask.len() - 1);
            mask[lo..=hi].iter().any(|&m| m)
        })
        .collect()
}

/// Mel spectrogram of `librosa.feature.melspectrogram(sr=16000, n_fft=400, hop_length=160,
/// n_mels=40)`: centred frames (zero padding, librosa ≥ 0.10's default), periodic Hann window,
/// power 2, Slaney mel filterbank. Frames are `1 + len/160`, each `N_MELS` values.
pub struct MelSpectrogram {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    /// `[N_MELS][N_FFT/2 + 1]`.
    filters: Vec<Vec<f32>>,
}

impl std::fmt::Debug for MelSpectrogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelSpectrogram").finish_non_exhaustive()
    }
}

impl Default for MelSpectrogram {
    fn default() -> Self {
        Self::new()
    }
}

impl MelSpectrogram {
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        let window = (0..N_FFT)
            .map(|n| {
                let x = 2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64;
                (0.5 - 0.5 * x.cos()) as f32
            })
            .collect();
        Self {
            fft,
            window,
            filters: slaney_mel_filters(SAMPLE_RATE, N_FFT, N_MELS),
        }
    }

    /// The periodic Hann window.
    pub fn window(&self) -> &[f32] {
        &self.window
    }

    /// The mel filterbank, `[N_MELS][N_FFT/2 + 1]`.
    pub fn filters(&self) -> &[Vec<f32>] {
        &self.filters
    }

    /// `wav` (16 kHz) → frames `[n_frames][N_MELS]`, flattened row-major.
    pub fn compute(&self, wav: &[f32]) -> (Vec<f32>, usize) {
        let n_frames = 1 + wav.len() / HOP;
        let pad = N_FFT / 2;
        let mut padded = vec![0f32; wav.len() + 2 * pad];
        padded[pad..pad + wav.len()].copy_from_slice(wav);
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut power = vec![0f32; N_FFT / 2 + 1];
        let mut out = Vec::with_capacity(n_frames * N_MELS);
        for f in 0..n_frames {
            let frame = &padded[f * HOP..f * HOP + N_FFT];
            for ((dst, &x), &w) in input.iter_mut().zip(frame).zip(&self.window) {
                *dst = x * w;
            }
            // Lengths come from make_*_vec, so the FFT cannot fail.
            if self.fft.process(&mut input, &mut spectrum).is_err() {
                power.fill(0.0);
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for filter in &self.filters {
                out.push(filter.iter().zip(&power).map(|(w, p)| w * p).sum());
            }
        }
        (out, n_frames)
    }
}

fn hz_to_mel(hz: f64) -> f64 {
    // Slaney: linear below 1 kHz, logarithmic above.
    let f_sp = 200.0 / 3.0;
    let min_log_mel = 1000.0 / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= 1000.0 {
        min_log_mel + (hz / 1000.0).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_mel = 1000.0 / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        1000.0 * (logstep * (mel - min_log_mel)).exp()
    } else {
        mel * f_sp
    }
}

/// `librosa.filters.mel(htk=False, norm="slaney", fmin=0, fmax=sr/2)`: triangles on the Slaney
/// mel scale, each scaled to unit area.
pub fn slaney_mel_filters(sr: u32, n_fft: usize, n_mels: usize) -> Vec<Vec<f32>> {
    let n_bins = n_fft / 2 + 1;
    let fmax = f64::from(sr) / 2.0;
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|i| fmax * i as f64 / (n_bins - 1) as f64)
        .collect();
    let (mel_lo, mel_hi) = (hz_to_mel(0.0), hz_to_mel(fmax));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_lo + (mel_hi - mel_lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|m| {
            let (lo, centre, hi) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
            let enorm = 2.0 / (hi - lo);
            fft_freqs
                .iter()
                .map(|&f| {
                    let lower = (f - lo) / (centre - lo);
                    let upper = (hi - f) / (hi - centre);
                    (lower.min(upper).max(0.0) * enorm) as f32
                })
                .collect()
        })
        .collect()
}

/// One partial utterance: mel frames `[start, start + n_frames)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialSlice {
    pub start: usize,
    pub n_frames: usize,
}

/// Where to cut partial utterances (`compute_partial_slices`): windows of `partial_frames`
/// mel frames every `round(16000 / rate / 160)` frames; the last one is dropped when it covers
/// less than `min_coverage` of its window with real samples, unless it is the only one.
pub fn partial_slices(
    n_samples: usize,
    partial_frames: usize,
    rate: f64,
    min_coverage: f64,
) -> Vec<PartialSlice> {
    let n_frames = (n_samples + 1).div_ceil(HOP);
    let frame_step =
        ((f64::from(SAMPLE_RATE) / rate / HOP as f64).round() as usize).clamp(1, partial_frames);
    let steps = (n_frames + frame_step + 1)
        .saturating_sub(partial_frames)
        .max(1);
    let mut slices: Vec<PartialSlice> = (0..steps)
        .step_by(frame_step)
        .map(|start| PartialSlice {
            start,
            n_frames: partial_frames,
        })
        .collect();
    if let Some(last) = slices.last() {
        let start = (last.start * HOP) as f64;
        let coverage = (n_samples as f64 - start) / (partial_frames * HOP) as f64;
        if coverage < min_coverage && slices.len() > 1 {
            slices.pop();
        }
    }
    slices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_is_raised_to_minus_30_dbfs_but_never_lowered() {
        let quiet: Vec<f32> = (0..16_000)
            .map(|i| 0.001 * (i as f32 * 0.1).sin())
            .collect();
        let out = normalize_volume(&quiet);
        let rms =
            (out.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / out.len() as f64).sqrt();
        assert!((20.0 * rms.log10() + 30.0).abs() < 0.01, "rms {rms}");
        let loud: Vec<f32> = quiet.iter().map(|x| x * 500.0).collect();
        assert_eq!(normalize_volume(&loud), loud);
    }

    #[test]
    fn partial_slices_follow_rate_and_coverage_rules() {
        // 1 s: one partial, padded.
        assert_eq!(partial_slices(16_000, 160, 1.3, 0.75).len(), 1);
        // 3 s → 301 frames, step 77: starts 0, 77, 154; the last covers (48000−24640)/25600 ≥ 0.75.
        let starts = |n| -> Vec<usize> {
            partial_slices(n, 160, 1.3, 0.75)
                .iter()
                .map(|p| p.start)
                .collect()
        };
        assert_eq!(starts(48_000), vec![0, 77, 154]);
        // 2.7 s: the third window would cover (43200−24640)/25600 = 0.725 < 0.75, so it is dropped.
        assert_eq!(starts(43_200), vec![0, 77]);
    }

    #[test]
    fn mel_filters_are_unit_area_triangles_covering_the_band() {
        let f = slaney_mel_filters(16_000, 400, 40);
        assert_eq!(f.len(), 40);
        assert!(f
            .iter()
            .all(|row| row.len() == 201 && row.iter().all(|&w| w >= 0.0)));
        // Every filter has some weight and peaks in increasing bins.
        let peaks: Vec<usize> = f
            .iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold((0, 0f32), |b, (i, &w)| if w > b.1 { (i, w) } else { b })
                    .0
            })
            .collect();
        assert!(peaks.windows(2).all(|p| p[0] <= p[1]), "{peaks:?}");
    }

    #[test]
    fn pure_tone_lands_in_the_matching_mel_band() {
        let wav: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let (mel, frames) = MelSpectrogram::new().compute(&wav);
        assert_eq!(frames, 101);
        let row = &mel[50 * N_MELS..51 * N_MELS];
        let best = row
            .iter()
            .enumerate()
            .fold((0, 0f32), |b, (i, &w)| if w > b.1 { (i, w) } else { b })
            .0;
        // 1 kHz is mel 15 on the Slaney scale; band m is centred on mel (m + 1) · 45.25 / 41,
        // so 1 kHz sits at band 12.6.
        assert!((12..=13).contains(&best), "peak band {best}");
    }
}
