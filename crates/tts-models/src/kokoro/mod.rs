//! Kokoro-82M (StyleTTS2 + iSTFTNet, 24 kHz), implemented natively in candle.
//!
//! Pipeline for one chunk of ≤ 510 phonemes: ids `[0, …, 0]` → ALBERT ([`albert`]) →
//! `bert_encoder` → duration encoder and durations ([`prosody`]) → expansion of the features
//! by the durations → F0 and energy curves → text encoder ([`text_encoder`]) → decoder and
//! iSTFTNet generator ([`decoder`], [`generator`]). The voice is a style vector picked from a
//! voice pack by phoneme count ([`voices`]).
//!
//! Weights: the int8 ONNX export, dequantised under the official names ([`weights`]), or the
//! official `kokoro-v1_0.pth` state dict through the same names.
//!
//! References: hexgrad/kokoro `kokoro/model.py`, `modules.py`, `istftnet.py`
//! (<https://github.com/hexgrad/kokoro>), model card <https://huggingface.co/hexgrad/Kokoro-82M>.

pub mod albert;
pub mod decoder;
pub mod generator;
pub mod hub;
pub mod prosody;
pub mod text_encoder;
pub mod voices;
pub mod weights;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use serde::Deserialize;
use tts_audio::Pcm;

use crate::{ModelError, SpeechModel, SynthesisRequest, VoiceInfo, VoiceKind};
pub use albert::AlbertConfig;
pub use generator::{GeneratorConfig, IstftMode, SourceOptions};
pub use voices::VoiceStore;

/// Output sample rate.
pub const SAMPLE_RATE: u32 = 24_000;
/// Phonemes per forward pass (ALBERT's 512 positions minus the two pad tokens).
pub const MAX_PHONEMES: usize = 510;
/// Longest text one [`SpeechModel::synthesize`] call accepts; callers split longer text.
pub const MAX_TEXT_CHARS: usize = 4_000;
/// Output samples per predicted duration frame (2 × 10 × 6 × 5 / 2).
pub const SAMPLES_PER_FRAME: usize = 600;

/// Kokoro's `config.json` (names as in the official file; `vocab` is read separately).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KokoroConfig {
    pub n_token: usize,
    pub hidden_dim: usize,
    pub style_dim: usize,
    pub n_layer: usize,
    pub max_dur: usize,
    pub text_encoder_kernel_size: usize,
    pub plbert: AlbertConfig,
    pub istftnet: GeneratorConfig,
}

impl Default for KokoroConfig {
    /// Kokoro-82M v1.0.
    fn default() -> Self {
        Self {
            n_token: 178,
            hidden_dim: 512,
            style_dim: 128,
            n_layer: 3,
            max_dur: 50,
            text_encoder_kernel_size: 5,
            plbert: AlbertConfig::default(),
            istftnet: GeneratorConfig::default(),
        }
    }
}

/// Intermediate results of one forward pass, for parity checks and diagnostics.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Input ids including the two pad tokens.
    pub ids: Vec<u32>,
    /// Durations before rounding (frames per token).
    pub raw_durations: Vec<f32>,
    /// Durations used for the alignment.
    pub durations: Vec<u32>,
    /// F0 curve `[1, 2F]` (Hz).
    pub f0: Tensor,
    /// Energy curve `[1, 2F]`.
    pub n: Tensor,
    /// Aligned text features, the decoder input `[1, 512, F]`.
    pub asr: Tensor,
    /// 24 kHz samples, `600 · F`.
    pub audio: Vec<f32>,
}

/// The network: every module of `KModel`, without voices or text processing.
#[derive(Debug, Clone)]
pub struct KokoroNet {
    pub bert: albert::Albert,
    pub bert_encoder: Linear,
    pub predictor: prosody::ProsodyPredictor,
    pub text_encoder: text_encoder::TextEncoder,
    pub decoder: decoder::Decoder,
    cfg: KokoroConfig,
    device: Device,
    /// The dtype the weights were loaded in; inputs are cast to it.
    dtype: DType,
}

impl KokoroNet {
    pub fn load(vb: VarBuilder, cfg: &KokoroConfig) -> candle_core::Result<Self> {
        Ok(Self {
            bert: albert::Albert::load(vb.pp("bert"), &cfg.plbert)?,
            bert_encoder: candle_nn::linear(
                cfg.plbert.hidden_size,
                cfg.hidden_dim,
                vb.pp("bert_encoder"),
            )?,
            predictor: prosody::ProsodyPredictor::load(
                vb.pp("predictor"),
                cfg.style_dim,
                cfg.hidden_dim,
                cfg.n_layer,
                cfg.max_dur,
            )?,
            text_encoder: text_encoder::TextEncoder::load(
                vb.pp("text_encoder"),
                cfg.hidden_dim,
                cfg.text_encoder_kernel_size,
                cfg.n_layer,
                cfg.n_token,
            )?,
            decoder: decoder::Decoder::load(
                vb.pp("decoder"),
                cfg.hidden_dim,
                cfg.style_dim,
                &cfg.istftnet,
            )?,
            cfg: cfg.clone(),
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    pub fn config(&self) -> &KokoroConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `[0, ids…, 0]` as a `[1, T]` tensor.
    pub fn padded_ids(&self, ids: &[u32]) -> candle_core::Result<(Vec<u32>, Tensor)> {
        let mut padded = Vec::with_capacity(ids.len() + 2);
        padded.push(0);
        padded.extend_from_slice(ids);
        padded.push(0);
        let t = Tensor::new(padded.as_slice(), &self.device)?.unsqueeze(0)?;
        Ok((padded, t))
    }

    /// ALBERT + `bert_encoder`: `[1, T]` → `d_en` `[1, hidden, T]`.
    pub fn encode_bert(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.bert.forward(tokens)?;
        self.bert_encoder.forward(&h)?.transpose(1, 2)?.contiguous()
    }

    /// Frame → token index for the alignment (`pred_aln_trg`).
    pub fn alignment(&self, durations: &[u32]) -> candle_core::Result<Tensor> {
        let idx: Vec<u32> = durations
            .iter()
            .enumerate()
            .flat_map(|(i, &d)| std::iter::repeat_n(i as u32, d as usize))
            .collect();
        Tensor::new(idx.as_slice(), &self.device)
    }

    /// One forward pass. `ids` are vocabulary ids without the pad tokens; `ref_s` is `[1, 256]`.
    /// `durations` overrides the predicted ones (same length as the padded ids) for parity tests.
    pub fn forward(
        &self,
        ids: &[u32],
        ref_s: &Tensor,
        speed: f32,
        durations: Option<&[u32]>,
        source: &SourceOptions,
    ) -> candle_core::Result<Trace> {
        let (padded, tokens) = self.padded_ids(ids)?;
        let ref_s = &ref_s.to_device(&self.device)?.to_dtype(self.dtype)?;
        let half = self.cfg.style_dim;
        let s_dec = ref_s.narrow(1, 0, half)?;
        let s_pred = ref_s.narrow(1, half, half)?;
        let d_en = self.encode_bert(&tokens)?;
        let d = self.predictor.encode(&d_en, &s_pred)?;
        let raw_durations = self.predictor.raw_durations(&d, speed)?;
        let durations = match durations {
            Some(d) if d.len() == padded.len() => d.to_vec(),
            Some(d) => candle_core::bail!("{} durations for {} tokens", d.len(), padded.len()),
            None => prosody::round_durations(&raw_durations),
        };
        let idx = self.alignment(&durations)?;
        let en = d
            .squeeze(0)?
            .index_select(&idx, 0)?
            .t()?
            .unsqueeze(0)?
            .contiguous()?;
        let (f0, n) = self.predictor.f0_n(&en, &s_pred)?;
        let t_en = self.text_encoder.forward(&tokens)?;
        let asr = t_en.index_select(&idx, 2)?.contiguous()?;
        let audio = self.decoder.forward(&asr, &f0, &n, &s_dec, source)?;
        Ok(Trace {
            ids: padded,
            raw_durations,
            durations,
            f0,
            n,
            asr,
            audio,
        })
    }
}

/// Phoneme (one `char`) → id, from `vocab.json` (`{"vocab": {...}}`) or a bare map.
pub fn load_vocab(path: &Path) -> Result<HashMap<char, u32>, ModelError> {
    let werr = |m: String| ModelError::Weights {
        path: path.display().to_string(),
        message: m,
    };
    let text = std::fs::read_to_string(path).map_err(|e| werr(format!("cannot read: {e}")))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| werr(format!("bad JSON: {e}")))?;
    let map = json
        .get("vocab")
        .unwrap_or(&json)
        .as_object()
        .ok_or_else(|| werr("no vocab object".into()))?;
    let mut vocab = HashMap::new();
    for (k, v) in map {
        let mut chars = k.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return Err(werr(format!("vocab key {k:?} is not one character")));
        };
        let id = v
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| werr(format!("vocab id of {k:?} is not an integer")))?;
        vocab.insert(c, id);
    }
    Ok(vocab)
}

/// Kokoro behind [`SpeechModel`]: network, voices and vocabulary.
#[derive(Debug)]
pub struct KokoroModel {
    net: KokoroNet,
    voices: VoiceStore,
    vocab: HashMap<char, u32>,
    source: SourceOptions,
}

fn missing(path: &Path) -> ModelError {
    ModelError::Weights {
        path: path.display().to_string(),
        message: "not found: run scripts/fetch_models.py".into(),
    }
}

impl KokoroModel {
    /// Loads `dir` (`models/kokoro`): the weights from `kokoro-v1_0.pth` + `config.json` (the
    /// official release) or `kokoro-v1.0.int8.onnx` (or any `*.onnx`); the vocabulary from
    /// `vocab.json` or `config.json`; voices from `voices_ja.npz` (or any `*.npz`) or `voices/*.pt`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, ModelError> {
        Self::load_with_dtype(dir, device, DType::F32)
    }

    /// [`Self::load`] with the weights held in `dtype` (f16/bf16 are meant for GPUs).
    pub fn load_with_dtype(dir: &Path, device: &Device, dtype: DType) -> Result<Self, ModelError> {
        let cfg = match std::fs::read_to_string(dir.join("config.json")) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| ModelError::Weights {
                path: dir.join("config.json").display().to_string(),
                message: format!("bad config: {e}"),
            })?,
            Err(_) => KokoroConfig::default(),
        };
        // The official checkpoint (hub layout) when present, else the int8 ONNX export.
        let pth = dir.join("kokoro-v1_0.pth");
        let (tensors, source) = if pth.exists() {
            (weights::load_pth(&pth, device)?, pth)
        } else {
            let onnx = find_file(dir, "kokoro-v1.0.int8.onnx", "onnx")
                .ok_or_else(|| missing(&dir.join("kokoro-v1.0.int8.onnx")))?;
            (weights::load_onnx(&onnx, &cfg, device)?, onnx)
        };
        let vb = VarBuilder::from_tensors(tensors, dtype, device);
        let net = KokoroNet::load(vb, &cfg).map_err(|e| ModelError::Weights {
            path: source.display().to_string(),
            message: e.to_string(),
        })?;
        // The hub release keeps the vocabulary inside config.json.
        let vocab_path = [dir.join("vocab.json"), dir.join("config.json")]
            .into_iter()
            .find(|p| p.exists())
            .ok_or_else(|| missing(&dir.join("vocab.json")))?;
        let vocab = load_vocab(&vocab_path)?;
        let voices = if let Some(npz) = find_file(dir, "voices_ja.npz", "npz") {
            VoiceStore::from_npz(&npz, device)?
        } else if dir.join("voices").is_dir() {
            VoiceStore::from_pt_dir(&dir.join("voices"), device)?
        } else {
            return Err(missing(&dir.join("voices_ja.npz")));
        };
        if voices.ids().is_empty() {
            return Err(ModelError::Weights {
                path: dir.display().to_string(),
                message: "no voice packs".into(),
            });
        }
        Ok(Self {
            net,
            voices,
            vocab,
            source: SourceOptions::default(),
        })
    }

    /// Use other source/iSTFT options (e.g. [`SourceOptions::onnx_export`] for parity checks).
    pub fn with_source_options(mut self, source: SourceOptions) -> Self {
        self.source = source;
        self
    }

    pub fn net(&self) -> &KokoroNet {
        &self.net
    }

    pub fn voice_store(&self) -> &VoiceStore {
        &self.voices
    }

    pub fn vocab(&self) -> &HashMap<char, u32> {
        &self.vocab
    }

    /// Phoneme string → ids; symbols outside the vocabulary are dropped, like `KModel.forward`.
    pub fn phoneme_ids(&self, phonemes: &str) -> Vec<u32> {
        phonemes
            .chars()
            .filter_map(|c| self.vocab.get(&c).copied())
            .collect()
    }

    /// Synthesises one phoneme string (≤ 510 ids after vocabulary filtering).
    pub fn synthesize_phonemes(
        &self,
        phonemes: &str,
        voice: &str,
        speed: f32,
        seed: u64,
    ) -> Result<Trace, ModelError> {
        let ids = self.phoneme_ids(phonemes);
        if ids.is_empty() {
            return Err(ModelError::InvalidInput {
                field: "text",
                message: "no speakable phonemes".into(),
            });
        }
        if ids.len() > MAX_PHONEMES {
            return Err(ModelError::InvalidInput {
                field: "text",
                message: format!("{} phonemes exceed {MAX_PHONEMES} per chunk", ids.len()),
            });
        }
        let style = self.voices.style(voice, ids.len())?;
        let source = SourceOptions {
            seed,
            ..self.source
        };
        Ok(self.net.forward(&ids, &style, speed, None, &source)?)
    }

    fn language_of(voice_id: &str) -> &'static str {
        match voice_id.chars().next() {
            Some('a') => "en-US",
            Some('b') => "en-GB",
            Some('j') => "ja",
            Some('z') => "zh",
            Some('e') => "es",
            Some('f') => "fr",
            Some('h') => "hi",
            Some('i') => "it",
            Some('p') => "pt-BR",
            _ => "und",
        }
    }
}

fn find_file(dir: &Path, preferred: &str, ext: &str) -> Option<PathBuf> {
    let p = dir.join(preferred);
    if p.exists() {
        return Some(p);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    found.sort();
    found.into_iter().next()
}

impl SpeechModel for KokoroModel {
    fn family(&self) -> &str {
        "kokoro"
    }

    fn sample_rate(&self) -> u32 {
        SAMPLE_RATE
    }

    fn voices(&self) -> Vec<VoiceInfo> {
        self.voices
            .ids()
            .into_iter()
            .map(|id| VoiceInfo {
                language: Self::language_of(&id).to_string(),
                id,
                family: "kokoro".into(),
                kind: VoiceKind::Stock,
            })
            .collect()
    }

    fn speaks(&self, voice: &str) -> bool {
        self.voices.contains(voice)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn synthesize(&self, request: &SynthesisRequest) -> Result<Pcm, ModelError> {
        let text = request.text.trim();
        if text.is_empty() {
            return Err(ModelError::InvalidInput {
                field: "text",
                message: "empty text".into(),
            });
        }
        let n_chars = text.chars().count();
        if n_chars > MAX_TEXT_CHARS {
            return Err(ModelError::InvalidInput {
                field: "text",
                message: format!(
                    "{n_chars} characters exceed {MAX_TEXT_CHARS}; split the text first"
                ),
            });
        }
        if !(request.speed.is_finite() && (0.25..=4.0).contains(&request.speed)) {
            return Err(ModelError::InvalidInput {
                field: "speed",
                message: format!("{} is outside 0.25..=4", request.speed),
            });
        }
        // Resolve the voice first so an unknown voice fails before any phonemisation.
        self.voices.pack(&request.voice)?;
        let chunks = tts_text::kokoro::phonemize(text, MAX_PHONEMES)?;
        let seed = request.seed.unwrap_or(0);
        let mut samples = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            if self.phoneme_ids(chunk).is_empty() {
                continue;
            }
            let trace = self.synthesize_phonemes(
                chunk,
                &request.voice,
                request.speed,
                seed.wrapping_add(i as u64),
            )?;
            samples.extend_from_slice(&trace.audio);
        }
        if samples.is_empty() {
            return Err(ModelError::InvalidInput {
                field: "text",
                message: "no speakable phonemes".into(),
            });
        }
        Ok(Pcm::new(samples, SAMPLE_RATE))
    }
}
