//! Prosody statistics of a clip, for matching a sample to stock voices: median pitch (from a
//! normalised-autocorrelation pitch tracker on 16 kHz audio) and a speaking-rate proxy (voiced
//! onsets per second of speech, roughly syllables per second). Both sides of a comparison go
//! through the same tracker, so its biases cancel.

use tts_audio::Pcm;

use crate::SpeakerError;

const RATE: u32 = 16_000;
/// 40 ms analysis frames every 10 ms.
const FRAME: usize = 640;
const HOP: usize = 160;
/// Pitch search range 60–400 Hz (lags 40–266 samples at 16 kHz).
const MIN_LAG: usize = 40;
const MAX_LAG: usize = 266;
/// A frame is voiced when its normalised autocorrelation peak reaches this.
const VOICING: f32 = 0.6;
/// Frames more than 40 dB below the loudest frame count as silence.
const SILENCE_DB: f32 = -40.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProsodyStats {
    /// Natural log of the median F0 of voiced frames (Hz).
    pub log_f0: f32,
    /// Voiced onsets per second of non-silent audio.
    pub onset_rate: f32,
    /// Share of non-silent frames that are voiced.
    pub voiced_ratio: f32,
}

impl ProsodyStats {
    pub fn f0_hz(&self) -> f32 {
        self.log_f0.exp()
    }

    /// Measures `pcm` (any rate).
    pub fn measure(pcm: &Pcm) -> Result<Self, SpeakerError> {
        let wav = if pcm.sample_rate == RATE {
            pcm.samples.clone()
        } else {
            tts_audio::resample(pcm, RATE)?.samples
        };
        if wav.len() < FRAME {
            return Err(SpeakerError::InvalidAudio(
                "too short for pitch analysis".into(),
            ));
        }
        let n_frames = 1 + (wav.len() - FRAME) / HOP;
        let energies: Vec<f32> = (0..n_frames)
            .map(|f| {
                wav[f * HOP..f * HOP + FRAME]
                    .iter()
                    .map(|x| x * x)
                    .sum::<f32>()
            })
            .collect();
        let loudest = energies.iter().copied().fold(0f32, f32::max);
        if loudest <= 0.0 {
            return Err(SpeakerError::InvalidAudio("silent audio".into()));
        }
        let floor = loudest * 10f32.powf(SILENCE_DB / 10.0);
        let mut f0s = Vec::new();
        let mut speech_frames = 0usize;
        let mut onsets = 0usize;
        let mut was_voiced = false;
        for (f, &e) in energies.iter().enumerate() {
            let voiced_f0 = if e > floor {
                speech_frames += 1;
                pitch(&wav[f * HOP..f * HOP + FRAME])
            } else {
                None
            };
            if let Some(f0) = voiced_f0 {
                f0s.push(f0.ln());
                if !was_voiced {
                    onsets += 1;
                }
            }
            was_voiced = voiced_f0.is_some();
        }
        if f0s.len() < 5 {
            return Err(SpeakerError::InvalidAudio("no voiced speech found".into()));
        }
        f0s.sort_by(f32::total_cmp);
        let speech_secs = speech_frames as f32 * HOP as f32 / RATE as f32;
        Ok(Self {
            log_f0: f0s[f0s.len() / 2],
            onset_rate: onsets as f32 / speech_secs.max(0.01),
            voiced_ratio: f0s.len() as f32 / speech_frames.max(1) as f32,
        })
    }
}

/// F0 of one frame from the first normalised-autocorrelation peak above [`VOICING`], or `None`.
fn pitch(frame: &[f32]) -> Option<f32> {
    let mean = frame.iter().sum::<f32>() / frame.len() as f32;
    let x: Vec<f32> = frame.iter().map(|v| v - mean).collect();
    let corr = |lag: usize| -> f32 {
        let (a, b) = (&x[..x.len() - lag], &x[lag..]);
        let ab: f32 = a.iter().zip(b).map(|(p, q)| p * q).sum();
        let aa: f32 = a.iter().map(|p| p * p).sum();
        let bb: f32 = b.iter().map(|q| q * q).sum();
        if aa <= 0.0 || bb <= 0.0 {
            0.0
        } else {
            ab / (aa * bb).sqrt()
        }
    };
    let r: Vec<f32> = (MIN_LAG - 1..=MAX_LAG + 1).map(corr).collect();
    let best = r.iter().copied().fold(f32::MIN, f32::max);
    if best < VOICING {
        return None;
    }
    // The first local maximum close to the best one avoids octave-down errors (multiples of the period).
    for i in 1..r.len() - 1 {
        if r[i] >= 0.9 * best && r[i] >= r[i - 1] && r[i] >= r[i + 1] {
            // Parabolic interpolation of the peak position.
            let (a, b, c) = (r[i - 1], r[i], r[i + 1]);
            let denom = a - 2.0 * b + c;
            let shift = if denom.abs() > 1e-9 {
                0.5 * (a - c) / denom
            } else {
                0.0
            };
            let lag = (MIN_LAG - 1 + i) as f32 + shift;
            return Some(RATE as f32 / lag);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, secs: f32) -> Vec<f32> {
        (0..(secs * RATE as f32) as usize)
            .map(|i| {
                let t = i as f32 / RATE as f32;
                // A few harmonics, like a voice.
                (1..4)
                    .map(|k| (2.0 * std::f32::consts::PI * hz * k as f32 * t).sin() / k as f32)
                    .sum::<f32>()
                    * 0.2
            })
            .collect()
    }

    #[test]
    fn median_pitch_of_harmonic_tones_is_their_fundamental() -> Result<(), SpeakerError> {
        for hz in [90.0f32, 150.0, 240.0] {
            let s = ProsodyStats::measure(&Pcm::new(tone(hz, 1.0), RATE))?;
            assert!((s.f0_hz() - hz).abs() < 0.02 * hz, "{hz}: {}", s.f0_hz());
        }
        Ok(())
    }

    #[test]
    fn onsets_count_voiced_bursts_per_second() -> Result<(), SpeakerError> {
        // Four 200 ms tones separated by 100 ms of low noise: 4 onsets in 1.2 s of audio.
        let mut wav = Vec::new();
        for _ in 0..4 {
            wav.extend(tone(150.0, 0.2));
            wav.extend((0..1600).map(|i| if i % 2 == 0 { 1e-3 } else { -1e-3 }));
        }
        let s = ProsodyStats::measure(&Pcm::new(wav, RATE))?;
        assert!((2.5..=5.0).contains(&s.onset_rate), "{}", s.onset_rate);
        Ok(())
    }
}
