//! Checking an uploaded recording and turning it into the clip that cloning uses.
//!
//! Checks, in order, each with its own [`VoiceError`]: size, decodability (WAV, MP3, FLAC, Ogg
//! Vorbis, Opus via `tts_audio::decode`, which also averages channels), source sample rate, share
//! of silence, duration of the sound once leading and trailing silence is trimmed, clipping.
//! Processing: trim, loudness-normalise to -20 LUFS, resample to the model's rate.

use tts_audio::loudness::{self, LoudnessTarget};
use tts_audio::Pcm;

use crate::VoiceError;

/// What an upload must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadLimits {
    pub max_bytes: usize,
    pub min_secs: f64,
    pub max_secs: f64,
    /// Lowest source sample rate: below it the voice's high band is missing.
    pub min_sample_rate: u32,
    /// Least share of 20 ms frames that must carry sound.
    pub min_speech_fraction: f64,
    /// Most share of samples allowed at full scale.
    pub max_clipped_fraction: f64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024,
            min_secs: 6.0,
            max_secs: 30.0,
            min_sample_rate: 16_000,
            min_speech_fraction: 0.35,
            max_clipped_fraction: 0.01,
        }
    }
}

/// Frames quieter than this (RMS, dBFS) count as silence; also the trim threshold (peak).
const SILENCE_DBFS: f32 = -45.0;
/// Samples at or above this magnitude count as clipped.
const CLIP_LEVEL: f32 = 0.99;
const FRAME_MS: usize = 20;

/// A checked upload, ready for embedding and fitting.
#[derive(Debug, Clone)]
pub struct PreparedSample {
    /// The container we recognised: `wav`, `mp3`, `flac`, `ogg` (Vorbis) or `opus`.
    pub format: &'static str,
    pub source_rate: u32,
    /// Duration of the upload as decoded.
    pub source_secs: f64,
    /// Mono, trimmed, at -20 LUFS, at the rate asked for.
    pub pcm: Pcm,
}

/// Checks `bytes` against `limits` and returns the processed clip at `target_rate`.
pub fn prepare_sample(
    bytes: &[u8],
    limits: &UploadLimits,
    target_rate: u32,
) -> Result<PreparedSample, VoiceError> {
    if bytes.len() > limits.max_bytes {
        return Err(VoiceError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let format = sniff_format(bytes).ok_or_else(|| {
        VoiceError::Undecodable("not a WAV, MP3, FLAC, Ogg Vorbis or Opus file".into())
    })?;
    let decoded = tts_audio::decode(bytes, Some(format))
        .map_err(|e| VoiceError::Undecodable(e.to_string()))?;
    if decoded.samples.iter().any(|s| !s.is_finite()) {
        return Err(VoiceError::Undecodable("non-finite samples".into()));
    }
    if decoded.sample_rate < limits.min_sample_rate {
        return Err(VoiceError::SampleRateTooLow {
            rate: decoded.sample_rate,
            min: limits.min_sample_rate,
        });
    }
    let speech = speech_fraction(&decoded);
    if speech < limits.min_speech_fraction {
        return Err(VoiceError::MostlySilence {
            speech_percent: speech * 100.0,
            min_percent: limits.min_speech_fraction * 100.0,
        });
    }
    let trimmed = tts_audio::trim_silence(&decoded, SILENCE_DBFS);
    let secs = trimmed.duration_secs();
    if secs < limits.min_secs {
        return Err(VoiceError::TooShort {
            secs,
            min: limits.min_secs,
        });
    }
    if secs > limits.max_secs {
        return Err(VoiceError::TooLong {
            secs,
            max: limits.max_secs,
        });
    }
    let clipped = clipped_fraction(&trimmed);
    if clipped > limits.max_clipped_fraction {
        return Err(VoiceError::Clipped {
            percent: clipped * 100.0,
            max_percent: limits.max_clipped_fraction * 100.0,
        });
    }
    let normalised = loudness::normalize(&trimmed, &LoudnessTarget::default())?;
    let pcm = if normalised.sample_rate == target_rate {
        normalised
    } else {
        tts_audio::resample(&normalised, target_rate)?
    };
    Ok(PreparedSample {
        format,
        source_rate: decoded.sample_rate,
        source_secs: decoded.duration_secs(),
        pcm,
    })
}

/// The container from the first bytes (the upload's name and content type are not trusted).
pub fn sniff_format(bytes: &[u8]) -> Option<&'static str> {
    let head = bytes.get(..12)?;
    if &head[..4] == b"RIFF" && &head[8..12] == b"WAVE" {
        return Some("wav");
    }
    if &head[..4] == b"fLaC" {
        return Some("flac");
    }
    if &head[..4] == b"OggS" {
        // The first page's first packet names the codec.
        let segments = *bytes.get(26)? as usize;
        let packet = bytes.get(27 + segments..)?;
        if packet.starts_with(b"OpusHead") {
            return Some("opus");
        }
        if packet.get(1..7) == Some(b"vorbis") {
            return Some("ogg");
        }
        return None;
    }
    // MP3: an ID3v2 tag or an MPEG audio frame sync.
    if &head[..3] == b"ID3" || (head[0] == 0xFF && head[1] & 0xE0 == 0xE0) {
        return Some("mp3");
    }
    None
}

/// Share of 20 ms frames whose RMS is above the silence level.
fn speech_fraction(pcm: &Pcm) -> f64 {
    let frame = (pcm.sample_rate as usize * FRAME_MS / 1000).max(1);
    let threshold = 10f32.powf(SILENCE_DBFS / 20.0);
    let (mut loud, mut total) = (0usize, 0usize);
    for chunk in pcm.samples.chunks(frame) {
        let rms = (chunk.iter().map(|s| s * s).sum::<f32>() / chunk.len() as f32).sqrt();
        total += 1;
        if rms > threshold {
            loud += 1;
        }
    }
    if total == 0 {
        0.0
    } else {
        loud as f64 / total as f64
    }
}

fn clipped_fraction(pcm: &Pcm) -> f64 {
    if pcm.samples.is_empty() {
        return 0.0;
    }
    let clipped = pcm.samples.iter().filter(|s| s.abs() >= CLIP_LEVEL).count();
    clipped as f64 / pcm.samples.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tts_audio::{encode, AudioFormat};

    const RATE: u32 = 22_050;

    /// A speech-like signal: a 150 Hz buzz with harmonics, amplitude-modulated at syllable rate,
    /// with a short gap every second (synthetic, for unit tests; the server tests use real speech).
    fn voiced(secs: f64, rate: u32, amp: f32) -> Vec<f32> {
        let n = (secs * rate as f64) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                let gap = (t.fract() > 0.9) as u8 as f32;
                let env = 0.6 + 0.4 * (2.0 * std::f32::consts::PI * 4.0 * t).sin();
                let buzz: f32 = (1..6)
                    .map(|h| (2.0 * std::f32::consts::PI * 150.0 * h as f32 * t).sin() / h as f32)
                    .sum();
                amp * env * buzz * (1.0 - gap) * 0.5
            })
            .collect()
    }

    fn wav(samples: Vec<f32>, rate: u32) -> Vec<u8> {
        encode(&Pcm::new(samples, rate), AudioFormat::Wav, None).unwrap()
    }

    #[test]
    fn good_sample_is_trimmed_normalised_and_resampled() {
        let mut samples = vec![0.0; RATE as usize];
        samples.extend(voiced(8.0, RATE, 0.3));
        samples.extend(vec![0.0; RATE as usize]);
        let prepared =
            prepare_sample(&wav(samples, RATE), &UploadLimits::default(), 24_000).unwrap();
        assert_eq!(prepared.format, "wav");
        assert_eq!(prepared.source_rate, RATE);
        assert!((prepared.source_secs - 10.0).abs() < 0.01);
        assert_eq!(prepared.pcm.sample_rate, 24_000);
        let secs = prepared.pcm.duration_secs();
        assert!((7.8..8.2).contains(&secs), "trimmed to {secs} s");
        let lufs = loudness::integrated_lufs(&prepared.pcm).unwrap();
        assert!((lufs + 20.0).abs() < 0.5, "{lufs} LUFS");
    }

    #[test]
    fn each_problem_gets_its_own_error() {
        let limits = UploadLimits::default();
        let check = |bytes: &[u8]| prepare_sample(bytes, &limits, 24_000).unwrap_err();
        assert!(matches!(
            check(b"hello, this is not audio at all"),
            VoiceError::Undecodable(_)
        ));
        let mut truncated = wav(voiced(8.0, RATE, 0.3), RATE);
        truncated[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        truncated.truncate(truncated.len() - 1);
        assert!(matches!(check(&truncated), VoiceError::Undecodable(_)));
        assert!(matches!(
            check(&wav(voiced(8.0, 8_000, 0.3), 8_000)),
            VoiceError::SampleRateTooLow {
                rate: 8_000,
                min: 16_000
            }
        ));
        assert!(matches!(
            check(&wav(voiced(3.0, RATE, 0.3), RATE)),
            VoiceError::TooShort { .. }
        ));
        assert!(matches!(
            check(&wav(voiced(31.0, RATE, 0.3), RATE)),
            VoiceError::TooLong { .. }
        ));
        let mut mostly_silent = voiced(3.0, RATE, 0.3);
        mostly_silent.extend(vec![0.0; 10 * RATE as usize]);
        assert!(matches!(
            check(&wav(mostly_silent, RATE)),
            VoiceError::MostlySilence { .. }
        ));
        let clipped: Vec<f32> = voiced(8.0, RATE, 0.3)
            .into_iter()
            .map(|s| (s * 20.0).clamp(-1.0, 1.0))
            .collect();
        assert!(matches!(
            check(&wav(clipped, RATE)),
            VoiceError::Clipped { .. }
        ));
        let small = UploadLimits {
            max_bytes: 1000,
            ..UploadLimits::default()
        };
        assert!(matches!(
            prepare_sample(&wav(voiced(8.0, RATE, 0.3), RATE), &small, 24_000),
            Err(VoiceError::TooLarge { limit: 1000, .. })
        ));
    }

    #[test]
    fn stereo_is_downmixed_not_rejected() {
        // Interleaved stereo WAV written by hand through hound's spec.
        let mono = voiced(7.0, RATE, 0.3);
        let spec = hound_spec(2);
        let mut cursor = std::io::Cursor::new(Vec::new());
        {
            let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
            for s in &mono {
                let v = (s * 32767.0) as i16;
                writer.write_sample(v).unwrap();
                writer.write_sample(v).unwrap();
            }
            writer.finalize().unwrap();
        }
        let prepared = prepare_sample(cursor.get_ref(), &UploadLimits::default(), 24_000).unwrap();
        assert!((prepared.source_secs - 7.0).abs() < 0.01);
    }

    fn hound_spec(channels: u16) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        }
    }

    #[test]
    fn formats_are_recognised_from_content() {
        assert_eq!(sniff_format(&wav(vec![0.0; 100], RATE)), Some("wav"));
        assert_eq!(sniff_format(b"fLaC\0\0\0\x22xxxxxxxx"), Some("flac"));
        assert_eq!(sniff_format(b"ID3\x04\0\0\0\0\0\0\0\0"), Some("mp3"));
        assert_eq!(sniff_format(b"<html><body>no</body>"), None);
        let opus = encode(&Pcm::new(vec![0.0; 4800], 24_000), AudioFormat::Opus, None).unwrap();
        assert_eq!(sniff_format(&opus), Some("opus"));
    }
}
