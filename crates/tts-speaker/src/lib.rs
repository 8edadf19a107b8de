//! Speaker identity for the TTS server.
//!
//! [`SpeakerEncoder`] is the GE2E d-vector network of Resemblyzer (Wan et al. 2018, "Generalized
//! End-to-End Loss for Speaker Verification"; reference code
//! <https://github.com/resemble-ai/Resemblyzer>) running in candle on its released
//! `pretrained.pt`: audio at any rate → 256-d L2-normalised embedding; [`cosine`] compares two
//! of them. [`clone`] derives a Kokoro style pack from a short voice sample, scored with that
//! encoder.

pub mod audio;
pub mod clone;
pub mod differentiable;
mod error;
pub mod model;
pub mod prosody;
pub mod weights;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tts_audio::Pcm;

pub use error::SpeakerError;
pub use model::{Ge2e, Ge2eConfig};

/// Embedding size of the GE2E encoder.
pub const EMBEDDING_DIM: usize = 256;
/// Partial utterances per second (`embed_utterance(rate=1.3)`).
const PARTIALS_PER_SECOND: f64 = 1.3;
/// Least share of the last partial window that real audio must fill (`min_coverage=0.75`).
const MIN_COVERAGE: f64 = 0.75;

/// Everything one embedding is made of, for parity checks.
#[derive(Debug, Clone)]
pub struct EmbeddingTrace {
    /// The 16 kHz waveform after volume normalisation and silence trimming.
    pub wav: Vec<f32>,
    /// Mel frames of the (padded) waveform, `[n_frames][40]` row-major.
    pub mel: Vec<f32>,
    pub n_frames: usize,
    /// One L2-normalised embedding per partial utterance.
    pub partials: Vec<Vec<f32>>,
    /// The mean of the partials, re-normalised.
    pub embedding: Vec<f32>,
}

/// The GE2E speaker encoder with its audio front end.
#[derive(Debug)]
pub struct SpeakerEncoder {
    net: Ge2e,
    mel: audio::MelSpectrogram,
    /// The front end of [`SpeakerEncoder::embed_differentiable`].
    differentiable: differentiable::DifferentiableFrontEnd,
    device: Device,
}

impl SpeakerEncoder {
    /// Loads Resemblyzer's `pretrained.pt` (`models/speaker/resemblyzer-ge2e.pt`).
    pub fn load(path: &Path, device: &Device) -> Result<Self, SpeakerError> {
        if !path.exists() {
            return Err(SpeakerError::Weights {
                path: path.display().to_string(),
                message: "not found: run scripts/fetch_models.py".into(),
            });
        }
        let tensors = weights::read_legacy_state_dict(path, "model_state", device)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        let net = Ge2e::load(vb, &Ge2eConfig::default()).map_err(|e| SpeakerError::Weights {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mel = audio::MelSpectrogram::new();
        Ok(Self {
            net,
            differentiable: differentiable::DifferentiableFrontEnd::new(&mel, device)?,
            mel,
            device: device.clone(),
        })
    }

    /// `preprocess_wav`: to 16 kHz, volume up to −30 dBFS, long silences shortened.
    pub fn preprocess(&self, pcm: &Pcm) -> Result<Vec<f32>, SpeakerError> {
        if pcm.sample_rate == 0 {
            return Err(SpeakerError::InvalidAudio("sample rate 0".into()));
        }
        let wav = if pcm.sample_rate == audio::SAMPLE_RATE {
            pcm.samples.clone()
        } else {
            tts_audio::resample(pcm, audio::SAMPLE_RATE)?.samples
        };
        Ok(audio::trim_long_silences(&audio::normalize_volume(&wav)))
    }

    /// The utterance embedding (256 values, L2-normalised) of `pcm`, at any sample rate.
    pub fn embed(&self, pcm: &Pcm) -> Result<Vec<f32>, SpeakerError> {
        Ok(self.embed_traced(pcm)?.embedding)
    }

    /// [`Self::embed`] with its intermediate results.
    pub fn embed_traced(&self, pcm: &Pcm) -> Result<EmbeddingTrace, SpeakerError> {
        let wav = self.preprocess(pcm)?;
        self.embed_preprocessed(wav)
    }

    /// `embed_utterance` on an already preprocessed 16 kHz waveform.
    pub fn embed_preprocessed(&self, wav: Vec<f32>) -> Result<EmbeddingTrace, SpeakerError> {
        if wav.is_empty() {
            return Err(SpeakerError::InvalidAudio(
                "no speech found (silent or too short)".into(),
            ));
        }
        let frames = self.net.config().partial_frames;
        let slices = audio::partial_slices(wav.len(), frames, PARTIALS_PER_SECOND, MIN_COVERAGE);
        let needed = slices
            .last()
            .map_or(0, |s| (s.start + s.n_frames) * audio::HOP);
        let mut padded = wav.clone();
        if needed > padded.len() {
            padded.resize(needed, 0.0);
        }
        let (mel, n_frames) = self.mel.compute(&padded);
        let n_mels = audio::N_MELS;
        let mut batch = Vec::with_capacity(slices.len() * frames * n_mels);
        for s in &slices {
            let rows = mel
                .get(s.start * n_mels..(s.start + s.n_frames) * n_mels)
                .ok_or_else(|| {
                    SpeakerError::InvalidAudio("partial beyond the spectrogram".into())
                })?;
            batch.extend_from_slice(rows);
        }
        let mels = Tensor::from_vec(batch, (slices.len(), frames, n_mels), &self.device)?;
        let partials: Vec<Vec<f32>> = self.net.forward(&mels)?.to_vec2()?;
        let mut mean = vec![0f32; EMBEDDING_DIM];
        for p in &partials {
            for (m, v) in mean.iter_mut().zip(p) {
                *m += v / partials.len() as f32;
            }
        }
        let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        let embedding = mean.iter().map(|v| v / norm).collect();
        Ok(EmbeddingTrace {
            wav,
            mel,
            n_frames,
            partials,
            embedding,
        })
    }
}

/// Cosine similarity of two vectors (0 when either is all zeros or the lengths differ).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x) * f64::from(x);
        bb += f64::from(y) * f64::from(y);
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    (ab / (aa.sqrt() * bb.sqrt())) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_parallel_orthogonal_and_degenerate_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 1.0]), 0.0);
    }
}
