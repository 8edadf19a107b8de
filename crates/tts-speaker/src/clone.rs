//! Cloning a voice sample into a Kokoro style pack.
//!
//! Kokoro ships no style encoder, so the pack is searched for, scored by the GE2E encoder:
//! 1. **Blend.** Every stock voice speaks a fixed reference sentence once (cached per model);
//!    its GE2E embedding and prosody (median F0, voiced-onset rate) are stacked into one column
//!    per voice. Non-negative least squares against the sample's column gives blend weights
//!    (normalised to sum 1, like Kokoro's own `a(2)+b(1)` blends).
//! 2. **Search.** The pack is parameterised by two weight vectors over the stock packs, one
//!    for the decoder half (timbre) and one for the prosody half of the style vector, signs
//!    free so the search may extrapolate beyond the blend. With k stock packs these 2k weights
//!    span every principal direction of the packs. A derivative-free (1+2) evolution strategy
//!    with antithetic samples and step-size adaptation maximises
//!    `cos(GE2E(synth(pack)), GE2E(sample)) − λ·‖θ − θ_blend‖²`, within part of the budget.
//! 3. **Gradient refinement.** The decoder half is then freed from the stock packs' span: an
//!    offset added to it (every row of the pack) is optimised with Adam on
//!    `cos(GE2E(decoder(style + offset)), GE2E(sample)) − λ·‖offset‖²`, back-propagated
//!    through Kokoro's decoder and the GE2E encoder by candle's autograd
//!    ([`tts_models::nn::with_differentiable_ops`], [`SpeakerEncoder::embed_differentiable`]).
//!    The text's alignment, F0 and energy come from the predictor once (the prosody half does
//!    not move here). The offset is kept only if the exact scorer agrees that it helps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use tts_audio::Pcm;
use tts_models::kokoro::{KokoroModel, SourceOptions, SAMPLE_RATE};
use tts_text::kokoro::Language;

use crate::prosody::ProsodyStats;
use crate::{cosine, SpeakerEncoder, SpeakerError};

/// What every stock voice and every candidate pack says while being scored (≈ 3 s).
pub const FIT_TEXT: &str =
    "The birch canoe slid on the smooth planks, then drifted past the old mill.";
/// What the gradient refinement synthesizes (≈ 2.5 s, a GE2E partial and a half): each step
/// back-propagates through the whole decoder, so it is kept shorter than [`FIT_TEXT`].
const GRADIENT_TEXT: &str = "The birch canoe slid on the smooth planks.";
/// Weight of one unit of ln F0 against the unit-norm speaker embedding in the NNLS columns.
const F0_WEIGHT: f32 = 1.0;
/// Weight of one voiced onset per second.
const RATE_WEIGHT: f32 = 0.1;
/// Soft constraint that the blend weights sum to 1.
const SUM_WEIGHT: f32 = 1.0;
/// Style vector halves: decoder (timbre) first, prosody predictor second.
const HALF: usize = 128;

/// How hard to search.
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Wall-clock budget of the fit in seconds: scoring the blend, search iterations, then
    /// gradient steps (~5 s each on 2 CPU cores), each only while it still fits (0 = blend
    /// only). The one-off profiling of the stock voices (cached per process, ~5 s per voice on
    /// 2 CPU cores) comes on top.
    pub time_budget_secs: f32,
    /// Most search iterations (one or two syntheses each), whatever the budget.
    pub max_iterations: usize,
    /// Pull of the refined weights towards the blend, and of the gradient offset towards 0
    /// (λ; 0 = none).
    pub regularisation: f32,
    /// Share of the budget left to gradient refinement after the search (0 = none).
    pub gradient_share: f32,
    /// Adam's step size for the decoder-half offset.
    pub learning_rate: f32,
    /// Most gradient steps, whatever the budget.
    pub max_gradient_steps: usize,
    /// Seed of the synthesis noise and of the search.
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            time_budget_secs: 55.0,
            max_iterations: 64,
            regularisation: 0.02,
            gradient_share: 0.75,
            learning_rate: 0.01,
            max_gradient_steps: 64,
            seed: 0,
        }
    }
}

/// A fitted Kokoro voice.
#[derive(Debug, Clone)]
pub struct FittedStyle {
    /// The style pack `[510, 256]` f32.
    pub pack: Tensor,
    /// Weights of the stock voices in the first-stage blend (sum 1, non-negative).
    pub blend: Vec<(String, f32)>,
    /// Cosine similarity between the sample and speech synthesised with `pack`.
    pub similarity: f32,
    /// The same after the blend and the search, before gradient refinement.
    pub searched_similarity: f32,
}

/// A stock voice as the fitting sees it.
#[derive(Debug, Clone)]
pub struct StockVoice {
    pub id: String,
    /// `[510, 256]`.
    pub pack: Tensor,
    /// GE2E embedding of the voice saying [`FIT_TEXT`].
    pub embedding: Vec<f32>,
    pub prosody: ProsodyStats,
}

/// The stock voices of one Kokoro model, with their reference embeddings.
#[derive(Debug)]
pub struct StockVoices {
    pub voices: Vec<StockVoice>,
    /// Phoneme string of [`FIT_TEXT`].
    phonemes: String,
    /// That row of every pack, host copies.
    rows: Vec<Vec<f32>>,
}

impl StockVoices {
    /// Synthesises and embeds every stock voice of `kokoro` (cached per set of packs; a few
    /// seconds per voice on CPU the first time).
    pub fn of(kokoro: &KokoroModel, encoder: &SpeakerEncoder) -> Result<Arc<Self>, SpeakerError> {
        static CACHE: OnceLock<Mutex<HashMap<String, Arc<StockVoices>>>> = OnceLock::new();
        let store = kokoro.voice_store();
        let ids = store.ids();
        // The ids plus a few pack values identify the packs well enough for a cache key.
        let mut key = String::new();
        for id in &ids {
            let pack = store.pack(id)?;
            let probe: Vec<f32> = pack
                .narrow(0, 0, 1)?
                .flatten_all()?
                .narrow(0, 0, 4)?
                .to_vec1()?;
            key.push_str(&format!("{id}:{probe:?};"));
        }
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(hit);
        }
        let phonemes = fit_phonemes()?;
        let n = kokoro.phoneme_ids(&phonemes).len();
        let mut voices = Vec::new();
        let mut rows = Vec::new();
        for id in ids {
            let pack = store.pack(&id)?.as_ref().clone();
            let style = style_row(&pack, n)?;
            let audio = synthesize(kokoro, &phonemes, &style, 0)?;
            let embedding = encoder.embed(&audio)?;
            let prosody = ProsodyStats::measure(&audio)?;
            tracing::info!(voice = %id, f0_hz = prosody.f0_hz(), onset_rate = prosody.onset_rate, "stock voice profiled");
            rows.push(style);
            voices.push(StockVoice {
                id,
                pack,
                embedding,
                prosody,
            });
        }
        if voices.is_empty() {
            return Err(SpeakerError::InvalidInput {
                field: "kokoro",
                message: "the model has no stock voices".into(),
            });
        }
        let stock = Arc::new(Self {
            voices,
            phonemes,
            rows,
        });
        if let Ok(mut c) = cache.lock() {
            c.insert(key, stock.clone());
        }
        Ok(stock)
    }

    /// The stock voice whose reference embedding is closest to `embedding`, with its cosine.
    pub fn nearest(&self, embedding: &[f32]) -> (usize, f32) {
        self.voices
            .iter()
            .enumerate()
            .map(|(i, v)| (i, cosine(&v.embedding, embedding)))
            .fold((0, f32::MIN), |b, c| if c.1 > b.1 { c } else { b })
    }

    /// The pack `[510, 256]` for weights `theta` = decoder-half weights ‖ prosody-half weights.
    pub fn pack_for(&self, theta: &[f32]) -> Result<Tensor, SpeakerError> {
        let k = self.voices.len();
        let mut dec: Option<Tensor> = None;
        let mut pro: Option<Tensor> = None;
        for (i, v) in self.voices.iter().enumerate() {
            let d = (v.pack.narrow(1, 0, HALF)? * f64::from(theta[i]))?;
            let p = (v.pack.narrow(1, HALF, HALF)? * f64::from(theta[k + i]))?;
            dec = Some(match dec {
                None => d,
                Some(acc) => (acc + d)?,
            });
            pro = Some(match pro {
                None => p,
                Some(acc) => (acc + p)?,
            });
        }
        match (dec, pro) {
            (Some(d), Some(p)) => Ok(Tensor::cat(&[d, p], 1)?.contiguous()?),
            _ => Err(SpeakerError::InvalidInput {
                field: "kokoro",
                message: "no stock voices".into(),
            }),
        }
    }

    /// The style row of [`FIT_TEXT`] for weights `theta`.
    fn style_for(&self, theta: &[f32]) -> Vec<f32> {
        let k = self.rows.len();
        let mut style = vec![0f32; 2 * HALF];
        for (i, row) in self.rows.iter().enumerate() {
            for (j, s) in style.iter_mut().enumerate() {
                let w = if j < HALF { theta[i] } else { theta[k + i] };
                *s += w * row[j];
            }
        }
        style
    }
}

fn fit_phonemes() -> Result<String, SpeakerError> {
    phonemes_of(FIT_TEXT)
}

fn phonemes_of(text: &str) -> Result<String, SpeakerError> {
    tts_text::kokoro::phonemize_as(text, Language::EnglishUs, tts_models::kokoro::MAX_PHONEMES)?
        .into_iter()
        .next()
        .ok_or_else(|| SpeakerError::InvalidInput {
            field: "text",
            message: "the fitting sentence has no phonemes".into(),
        })
}

/// Kokoro speaking `phonemes` with the style vector `style` (256 values).
pub fn synthesize(
    kokoro: &KokoroModel,
    phonemes: &str,
    style: &[f32],
    seed: u64,
) -> Result<Pcm, SpeakerError> {
    let ids = kokoro.phoneme_ids(phonemes);
    let net = kokoro.net();
    let style = Tensor::from_slice(style, (1, style.len()), net.device())?;
    let source = SourceOptions {
        seed,
        ..SourceOptions::default()
    };
    let trace = net.forward(&ids, &style, 1.0, None, &source)?;
    Ok(Pcm::new(trace.audio, SAMPLE_RATE))
}

/// Kokoro speaking `text` (English) with a whole pack, row chosen by phoneme count per chunk.
pub fn synthesize_text_with_pack(
    kokoro: &KokoroModel,
    text: &str,
    pack: &Tensor,
    seed: u64,
) -> Result<Pcm, SpeakerError> {
    let mut samples = Vec::new();
    for chunk in
        tts_text::kokoro::phonemize_as(text, Language::EnglishUs, tts_models::kokoro::MAX_PHONEMES)?
    {
        let n = kokoro.phoneme_ids(&chunk).len();
        if n == 0 {
            continue;
        }
        let style = style_row(pack, n)?;
        samples.extend(synthesize(kokoro, &chunk, &style, seed)?.samples);
    }
    Ok(Pcm::new(samples, SAMPLE_RATE))
}

/// The style vector of `pack` `[510, 256]` for an input of `n_phonemes` phonemes (row `n − 1`,
/// clamped), as [`tts_models::kokoro::voices::VoiceStore::style`] picks it.
fn style_row(pack: &Tensor, n_phonemes: usize) -> Result<Vec<f32>, SpeakerError> {
    let row = n_phonemes.clamp(1, tts_models::kokoro::voices::PACK_ROWS) - 1;
    Ok(pack.narrow(0, row, 1)?.flatten_all()?.to_vec1()?)
}

/// Non-negative least squares `min ‖A w − b‖²` s.t. `w ≥ 0` for a handful of columns
/// (`a` is column-major: `a[j]` is column j). Projected gradient descent with step 1/L, L the
/// trace bound on AᵀA's largest eigenvalue: with ≤ a few dozen columns this converges in
/// microseconds and needs no linear-algebra dependency.
pub fn nnls(a: &[Vec<f32>], b: &[f32], iterations: usize) -> Vec<f32> {
    let k = a.len();
    let gram: Vec<Vec<f64>> = (0..k)
        .map(|i| (0..k).map(|j| dot(&a[i], &a[j])).collect())
        .collect();
    let atb: Vec<f64> = (0..k).map(|i| dot(&a[i], b)).collect();
    let lipschitz: f64 = (0..k).map(|i| gram[i][i]).sum::<f64>().max(1e-12);
    let mut w = vec![1.0 / k as f64; k];
    for _ in 0..iterations {
        let grad: Vec<f64> = (0..k)
            .map(|i| (0..k).map(|j| gram[i][j] * w[j]).sum::<f64>() - atb[i])
            .collect();
        for (wi, g) in w.iter_mut().zip(grad) {
            *wi = (*wi - g / lipschitz).max(0.0);
        }
    }
    w.into_iter().map(|v| v as f32).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// The NNLS column of a voice: embedding, weighted ln F0 and onset rate, and the sum-to-one row.
fn column(embedding: &[f32], prosody: &ProsodyStats, sum_row: f32) -> Vec<f32> {
    let mut c = embedding.to_vec();
    c.push(F0_WEIGHT * prosody.log_f0);
    c.push(RATE_WEIGHT * prosody.onset_rate);
    c.push(sum_row);
    c
}

/// Blend weights (non-negative, sum 1) of the stock voices for a sample's embedding and prosody.
pub fn blend_weights(stock: &StockVoices, embedding: &[f32], prosody: &ProsodyStats) -> Vec<f32> {
    let a: Vec<Vec<f32>> = stock
        .voices
        .iter()
        .map(|v| column(&v.embedding, &v.prosody, SUM_WEIGHT))
        .collect();
    let b = column(embedding, prosody, SUM_WEIGHT);
    let w = nnls(&a, &b, 5_000);
    let total: f32 = w.iter().sum();
    if total <= 1e-6 {
        // Degenerate fit: fall back to the nearest voice.
        let (best, _) = stock.nearest(embedding);
        return (0..w.len())
            .map(|i| f32::from(u8::from(i == best)))
            .collect();
    }
    w.iter().map(|v| v / total).collect()
}

/// Fits a Kokoro style pack to `sample`: a non-negative blend of the stock packs, then a
/// bounded-time refinement maximising speaker similarity.
pub fn fit_kokoro_style(
    sample: &Pcm,
    kokoro: &KokoroModel,
    encoder: &SpeakerEncoder,
    opts: &FitOptions,
) -> Result<FittedStyle, SpeakerError> {
    if !(opts.time_budget_secs.is_finite() && opts.time_budget_secs >= 0.0) {
        return Err(SpeakerError::InvalidInput {
            field: "time_budget_secs",
            message: format!(
                "{} is not a non-negative number of seconds",
                opts.time_budget_secs
            ),
        });
    }
    let stock = StockVoices::of(kokoro, encoder)?;
    let started = Instant::now();
    let target = encoder.embed(sample)?;
    let prosody = ProsodyStats::measure(sample)?;
    let k = stock.voices.len();
    let weights = blend_weights(&stock, &target, &prosody);
    let blend: Vec<(String, f32)> = stock
        .voices
        .iter()
        .zip(&weights)
        .filter(|(_, w)| **w > 1e-4)
        .map(|(v, w)| (v.id.clone(), *w))
        .collect();
    tracing::info!(?blend, sample_f0_hz = prosody.f0_hz(), "blend fitted");

    // Exact similarity of a style vector (the fitting sentence's row) to the sample.
    let score_style = |style: &[f32]| -> Result<f32, SpeakerError> {
        let audio = synthesize(kokoro, &stock.phonemes, style, opts.seed)?;
        Ok(cosine(&encoder.embed(&audio)?, &target))
    };
    let score = |theta: &[f32]| score_style(&stock.style_for(theta));
    let theta_blend: Vec<f32> = weights.iter().chain(&weights).copied().collect();
    let one_score = Instant::now();
    let blend_sim = score(&theta_blend)?;
    // The cost of one synthesis + embedding; refined as the search runs.
    let per_iteration = 2.0 * one_score.elapsed().as_secs_f64();
    // Start from whichever of the blend and the nearest stock voice sounds closer.
    let (nearest, _) = stock.nearest(&target);
    let theta_nearest: Vec<f32> = (0..2 * k)
        .map(|i| f32::from(u8::from(i % k == nearest)))
        .collect();
    let nearest_sim = if weights[nearest] > 0.999 {
        blend_sim
    } else {
        score(&theta_nearest)?
    };
    let (mut theta, mut sim) = if nearest_sim > blend_sim {
        (theta_nearest, nearest_sim)
    } else {
        (theta_blend.clone(), blend_sim)
    };
    tracing::info!(blend_sim, nearest = %stock.voices[nearest].id, nearest_sim, "refinement starts");

    let penalty = |t: &[f32]| -> f32 {
        opts.regularisation
            * t.iter()
                .zip(&theta_blend)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f32>()
    };
    let mut objective = sim - penalty(&theta);
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed ^ 0x5eed_c10e);
    let mut sigma = 0.25f32;
    let budget = f64::from(opts.time_budget_secs);
    let gradient_share = f64::from(opts.gradient_share.clamp(0.0, 1.0));
    let search_budget = budget * (1.0 - gradient_share);
    let refine_start = Instant::now();
    let mut per_score = per_iteration / 2.0;
    let mut scores = 0usize;
    // The last step that improved the objective is tried again first (pattern-search
    // extension); otherwise an antithetic pair of random steps, the second only if the first fails.
    let mut repeat: Option<Vec<f32>> = None;
    for iteration in 0..opts.max_iterations {
        let repeating = repeat.is_some();
        let needed = if repeating {
            per_score
        } else {
            2.0 * per_score
        };
        if started.elapsed().as_secs_f64() + needed > search_budget {
            tracing::info!(iteration, "search budget reached");
            break;
        }
        let steps: Vec<Vec<f32>> = match repeat.take() {
            Some(step) => vec![step],
            None => {
                let u: Vec<f32> = (0..2 * k)
                    .map(|_| sigma * Distribution::<f32>::sample(&StandardNormal, &mut rng))
                    .collect();
                let minus = u.iter().map(|v| -v).collect();
                vec![u, minus]
            }
        };
        let mut improved = false;
        for step in steps {
            let cand: Vec<f32> = theta.iter().zip(&step).map(|(t, d)| t + d).collect();
            let s = score(&cand)?;
            scores += 1;
            let obj = s - penalty(&cand);
            if obj > objective {
                (theta, sim, objective, improved) = (cand, s, obj, true);
                repeat = Some(step);
                break;
            }
        }
        if !repeating {
            // 1/5th-success-style step adaptation: widen after a success, narrow after a failure.
            sigma = if improved { sigma * 1.5 } else { sigma * 0.7 }.clamp(0.02, 1.0);
        }
        per_score = refine_start.elapsed().as_secs_f64() / scores.max(1) as f64;
        tracing::info!(
            iteration,
            similarity = sim,
            objective,
            sigma,
            "refining clone"
        );
    }
    let mut pack = stock.pack_for(&theta)?;
    let searched_similarity = sim;
    // Gradient refinement, if at least a few steps (each a few syntheses' worth) fit.
    let deadline = started + std::time::Duration::from_secs_f64(budget);
    let remaining = budget - started.elapsed().as_secs_f64();
    if gradient_share > 0.0 && remaining > 4.0 * per_score {
        // Keep time for the exact score of the result.
        let steps_deadline = deadline - std::time::Duration::from_secs_f64(per_score);
        let phonemes = phonemes_of(GRADIENT_TEXT)?;
        let gradient_style = style_row(&pack, kokoro.phoneme_ids(&phonemes).len())?;
        let offset = refine_timbre(
            kokoro,
            encoder,
            &phonemes,
            &gradient_style,
            &target,
            opts,
            steps_deadline,
        )?;
        let mut refined = stock.style_for(&theta);
        for (s, o) in refined.iter_mut().zip(&offset) {
            *s += o;
        }
        let refined_sim = score_style(&refined)?;
        tracing::info!(
            before = sim,
            after = refined_sim,
            "gradient refinement scored"
        );
        if refined_sim > sim {
            sim = refined_sim;
            pack = offset_decoder_half(&pack, &offset)?;
        }
    }
    tracing::info!(
        similarity = sim,
        secs = started.elapsed().as_secs_f64(),
        "clone fitted"
    );
    Ok(FittedStyle {
        pack: pack.to_device(&Device::Cpu)?,
        blend,
        similarity: sim,
        searched_similarity,
    })
}

/// Adam on an offset to the decoder half of `style` (256 values) maximising the GE2E similarity
/// of Kokoro saying `phonemes` to `target`, until `deadline`. Returns the offset with the best
/// similarity seen (zeros when no step helped).
fn refine_timbre(
    kokoro: &KokoroModel,
    encoder: &SpeakerEncoder,
    phonemes: &str,
    style: &[f32],
    target: &[f32],
    opts: &FitOptions,
    deadline: Instant,
) -> Result<Vec<f32>, SpeakerError> {
    let net = kokoro.net();
    let device = net.device();
    let ids = kokoro.phoneme_ids(phonemes);
    let source = SourceOptions {
        seed: opts.seed,
        ..SourceOptions::default()
    };
    let full = Tensor::from_slice(style, (1, style.len()), device)?;
    // Alignment, F0 and energy depend on the prosody half only: computed once.
    let trace = net.forward(&ids, &full, 1.0, None, &source)?;
    let start = full.narrow(1, 0, HALF)?;
    let target = Tensor::from_slice(target, target.len(), device)?;
    let offset = Var::zeros((1, HALF), DType::F32, device)?;
    let mut adam = AdamW::new(
        vec![offset.clone()],
        ParamsAdamW {
            lr: f64::from(opts.learning_rate),
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )?;
    let mut best = (f32::MIN, vec![0f32; HALF]);
    let mut step_time: Option<std::time::Duration> = None;
    for step in 0..opts.max_gradient_steps {
        let now = Instant::now();
        if step_time.is_some_and(|t| now + t > deadline) || now > deadline {
            break;
        }
        let s = (&start + offset.as_tensor())?;
        let audio = net
            .decoder
            .forward_differentiable(&trace.asr, &trace.f0, &trace.n, &s, &source)?;
        let similarity = (encoder.embed_differentiable(&audio)? * &target)?.sum_all()?;
        let value = similarity.to_scalar::<f32>()?;
        let forward_secs = now.elapsed().as_secs_f64();
        if value > best.0 {
            best = (value, offset.as_tensor().flatten_all()?.to_vec1()?);
        }
        let penalty = (offset.as_tensor().sqr()?.sum_all()? * f64::from(opts.regularisation))?;
        adam.backward_step(&(penalty - similarity)?)?;
        step_time = Some(now.elapsed());
        tracing::info!(
            step,
            similarity = value,
            forward_secs,
            secs = now.elapsed().as_secs_f64(),
            "refining timbre by gradient"
        );
    }
    let mut offset = best.1;
    offset.resize(2 * HALF, 0.0);
    Ok(offset)
}

/// `pack` `[510, 256]` with `offset` (256 values, prosody half zero) added to every row.
fn offset_decoder_half(pack: &Tensor, offset: &[f32]) -> Result<Tensor, SpeakerError> {
    let row = Tensor::from_slice(offset, (1, offset.len()), pack.device())?;
    Ok(pack.broadcast_add(&row)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nnls_recovers_non_negative_mixtures_and_clips_negative_ones() {
        let a = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0],
        ];
        let w = nnls(&a, &[0.3, 0.7, 0.0], 2_000);
        assert!(
            (w[0] - 0.3).abs() < 1e-4 && (w[1] - 0.7).abs() < 1e-4 && w[2].abs() < 1e-4,
            "{w:?}"
        );
        // The unconstrained solution has a negative third weight; NNLS clips it to 0.
        let w = nnls(&a, &[0.5, 0.5, -1.0], 2_000);
        assert_eq!(w[2], 0.0);
        assert!((w[0] - 0.5).abs() < 1e-4);
    }
}
