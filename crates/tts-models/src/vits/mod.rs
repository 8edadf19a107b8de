//! Piper voices: VITS (Kim et al. 2021, <https://arxiv.org/abs/2106.06103>) run natively in candle
//! from a Piper `.onnx` export and its `.onnx.json`.
//!
//! Reference code: `jaywalnut310/vits` (`models.py`, `modules.py`, `attentions.py`,
//! `transforms.py`) and `rhasspy/piper` (`src/python/piper_train/vits`, `export_onnx.py`,
//! `src/cpp/piper.cpp`). The json carries the front-end settings only; every architecture
//! hyperparameter is read from tensor shapes and graph attributes ([`VitsConfig::from_weights`]).
//!
//! Inference for one utterance: text encoder → durations (stochastic or plain predictor,
//! `noise_w`, `length_scale`) → prior expanded to frames plus `noise_scale` noise → coupling flow
//! in reverse → HiFi-GAN. Piper then peak-normalises each utterance. [`Vits::infer_batch`] runs
//! several utterances at once (`batch.rs`).

mod batch;
pub mod duration;
pub mod encoder;
pub mod flow;
pub mod hifigan;
mod layers;
pub mod weights;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::Deserialize;
use tts_audio::Pcm;
use tts_text::piper::{ids_for_phonemes, sentence_phonemes, text_phonemes, PhonemeIdMap};
use tts_text::Espeak;

use crate::onnx::OnnxModel;
use crate::{ModelError, SpeechModel, SynthesisRequest, VoiceInfo, VoiceKind};

pub use batch::Utterance;
pub use duration::DurationPredictor;
pub use encoder::{EncoderOutput, TextEncoder};
pub use flow::ResidualCouplingBlock;
pub use hifigan::Generator;
pub use weights::PiperWeights;

/// Silence Piper's CLI puts between the sentences of one text (`sentence_silence_seconds`).
const SENTENCE_SILENCE_SECS: f32 = 0.2;
/// Longest utterance in phoneme ids; longer sentences are cut at word boundaries, because
/// attention memory grows with the square of the length.
const MAX_IDS_PER_UTTERANCE: usize = 1024;
/// Latent frames the decoder handles at once. Small chunks keep HiFi-GAN's wide activations in
/// cache (at 128 frames the last stage is 32 × 32768 floats), which is ~2.5× faster than one
/// pass over a long utterance.
const DECODE_CHUNK_FRAMES: usize = 128;
/// Context on each side of a decoder chunk; HiFi-GAN's receptive field is about ±11 frames.
const DECODE_CONTEXT_FRAMES: usize = 16;
/// Upper bound on frames per utterance (about 10 minutes at 22 kHz), to fail instead of exhausting memory.
const MAX_FRAMES: usize = 60_000;
/// Seed used when a request gives none, so output is reproducible.
const DEFAULT_SEED: u64 = 0x5EED;

/// The voice's `.onnx.json` (fields Piper's runtime reads).
#[derive(Debug, Clone, Deserialize)]
pub struct PiperConfig {
    pub audio: AudioConfig,
    #[serde(default)]
    pub espeak: EspeakConfig,
    #[serde(default)]
    pub inference: InferenceConfig,
    /// `espeak` (default) or `text` (the text's own code points are the phonemes).
    #[serde(default = "default_phoneme_type")]
    pub phoneme_type: String,
    /// Phoneme substitutions applied before the id map (one phoneme → several).
    #[serde(default)]
    pub phoneme_map: HashMap<String, Vec<String>>,
    pub phoneme_id_map: serde_json::Value,
    #[serde(default)]
    pub num_symbols: usize,
    #[serde(default = "one")]
    pub num_speakers: usize,
    /// Speaker name → speaker id, for multi-speaker voices.
    #[serde(default)]
    pub speaker_id_map: HashMap<String, u32>,
    #[serde(default)]
    pub language: Option<LanguageConfig>,
    #[serde(default)]
    pub dataset: Option<String>,
}

fn default_phoneme_type() -> String {
    "espeak".into()
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioConfig {
    pub sample_rate: u32,
    #[serde(default)]
    pub quality: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EspeakConfig {
    pub voice: String,
}

impl Default for EspeakConfig {
    fn default() -> Self {
        Self {
            voice: "en-us".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct InferenceConfig {
    #[serde(default = "default_noise_scale")]
    pub noise_scale: f32,
    #[serde(default = "default_length_scale")]
    pub length_scale: f32,
    #[serde(default = "default_noise_w")]
    pub noise_w: f32,
}

fn default_noise_scale() -> f32 {
    0.667
}
fn default_length_scale() -> f32 {
    1.0
}
fn default_noise_w() -> f32 {
    0.8
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            noise_scale: default_noise_scale(),
            length_scale: default_length_scale(),
            noise_w: default_noise_w(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct LanguageConfig {
    pub code: String,
}

impl PiperConfig {
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Speaker names ordered by id (`speaker_id_map` inverted); `None` for single-speaker voices.
    pub fn speaker_names(&self) -> Vec<(u32, String)> {
        let mut v: Vec<(u32, String)> = self
            .speaker_id_map
            .iter()
            .map(|(name, &id)| (id, name.clone()))
            .collect();
        v.sort();
        v
    }
}

/// Which duration predictor a voice was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationPredictorKind {
    Stochastic,
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsampleConfig {
    pub kernel_size: usize,
    pub stride: usize,
    pub padding: usize,
}

/// One residual block kind of the decoder; `convs` are `(dilation, padding)` per conv
/// (`convs1` for type 1, whose `convs2` all have dilation 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResBlockConfig {
    pub kernel_size: usize,
    pub type1: bool,
    pub convs: Vec<(usize, usize)>,
    pub convs2: Vec<(usize, usize)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderConfig {
    pub initial_channels: usize, // upsample_initial_channel
    pub pre_kernel_size: usize,
    pub post_kernel_size: usize,
    pub upsamples: Vec<UpsampleConfig>, // upsample_rates / upsample_kernel_sizes
    pub resblocks: Vec<ResBlockConfig>, // resblock_kernel_sizes / resblock_dilation_sizes
}

/// VITS hyperparameters, read from the weights and the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VitsConfig {
    pub n_vocab: usize,
    pub hidden_channels: usize,
    pub inter_channels: usize,
    pub filter_channels: usize,
    pub n_heads: usize,
    pub n_layers: usize,
    pub window_size: usize,
    pub ffn_kernel_size: usize,
    pub n_speakers: usize,
    pub gin_channels: usize,
    pub dp_kind: DurationPredictorKind,
    pub dp_filter_channels: usize,
    pub dp_kernel_size: usize,
    /// `(dilation, padding)` of the SDP's own DDSConv layers.
    pub dp_layers: Vec<(usize, usize)>,
    /// `(dilation, padding)` of the DDSConv inside each spline flow.
    pub dp_flow_layers: Vec<(usize, usize)>,
    /// Module indices of the spline flows used at inference (`dp.flows.{i}`).
    pub dp_flow_indices: Vec<usize>,
    pub dp_num_bins: usize,
    /// Module indices of the coupling layers (`flow.flows.{i}`).
    pub flow_indices: Vec<usize>,
    pub flow_kernel_size: usize,
    /// Per coupling layer, `(dilation, padding)` of each WaveNet layer.
    pub flow_wn_layers: Vec<Vec<(usize, usize)>>,
    pub decoder: DecoderConfig,
}

fn weights_err(path: &str, message: String) -> ModelError {
    ModelError::Weights {
        path: path.to_string(),
        message,
    }
}

impl VitsConfig {
    pub fn from_weights(w: &PiperWeights) -> Result<Self, ModelError> {
        let path = w.onnx.path().to_string();
        let err = |m: String| weights_err(&path, m);
        let emb = w.dims("enc_p.emb.weight")?;
        let (n_vocab, hidden) = (emb[0], emb[1]);
        let inter = w.dims("enc_p.proj.weight")?[0] / 2;
        let n_layers = w.count("enc_p.encoder.attn_layers");
        if n_layers == 0 {
            return Err(err("no text-encoder layers".into()));
        }
        let rel = w.dims("enc_p.encoder.attn_layers.0.emb_rel_k")?;
        let (window_size, k_channels) = ((rel[1] - 1) / 2, rel[2]);
        if k_channels == 0 || hidden % k_channels != 0 {
            return Err(err(format!(
                "head size {k_channels} does not divide {hidden}"
            )));
        }
        let ffn = w.dims("enc_p.encoder.ffn_layers.0.conv_1.weight")?;
        let (n_speakers, gin_channels) = if w.contains("emb_g.weight") {
            let g = w.dims("emb_g.weight")?;
            (g[0], g[1])
        } else {
            (1, 0)
        };

        let conv_layers = |prefix: &str| -> Result<Vec<(usize, usize)>, ModelError> {
            (0..w.count(prefix))
                .map(|i| {
                    let a = w.conv_attrs(&format!("{prefix}.{i}"))?;
                    Ok((a.dilation, a.padding))
                })
                .collect()
        };

        let stochastic = w.contains("dp.flows.0.m");
        let (dp_kind, dp_filter_channels, dp_kernel_size) = if stochastic {
            let sep = w.dims("dp.convs.convs_sep.0.weight")?;
            (DurationPredictorKind::Stochastic, sep[0], sep[2])
        } else {
            let c1 = w.dims("dp.conv_1.weight")?;
            (DurationPredictorKind::Plain, c1[0], c1[2])
        };
        let (dp_layers, dp_flow_layers, dp_flow_indices, dp_num_bins) = if stochastic {
            let idx: Vec<usize> = w
                .indices("dp.flows")
                .into_iter()
                .filter(|i| w.contains(&format!("dp.flows.{i}.pre.weight")))
                .collect();
            let first = *idx
                .first()
                .ok_or_else(|| err("SDP has no spline flows".into()))?;
            let proj = w.dims(&format!("dp.flows.{first}.proj.weight"))?[0];
            (
                conv_layers("dp.convs.convs_sep")?,
                conv_layers(&format!("dp.flows.{first}.convs.convs_sep"))?,
                idx,
                (proj + 1) / 3,
            )
        } else {
            (Vec::new(), Vec::new(), Vec::new(), 0)
        };

        let flow_indices: Vec<usize> = w
            .indices("flow.flows")
            .into_iter()
            .filter(|i| w.contains(&format!("flow.flows.{i}.pre.weight")))
            .collect();
        let first_flow = *flow_indices
            .first()
            .ok_or_else(|| err("no coupling flows".into()))?;
        let flow_kernel_size =
            w.dims(&format!("flow.flows.{first_flow}.enc.in_layers.0.weight"))?[2];
        let flow_wn_layers = flow_indices
            .iter()
            .map(|i| conv_layers(&format!("flow.flows.{i}.enc.in_layers")))
            .collect::<Result<Vec<_>, _>>()?;

        let pre = w.dims("dec.conv_pre.weight")?;
        let post = w.dims("dec.conv_post.weight")?;
        let upsamples = (0..w.count("dec.ups"))
            .map(|i| {
                let module = format!("dec.ups.{i}");
                let a = w.conv_attrs(&module)?;
                Ok(UpsampleConfig {
                    kernel_size: w.dims(&format!("{module}.weight"))?[2],
                    stride: a.stride,
                    padding: a.padding,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        if upsamples.is_empty() {
            return Err(err("decoder has no upsampling layers".into()));
        }
        let n_blocks = w.count("dec.resblocks");
        if n_blocks == 0 || n_blocks % upsamples.len() != 0 {
            return Err(err(format!(
                "{n_blocks} resblocks for {} upsampling layers",
                upsamples.len()
            )));
        }
        let resblocks = (0..n_blocks / upsamples.len())
            .map(|j| {
                let m = format!("dec.resblocks.{j}");
                let type1 = w.contains(&format!("{m}.convs1.0.weight"));
                let first = if type1 { "convs1" } else { "convs" };
                Ok(ResBlockConfig {
                    kernel_size: w.dims(&format!("{m}.{first}.0.weight"))?[2],
                    type1,
                    convs: conv_layers(&format!("{m}.{first}"))?,
                    convs2: if type1 {
                        conv_layers(&format!("{m}.convs2"))?
                    } else {
                        Vec::new()
                    },
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;

        Ok(Self {
            n_vocab,
            hidden_channels: hidden,
            inter_channels: inter,
            filter_channels: ffn[0],
            n_heads: hidden / k_channels,
            n_layers,
            window_size,
            ffn_kernel_size: ffn[2],
            n_speakers,
            gin_channels,
            dp_kind,
            dp_filter_channels,
            dp_kernel_size,
            dp_layers,
            dp_flow_layers,
            dp_flow_indices,
            dp_num_bins,
            flow_indices,
            flow_kernel_size,
            flow_wn_layers,
            decoder: DecoderConfig {
                initial_channels: pre[0],
                pre_kernel_size: pre[2],
                post_kernel_size: post[2],
                upsamples,
                resblocks,
            },
        })
    }

    /// Output samples per latent frame (product of the upsampling strides).
    pub fn hop_length(&self) -> usize {
        self.decoder.upsamples.iter().map(|u| u.stride).product()
    }
}

/// Sampling settings for one utterance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InferenceParams {
    /// Scale of the prior noise (voice variation); 0 is deterministic.
    pub noise_scale: f32,
    /// Duration multiplier; > 1 is slower (1 / speed).
    pub length_scale: f32,
    /// Scale of the duration predictor's noise; 0 is deterministic.
    pub noise_w: f32,
    pub speaker_id: u32,
    pub seed: u64,
}

impl InferenceParams {
    pub fn from_config(cfg: &InferenceConfig) -> Self {
        Self {
            noise_scale: cfg.noise_scale,
            length_scale: cfg.length_scale,
            noise_w: cfg.noise_w,
            speaker_id: 0,
            seed: DEFAULT_SEED,
        }
    }

    fn validate(&self) -> Result<(), ModelError> {
        let bad = |field: &'static str, v: f32| ModelError::InvalidInput {
            field,
            message: format!("{v} is not a finite non-negative number"),
        };
        if !self.noise_scale.is_finite() || self.noise_scale < 0.0 {
            return Err(bad("noise_scale", self.noise_scale));
        }
        if !self.noise_w.is_finite() || self.noise_w < 0.0 {
            return Err(bad("noise_w", self.noise_w));
        }
        if !self.length_scale.is_finite() || self.length_scale <= 0.0 || self.length_scale > 20.0 {
            return Err(ModelError::InvalidInput {
                field: "speed",
                message: format!("length scale {} is outside (0, 20]", self.length_scale),
            });
        }
        Ok(())
    }
}

/// Intermediate results of one utterance, for parity tests and benches.
#[derive(Debug, Clone)]
pub struct Stages {
    pub encoder: EncoderOutput,
    /// Frames per phoneme id `[1, 1, N]` (already ceiled).
    pub durations: Tensor,
    /// Decoder input `[1, inter, T]`.
    pub z: Tensor,
    /// Raw decoder output, before peak normalisation.
    pub audio: Vec<f32>,
}

/// The VITS network of one voice.
#[derive(Debug, Clone)]
pub struct Vits {
    pub config: VitsConfig,
    pub enc_p: TextEncoder,
    pub dp: DurationPredictor,
    pub flow: ResidualCouplingBlock,
    pub dec: Generator,
    emb_g: Option<Tensor>,
    device: Device,
}

fn normal_noise(
    rng: &mut StdRng,
    shape: (usize, usize, usize),
    scale: f32,
    device: &Device,
) -> candle_core::Result<Tensor> {
    if scale == 0.0 {
        return Tensor::zeros(shape, candle_core::DType::F32, device);
    }
    let n = shape.0 * shape.1 * shape.2;
    let v: Vec<f32> = (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal) * scale)
        .collect();
    Tensor::from_vec(v, shape, device)
}

impl Vits {
    pub fn load(weights: &PiperWeights, device: &Device) -> Result<Self, ModelError> {
        let config = VitsConfig::from_weights(weights)?;
        let vb = weights.var_builder(device);
        let emb_g = if config.gin_channels > 0 {
            Some(vb.get((config.n_speakers, config.gin_channels), "emb_g.weight")?)
        } else {
            None
        };
        Ok(Self {
            enc_p: TextEncoder::load(vb.pp("enc_p"), &config)?,
            dp: DurationPredictor::load(vb.pp("dp"), &config)?,
            flow: ResidualCouplingBlock::load(vb.pp("flow"), &config)?,
            dec: Generator::load(vb.pp("dec"), &config)?,
            emb_g,
            config,
            device: device.clone(),
        })
    }

    /// The speaker conditioning `[1, gin, 1]`, or `None` for single-speaker voices.
    pub fn speaker_embedding(&self, speaker_id: u32) -> Result<Option<Tensor>, ModelError> {
        match &self.emb_g {
            None if speaker_id == 0 => Ok(None),
            None => Err(ModelError::InvalidInput {
                field: "speaker_id",
                message: format!("speaker {speaker_id} requested from a single-speaker voice"),
            }),
            Some(_) if speaker_id as usize >= self.config.n_speakers => {
                Err(ModelError::InvalidInput {
                    field: "speaker_id",
                    message: format!(
                        "speaker {speaker_id} is out of range (voice has {})",
                        self.config.n_speakers
                    ),
                })
            }
            Some(emb) => Ok(Some(emb.narrow(0, speaker_id as usize, 1)?.unsqueeze(2)?)),
        }
    }

    pub fn encode(&self, ids: &[i64]) -> Result<EncoderOutput, ModelError> {
        let ids_u32 = self.checked_ids(ids)?;
        let t = Tensor::from_vec(ids_u32, (1, ids.len()), &self.device)?;
        Ok(self.enc_p.forward(&t)?)
    }

    /// The ids as embedding indices, or an error if one is outside the vocabulary or there are none.
    fn checked_ids(&self, ids: &[i64]) -> Result<Vec<u32>, ModelError> {
        let ids_u32 = ids
            .iter()
            .map(|&i| {
                u32::try_from(i)
                    .ok()
                    .filter(|&u| (u as usize) < self.config.n_vocab)
                    .ok_or_else(|| ModelError::InvalidInput {
                        field: "phoneme_ids",
                        message: format!(
                            "id {i} outside the vocabulary of {}",
                            self.config.n_vocab
                        ),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if ids_u32.is_empty() {
            return Err(ModelError::InvalidInput {
                field: "phoneme_ids",
                message: "no phoneme ids".into(),
            });
        }
        Ok(ids_u32)
    }

    /// Prior expanded to frames by `durations`, plus noise: `z_p` `[1, inter, T]`.
    pub fn expand_prior(
        &self,
        enc: &EncoderOutput,
        durations: &Tensor,
        noise_scale: f32,
        rng: &mut StdRng,
    ) -> Result<Tensor, ModelError> {
        let d: Vec<f32> = durations.flatten_all()?.to_vec1()?;
        let mut index = Vec::new();
        for (i, &f) in d.iter().enumerate() {
            if !f.is_finite() {
                return Err(ModelError::InvalidInput {
                    field: "text",
                    message: "the duration predictor produced a non-finite duration".into(),
                });
            }
            let frames = f.max(0.0) as usize;
            if index.len() + frames > MAX_FRAMES {
                return Err(ModelError::InvalidInput {
                    field: "text",
                    message: format!("utterance longer than {MAX_FRAMES} frames"),
                });
            }
            index.extend(std::iter::repeat_n(i as u32, frames));
        }
        let c = self.config.inter_channels;
        let (m, logs) = if index.is_empty() {
            // The reference clamps the length to one frame with an all-zero alignment.
            let z = Tensor::zeros((1, c, 1), candle_core::DType::F32, &self.device)?;
            (z.clone(), z)
        } else {
            let len = index.len();
            let idx = Tensor::from_vec(index, len, &self.device)?;
            (
                enc.m_p.index_select(&idx, 2)?,
                enc.logs_p.index_select(&idx, 2)?,
            )
        };
        let frames = m.dim(2)?;
        let noise = normal_noise(rng, (1, c, frames), noise_scale, &self.device)?;
        Ok((m + (noise * logs.exp()?)?)?)
    }

    /// Decodes latents to a waveform, in overlapping chunks when long.
    pub fn decode(&self, z: &Tensor, g: Option<&Tensor>) -> Result<Vec<f32>, ModelError> {
        self.decode_in_chunks(z, g, DECODE_CHUNK_FRAMES, DECODE_CONTEXT_FRAMES)
    }

    /// Decodes `chunk` latent frames at a time, each with `context` extra frames on both sides
    /// that are decoded and dropped, so chunk borders match a whole-utterance decode.
    pub fn decode_in_chunks(
        &self,
        z: &Tensor,
        g: Option<&Tensor>,
        chunk: usize,
        context: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let frames = z.dim(2)?;
        let hop = self.config.hop_length();
        let mut audio = Vec::with_capacity(frames * hop);
        for window in DecodeWindow::cover(frames, chunk, context) {
            let piece = z.narrow(2, window.start, window.len)?;
            let wav: Vec<f32> = self.dec.forward(&piece, g)?.flatten_all()?.to_vec1()?;
            audio.extend_from_slice(&wav[window.keep.start * hop..window.keep.end * hop]);
        }
        Ok(audio)
    }

    /// Runs every stage for one utterance of phoneme ids.
    pub fn infer(&self, ids: &[i64], params: &InferenceParams) -> Result<Stages, ModelError> {
        params.validate()?;
        let g = self.speaker_embedding(params.speaker_id)?;
        let mut rng = StdRng::seed_from_u64(params.seed);
        let encoder = self.encode(ids)?;
        let n = ids.len();
        let dp_noise = normal_noise(&mut rng, (1, 2, n), params.noise_w, &self.device)?;
        let durations = self.dp.durations(
            &encoder.x,
            g.as_ref(),
            &dp_noise,
            params.length_scale as f64,
        )?;
        let z_p = self.expand_prior(&encoder, &durations, params.noise_scale, &mut rng)?;
        let z = self.flow.reverse(&z_p, g.as_ref())?;
        let audio = self.decode(&z, g.as_ref())?;
        Ok(Stages {
            encoder,
            durations,
            z,
            audio,
        })
    }
}

/// A span of latent frames the decoder runs at once, and the frames of it that are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DecodeWindow {
    start: usize,
    len: usize,
    /// Kept frames, relative to `start`; the others are context.
    keep: std::ops::Range<usize>,
}

impl DecodeWindow {
    /// The windows that decode `frames` frames `chunk` at a time with `context` frames on both
    /// sides; one whole window when that is not longer than a chunk with its context.
    fn cover(frames: usize, chunk: usize, context: usize) -> Vec<Self> {
        let chunk = chunk.max(1);
        if frames <= chunk + 2 * context {
            return vec![Self {
                start: 0,
                len: frames,
                keep: 0..frames,
            }];
        }
        let mut windows = Vec::new();
        let mut start = 0;
        while start < frames {
            let len = chunk.min(frames - start);
            let left = context.min(start);
            let right = context.min(frames - start - len);
            windows.push(Self {
                start: start - left,
                len: left + len + right,
                keep: left..left + len,
            });
            start += len;
        }
        windows
    }
}

/// Piper's per-utterance peak normalisation (`32767 / max(0.01, max|x|)` before int16),
/// here to f32 full scale.
pub fn peak_normalize(audio: &mut [f32]) {
    let peak = audio.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = 1.0 / peak.max(0.01);
    for x in audio.iter_mut() {
        *x = (*x * scale).clamp(-1.0, 1.0);
    }
}

/// A loaded Piper voice.
pub struct PiperModel {
    config: PiperConfig,
    vits: Vits,
    id_map: PhonemeIdMap,
    phoneme_map: HashMap<char, Vec<char>>,
    voice_id: String,
}

impl std::fmt::Debug for PiperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperModel")
            .field("voice_id", &self.voice_id)
            .field("vits", &self.vits.config)
            .finish()
    }
}

impl PiperModel {
    /// Loads `voice.onnx` and its `voice.onnx.json`; the voice id is the file stem. Piper runs
    /// in f32 on every device: its stochastic duration predictor's spline and the noise are
    /// f32 host code, and its 5.7 GFLOP per audio second do not need half precision.
    pub fn load(onnx: &Path, config_json: &Path, device: &Device) -> Result<Self, ModelError> {
        let json = std::fs::read_to_string(config_json).map_err(|e| ModelError::Weights {
            path: config_json.display().to_string(),
            message: format!("cannot read voice config: {e} (run scripts/fetch_models.py)"),
        })?;
        let config = PiperConfig::from_json(&json).map_err(|e| ModelError::Weights {
            path: config_json.display().to_string(),
            message: format!("invalid voice config: {e}"),
        })?;
        let weights = PiperWeights::load(OnnxModel::read(onnx)?, device)?;
        let vits = Vits::load(&weights, device)?;
        let voice_id = onnx
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("piper")
            .to_string();
        Self::new(config, vits, voice_id)
    }

    /// Assembles a model from a parsed config and a loaded network, checking they agree.
    pub fn new(config: PiperConfig, vits: Vits, voice_id: String) -> Result<Self, ModelError> {
        let id_map = PhonemeIdMap::from_json(&config.phoneme_id_map)?;
        if let Some(max) = id_map.max_id() {
            if max as usize >= vits.config.n_vocab {
                return Err(ModelError::Weights {
                    path: voice_id.clone(),
                    message: format!(
                        "phoneme id {max} exceeds the embedding's {} symbols",
                        vits.config.n_vocab
                    ),
                });
            }
        }
        if config.num_speakers != vits.config.n_speakers {
            return Err(ModelError::Weights {
                path: voice_id.clone(),
                message: format!(
                    "config says {} speakers, the weights have {}",
                    config.num_speakers, vits.config.n_speakers
                ),
            });
        }
        let single_char = |s: &str| {
            let mut c = s.chars();
            match (c.next(), c.next()) {
                (Some(ch), None) => Some(ch),
                _ => None,
            }
        };
        let phoneme_map = config
            .phoneme_map
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    single_char(k)?,
                    v.iter().filter_map(|s| single_char(s)).collect(),
                ))
            })
            .collect();
        Ok(Self {
            config,
            vits,
            id_map,
            phoneme_map,
            voice_id,
        })
    }

    pub fn config(&self) -> &PiperConfig {
        &self.config
    }

    pub fn vits(&self) -> &Vits {
        &self.vits
    }

    pub fn voice_id(&self) -> &str {
        &self.voice_id
    }

    /// The voice id of each speaker: the model id for speaker 0, `model:name` for the others.
    fn speaker_voice_id(&self, id: u32, name: &str) -> String {
        if id == 0 {
            self.voice_id.clone()
        } else {
            format!("{}:{name}", self.voice_id)
        }
    }

    /// Resolves a request's voice id to a speaker id.
    pub fn speaker_for_voice(&self, voice: &str) -> Result<u32, ModelError> {
        if voice == self.voice_id || voice.is_empty() {
            return Ok(0);
        }
        if let Some(rest) = voice.strip_prefix(&format!("{}:", self.voice_id)) {
            if let Some(&id) = self.config.speaker_id_map.get(rest) {
                return Ok(id);
            }
            if let Ok(id) = rest.parse::<u32>() {
                if (id as usize) < self.vits.config.n_speakers {
                    return Ok(id);
                }
            }
        }
        Err(ModelError::UnknownVoice(voice.to_string()))
    }

    /// Piper's utterances for `text`: one id sequence per sentence (long sentences cut at word
    /// boundaries to at most `MAX_IDS_PER_UTTERANCE` ids).
    pub fn phoneme_ids(&self, text: &str) -> Result<Vec<Vec<i64>>, ModelError> {
        let sentences: Vec<Vec<char>> = if self.config.phoneme_type == "text" {
            vec![text_phonemes(text)]
        } else {
            let clauses = Espeak::global()?.phonemize(text, &self.config.espeak.voice)?;
            sentence_phonemes(&clauses)
        };
        let max_phonemes = (MAX_IDS_PER_UTTERANCE - 3) / 2;
        let mut out = Vec::new();
        for s in sentences {
            let mapped: Vec<char> = if self.phoneme_map.is_empty() {
                s
            } else {
                s.into_iter()
                    .flat_map(|c| self.phoneme_map.get(&c).cloned().unwrap_or_else(|| vec![c]))
                    .collect()
            };
            for piece in split_long(&mapped, max_phonemes) {
                out.push(ids_for_phonemes(piece, &self.id_map));
            }
        }
        Ok(out)
    }

    /// Synthesises `text`: each sentence separately, peak-normalised, joined by Piper's silence.
    pub fn synthesize_text(&self, text: &str, params: &InferenceParams) -> Result<Pcm, ModelError> {
        let utterances = self.utterances(text)?;
        self.join_utterances(
            utterances
                .iter()
                .map(|ids| Ok(self.vits.infer(ids, params)?.audio)),
        )
    }

    /// The phoneme ids of each utterance of `text`, which must not be blank.
    fn utterances(&self, text: &str) -> Result<Vec<Vec<i64>>, ModelError> {
        if text.trim().is_empty() {
            return Err(ModelError::InvalidInput {
                field: "text",
                message: "text is empty".into(),
            });
        }
        self.phoneme_ids(text)
    }

    /// Peak-normalises each utterance's raw audio and joins them with Piper's sentence silence;
    /// the first failed utterance fails the whole.
    fn join_utterances(
        &self,
        utterances: impl IntoIterator<Item = Result<Vec<f32>, ModelError>>,
    ) -> Result<Pcm, ModelError> {
        let rate = self.config.audio.sample_rate;
        let silence = (SENTENCE_SILENCE_SECS * rate as f32) as usize;
        let mut samples = Vec::new();
        for (i, audio) in utterances.into_iter().enumerate() {
            let mut audio = audio?;
            peak_normalize(&mut audio);
            if i > 0 {
                samples.extend(std::iter::repeat_n(0.0, silence));
            }
            samples.extend(audio);
        }
        Ok(Pcm::new(samples, rate))
    }

    /// A request's inference settings: the voice's defaults, its speed, speaker and seed.
    fn request_params(&self, request: &SynthesisRequest) -> Result<InferenceParams, ModelError> {
        if !request.speed.is_finite() || request.speed <= 0.0 {
            return Err(ModelError::InvalidInput {
                field: "speed",
                message: format!("{} is not a positive number", request.speed),
            });
        }
        let mut params = InferenceParams::from_config(&self.config.inference);
        params.length_scale /= request.speed;
        params.speaker_id = self.speaker_for_voice(&request.voice)?;
        if let Some(seed) = request.seed {
            params.seed = seed;
        }
        Ok(params)
    }
}

/// A request's inference settings and the phoneme ids of its utterances.
type PreparedRequest = (InferenceParams, Vec<Vec<i64>>);

/// Cuts a phoneme sequence into pieces of at most `max` phonemes, preferring spaces.
fn split_long(phonemes: &[char], max: usize) -> Vec<&[char]> {
    let mut pieces = Vec::new();
    let mut rest = phonemes;
    while rest.len() > max {
        let cut = rest[..max]
            .iter()
            .rposition(|&c| c == ' ')
            .filter(|&p| p > 0)
            .map_or(max, |p| p + 1);
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces.push(rest);
    pieces
}

impl SpeechModel for PiperModel {
    fn family(&self) -> &str {
        "piper"
    }

    fn sample_rate(&self) -> u32 {
        self.config.audio.sample_rate
    }

    fn voices(&self) -> Vec<VoiceInfo> {
        let language = self
            .config
            .language
            .as_ref()
            .map(|l| l.code.replace('_', "-"))
            .unwrap_or_else(|| self.config.espeak.voice.clone());
        let info = |id: String| VoiceInfo {
            id,
            family: "piper".into(),
            language: language.clone(),
            kind: VoiceKind::Stock,
        };
        let speakers = self.config.speaker_names();
        if speakers.is_empty() {
            return vec![info(self.voice_id.clone())];
        }
        speakers
            .iter()
            .map(|(id, name)| info(self.speaker_voice_id(*id, name)))
            .collect()
    }

    fn synthesize(&self, request: &SynthesisRequest) -> Result<Pcm, ModelError> {
        let params = self.request_params(request)?;
        self.synthesize_text(&request.text, &params)
    }

    /// Every utterance of every request through [`Vits::infer_grouped`] (padded batches of
    /// similar lengths); a request that fails to parse, or whose utterance fails, fails alone.
    fn synthesize_batch(&self, requests: &[SynthesisRequest]) -> Vec<Result<Pcm, ModelError>> {
        if let [one] = requests {
            return vec![self.synthesize(one)];
        }
        // Each request's settings and utterances, or why it fails.
        let prepared: Vec<Result<PreparedRequest, ModelError>> = requests
            .iter()
            .map(|r| Ok((self.request_params(r)?, self.utterances(&r.text)?)))
            .collect();
        let batch: Vec<Utterance> = prepared
            .iter()
            .flatten()
            .flat_map(|(params, utterances)| {
                utterances.iter().map(move |ids| Utterance { ids, params })
            })
            .collect();
        let mut audio = self.vits.infer_grouped(&batch).into_iter();
        prepared
            .into_iter()
            .map(|request| {
                let (_, utterances) = request?;
                self.join_utterances(audio.by_ref().take(utterances.len()).collect::<Vec<_>>())
            })
            .collect()
    }

    fn batches(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_windows_cover_every_frame_once_with_context() {
        assert_eq!(
            DecodeWindow::cover(40, 16, 4),
            vec![
                DecodeWindow {
                    start: 0,
                    len: 20,
                    keep: 0..16
                },
                DecodeWindow {
                    start: 12,
                    len: 24,
                    keep: 4..20
                },
                DecodeWindow {
                    start: 28,
                    len: 12,
                    keep: 4..12
                },
            ]
        );
        assert_eq!(
            DecodeWindow::cover(24, 16, 4),
            vec![DecodeWindow {
                start: 0,
                len: 24,
                keep: 0..24
            }]
        );
    }

    #[test]
    fn long_phoneme_runs_are_cut_at_spaces() {
        let p: Vec<char> = "ab cd ef gh".chars().collect();
        let pieces = split_long(&p, 5);
        assert!(pieces.iter().all(|s| s.len() <= 5));
        assert_eq!(pieces.concat(), p);
        assert_eq!(pieces[0], &['a', 'b', ' ']);
    }

    #[test]
    fn peak_normalisation_scales_to_full_range_but_not_silence() {
        let mut a = vec![0.25, -0.5, 0.1];
        peak_normalize(&mut a);
        assert_eq!(a, vec![0.5, -1.0, 0.2]);
        let mut quiet = vec![0.001, -0.002];
        peak_normalize(&mut quiet);
        assert!((quiet[1] + 0.2).abs() < 1e-6);
    }

    #[test]
    fn multi_speaker_config_lists_speakers_by_id() {
        let json = r#"{"audio": {"sample_rate": 22050}, "num_speakers": 3,
            "speaker_id_map": {"b": 1, "a": 0, "c": 2},
            "phoneme_id_map": {"_": [0], "^": [1], "$": [2]}}"#;
        let cfg = PiperConfig::from_json(json).unwrap();
        assert_eq!(cfg.num_speakers, 3);
        assert_eq!(
            cfg.speaker_names(),
            vec![(0, "a".into()), (1, "b".into()), (2, "c".into())]
        );
        assert_eq!(cfg.espeak.voice, "en-us");
        assert_eq!(cfg.inference.noise_w, 0.8);
    }
}
