//! The speech models, implemented natively in candle, behind one [`SpeechModel`] trait.
//!
//! A model turns one sentence (or clause) of text into PCM. Splitting long text into sentences,
//! encoding and streaming belong to the callers (`tts-server`); tensors never leave this crate.

use serde::{Deserialize, Serialize};
use tts_audio::Pcm;

pub mod device;
pub mod kokoro;
pub mod nn;
pub mod onnx;
pub mod registry;
pub mod vits;

/// One synthesis call: a sentence of text in one voice.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthesisRequest {
    pub text: String,
    /// A voice id from [`SpeechModel::voices`] (Kokoro also accepts blends such as `jf_alpha(2)+jm_kumo(1)`).
    pub voice: String,
    /// Speaking rate: 1.0 is the model's natural pace, 2.0 twice as fast.
    pub speed: f32,
    /// Seed for the model's noise; `None` picks a fixed default so output is reproducible.
    pub seed: Option<u64>,
}

impl SynthesisRequest {
    pub fn new(text: impl Into<String>, voice: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            voice: voice.into(),
            speed: 1.0,
            seed: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VoiceKind {
    Stock,
    Blend,
    Cloned,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoiceInfo {
    pub id: String,
    /// The model family that speaks this voice: `kokoro` or `piper`.
    pub family: String,
    /// BCP-47-ish language tag, e.g. `en-US`, `ja`.
    pub language: String,
    pub kind: VoiceKind,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown voice {0:?}")]
    UnknownVoice(String),
    #[error("invalid {field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    #[error("model file {path}: {message}")]
    Weights { path: String, message: String },
    /// Downloading from the Hugging Face hub failed (`kokoro::hub`).
    #[error("hugging face hub: {0}")]
    Hub(String),
    #[error(transparent)]
    Text(#[from] tts_text::TextError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A loaded model that can speak one or more voices. Implementations are immutable after load,
/// so one instance serves every worker thread.
pub trait SpeechModel: Send + Sync {
    /// The model family, `kokoro` or `piper`.
    fn family(&self) -> &str;
    fn sample_rate(&self) -> u32;
    fn voices(&self) -> Vec<VoiceInfo>;
    /// Synthesize one sentence or clause; long text is split by the caller.
    fn synthesize(&self, request: &SynthesisRequest) -> Result<Pcm, ModelError>;
    /// Synthesize several requests in one padded batch (the model server's dynamic batching).
    /// Results come back in request order, each equal (to float tolerance) to what
    /// [`SpeechModel::synthesize`] gives for that request alone; one bad request fails alone.
    /// The default runs them one after another.
    fn synthesize_batch(&self, requests: &[SynthesisRequest]) -> Vec<Result<Pcm, ModelError>> {
        requests.iter().map(|r| self.synthesize(r)).collect()
    }
    /// Whether [`SpeechModel::synthesize_batch`] runs a real batched forward, so grouping
    /// concurrent requests pays off; the model server only batches models that say so.
    fn batches(&self) -> bool {
        false
    }
    /// Whether `voice` (one id, not a blend) is speakable now, including voices added at runtime,
    /// which [`SpeechModel::voices`] does not list.
    fn speaks(&self, voice: &str) -> bool {
        self.voices().iter().any(|v| v.id == voice)
    }
    /// The concrete model, for model-specific APIs (Kokoro's runtime voices and style fitting).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}
