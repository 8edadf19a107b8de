//! Shared helpers for the integration tests: real signals, chunked streaming, spectral
//! measurements and external decoders (ffmpeg / ffprobe / opusinfo from Debian).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;
use tts_audio::{decode, AudioFormat, EncoderOptions, Pcm, StreamEncoder};

/// Irregular chunk sizes used to push audio through streaming code.
pub const CHUNKS: [usize; 4] = [1, 37, 480, 4096];

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Real speech (espeak-ng, 22050 Hz), decoded from the committed fixture with hound.
pub fn speech() -> Pcm {
    let path = fixture("speech_22050.wav");
    let mut reader = hound::WavReader::open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let rate = reader.spec().sample_rate;
    let samples = reader
        .samples::<i16>()
        .map(|s| s.expect("fixture sample") as f32 / 32768.0)
        .collect();
    Pcm::new(samples, rate)
}

pub fn sine(freq: f64, amp: f64, secs: f64, rate: u32) -> Pcm {
    let n = (secs * rate as f64).round() as usize;
    Pcm::new(
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as f32
            })
            .collect(),
        rate,
    )
}

/// Linear chirp from `f0` to `f1` Hz over `secs`, sampled analytically at `rate`.
pub fn chirp(f0: f64, f1: f64, amp: f64, secs: f64, rate: u32) -> Pcm {
    let n = (secs * rate as f64).round() as usize;
    let k = (f1 - f0) / secs;
    Pcm::new(
        (0..n)
            .map(|i| {
                let t = i as f64 / rate as f64;
                (amp * (2.0 * std::f64::consts::PI * (f0 * t + 0.5 * k * t * t)).sin()) as f32
            })
            .collect(),
        rate,
    )
}

/// Pushes `samples` through `enc` in the irregular [`CHUNKS`] pattern, then finishes.
pub fn stream_encode(enc: &mut dyn StreamEncoder, samples: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < samples.len() {
        let end = (pos + CHUNKS[i % CHUNKS.len()]).min(samples.len());
        out.extend(enc.push(&samples[pos..end]).expect("push"));
        pos = end;
        i += 1;
    }
    out.extend(enc.finish().expect("finish"));
    out
}

/// Streams `pcm` into a new encoder of `format` with unknown total length.
pub fn stream_encode_pcm(pcm: &Pcm, format: AudioFormat) -> (Vec<u8>, u32) {
    let mut enc =
        tts_audio::new_encoder(&EncoderOptions::new(format, pcm.sample_rate)).expect("encoder");
    let rate = enc.output_sample_rate();
    (stream_encode(enc.as_mut(), &pcm.samples), rate)
}

/// Frequency of the strongest spectral peak (Hann window, parabolic interpolation).
pub fn dominant_frequency(pcm: &Pcm) -> f64 {
    let n = pcm.samples.len().min(1 << 15);
    let start = (pcm.samples.len() - n) / 2;
    let mut buf: Vec<Complex<f64>> = pcm.samples[start..start + n]
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
            Complex::new(s as f64 * w, 0.0)
        })
        .collect();
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    let mags: Vec<f64> = buf[..n / 2].iter().map(|c| c.norm()).collect();
    let k = (1..mags.len() - 1)
        .max_by(|&a, &b| mags[a].total_cmp(&mags[b]))
        .expect("non-empty spectrum");
    let (a, b, c) = (mags[k - 1].ln(), mags[k].ln(), mags[k + 1].ln());
    let delta = 0.5 * (a - c) / (a - 2.0 * b + c);
    (k as f64 + delta) * pcm.sample_rate as f64 / n as f64
}

pub fn rms(samples: &[f32]) -> f64 {
    (samples.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / samples.len().max(1) as f64).sqrt()
}

/// Lag (in samples, within ±`max_lag`) maximising the correlation of `b` against `a`;
/// positive means `b` is late.
pub fn best_lag(a: &[f32], b: &[f32], max_lag: i64) -> i64 {
    let corr = |lag: i64| -> f64 {
        let mut acc = 0.0;
        for (i, &x) in a.iter().enumerate() {
            let j = i as i64 + lag;
            if j >= 0 && (j as usize) < b.len() {
                acc += x as f64 * b[j as usize] as f64;
            }
        }
        acc
    };
    (-max_lag..=max_lag)
        .max_by(|&x, &y| corr(x).total_cmp(&corr(y)))
        .expect("lag range")
}

/// Signal-to-noise ratio of `test` against `reference` over their common length, in dB.
pub fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
    let n = reference.len().min(test.len());
    let sig: f64 = reference[..n].iter().map(|&s| (s as f64).powi(2)).sum();
    let noise: f64 = reference[..n]
        .iter()
        .zip(&test[..n])
        .map(|(&r, &t)| (r as f64 - t as f64).powi(2))
        .sum();
    10.0 * (sig / noise.max(1e-20)).log10()
}

pub fn quantize(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|&s| (s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
        .collect()
}

/// Decoded f32 (symphonia scales s16 by 1/32768) back to the exact 16-bit values.
pub fn to_i16(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|&s| (s * 32768.0).round() as i16)
        .collect()
}

pub fn symphonia_decode(bytes: &[u8], ext: &str) -> Pcm {
    decode(bytes, Some(ext)).unwrap_or_else(|e| panic!("decoding {ext}: {e}"))
}

/// A file in its own temporary directory, removed when dropped.
pub struct TempAudioFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl std::ops::Deref for TempAudioFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

/// Writes bytes to a fresh temp file (tests run in parallel: each call gets its own directory).
pub fn temp_file(name: &str, bytes: &[u8]) -> TempAudioFile {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    TempAudioFile { _dir: dir, path }
}

/// Decodes a file with Debian's ffmpeg to mono s16le at its native rate.
/// `input_args` describe headerless input (e.g. `["-f", "mulaw", "-ar", "8000"]`).
/// Returns (samples, sample rate reported by ffprobe or the raw args).
pub fn ffmpeg_decode(path: &Path, input_args: &[&str]) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin"])
        .args(input_args)
        .arg("-i")
        .arg(path)
        .args(["-f", "s16le", "-ac", "1", "-"])
        .output()
        .expect("ffmpeg must be installed (Debian package ffmpeg)");
    assert!(
        out.status.success(),
        "ffmpeg failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Sample rate of the first audio stream according to ffprobe.
pub fn ffprobe_rate(path: &Path, input_args: &[&str]) -> u32 {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(input_args)
        .args([
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=sample_rate",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe must be installed (Debian package ffmpeg)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ffprobe sample rate")
}

/// [`snr_db`] after shifting `test` by `lag` samples (as returned by [`best_lag`]).
pub fn aligned_snr_db(reference: &[f32], test: &[f32], lag: i64) -> f64 {
    if lag >= 0 {
        snr_db(reference, &test[(lag as usize).min(test.len())..])
    } else {
        snr_db(&reference[(-lag) as usize..], test)
    }
}
