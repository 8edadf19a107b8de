//! The backend-agnostic path (what CUDA and Metal run) against the CPU fast paths, both run on
//! the CPU: `nn::with_generic_ops` makes every fused conv, AdaIN and the Kokoro source/STFT take
//! plain candle ops. Also half-precision weights against f32.
//!
//! Tolerances are stated per test. What differs between the paths is float summation order:
//! the fused convs accumulate in another order than candle's im2col GEMM (≤ 1e-5 relative per
//! layer), and Kokoro's source phase is a cumulative sum in f32 that reaches ~10⁴ rad, where one
//! ulp is ~1e-3 rad, so the tensor cumsum and the host loop disagree by up to ~1e-2 rad on the
//! sines (both are as exact as PyTorch's own f32 cumsum).

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use tts_models::kokoro::{KokoroModel, SourceOptions};
use tts_models::nn::with_generic_ops;
use tts_models::vits::{InferenceParams, PiperModel};

fn models_dir() -> PathBuf {
    std::env::var_os("TTS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn kokoro(dtype: DType) -> KokoroModel {
    let dir = models_dir().join("kokoro");
    assert!(
        dir.join("kokoro-v1.0.int8.onnx").exists(),
        "{} is missing the Kokoro weights: run scripts/fetch_models.py",
        dir.display()
    );
    KokoroModel::load_with_dtype(&dir, &Device::Cpu, dtype)
        .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
}

fn kokoro_f32() -> &'static KokoroModel {
    static MODEL: OnceLock<KokoroModel> = OnceLock::new();
    MODEL.get_or_init(|| kokoro(DType::F32))
}

/// ‖a − b‖ / ‖b‖ over the common length (lengths must match).
fn rel_l2(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt() as f32
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.to_vec1())
        .expect("tensor values")
}

const PHONEMES: &str = "ðə bˈʌs lˈiːvz æt sˈɪks fˈɔːɹti fˈaɪv.";

fn voice(model: &KokoroModel) -> String {
    model.voice_store().ids()[0].clone()
}

#[test]
fn kokoro_generic_ops_match_the_cpu_fast_paths() {
    let model = kokoro_f32();
    let ids = model.phoneme_ids(PHONEMES);
    let style = model.voice_store().style(&voice(model), ids.len()).unwrap();
    let opts = SourceOptions::default();
    let fast = model.net().forward(&ids, &style, 1.0, None, &opts).unwrap();
    // Same durations, so a rounding flip cannot change the length.
    let generic = with_generic_ops(|| {
        model
            .net()
            .forward(&ids, &style, 1.0, Some(&fast.durations), &opts)
    })
    .unwrap();
    let f0 = rel_l2(&values(&generic.f0), &values(&fast.f0));
    let asr = rel_l2(&values(&generic.asr), &values(&fast.asr));
    let audio = rel_l2(&generic.audio, &fast.audio);
    eprintln!("generic vs fast: f0 {f0:.2e}, asr {asr:.2e}, audio {audio:.2e}");
    // Measured: F0 7e-8, aligned features 0, audio 7e-3 (the source phase, see the module docs).
    assert!(f0 < 1e-6, "F0 rel. L2 {f0}");
    assert!(asr < 1e-6, "aligned features rel. L2 {asr}");
    assert!(audio < 2e-2, "audio rel. L2 {audio}");
}

#[test]
fn kokoro_source_spectrum_as_tensor_ops_matches_the_host_loops() {
    let model = kokoro_f32();
    let ids = model.phoneme_ids(PHONEMES);
    let style = model.voice_store().style(&voice(model), ids.len()).unwrap();
    let opts = SourceOptions {
        seed: 7,
        ..SourceOptions::default()
    };
    let trace = model.net().forward(&ids, &style, 1.0, None, &opts).unwrap();
    let generator = model.net().decoder.generator();
    let host = generator.source_spectrum(&trace.f0, &opts).unwrap();
    let device = with_generic_ops(|| generator.source_spectrum(&trace.f0, &opts)).unwrap();
    assert_eq!(host.dims(), device.dims());
    let bins = host.dim(1).unwrap() / 2;
    let (hm, dm) = (
        host.narrow(1, 0, bins).unwrap(),
        device.narrow(1, 0, bins).unwrap(),
    );
    let mag = rel_l2(&values(&dm), &values(&hm));
    // Phases compared as angles (a ±π wrap is no difference), weighted by magnitude: the phase
    // of a near-zero bin is noise in both.
    let (hp, dp) = (
        values(&host.narrow(1, bins, bins).unwrap()),
        values(&device.narrow(1, bins, bins).unwrap()),
    );
    let weights = values(&hm);
    let (mut num, mut den) = (0f64, 0f64);
    for ((a, b), w) in hp.iter().zip(&dp).zip(&weights) {
        let d = ((a - b) / 2.0).sin().abs() as f64;
        num += d * *w as f64;
        den += *w as f64;
    }
    let phase = (num / den) as f32;
    eprintln!("source spectrum: magnitude rel. L2 {mag:.2e}, weighted |sin(Δphase/2)| {phase:.2e}");
    // Measured: magnitude 7e-4, phase 3e-4.
    assert!(mag < 3e-3, "magnitude rel. L2 {mag}");
    assert!(phase < 2e-3, "weighted phase difference {phase}");
}

/// Half precision, stage by stage: the prosody predictor's F0 from the same tokens, and the
/// decoder's audio from the same (f32) aligned features, F0 and energy. The whole-utterance
/// waveform is not compared: a 1 % F0 difference integrates into a phase drift that makes any
/// two waveforms of the same speech differ by ~100 % in L2.
#[test]
fn kokoro_bf16_and_f16_weights_stay_close_to_f32() {
    let reference = kokoro_f32();
    let ids = reference.phoneme_ids(PHONEMES);
    let style = reference
        .voice_store()
        .style(&voice(reference), ids.len())
        .unwrap();
    let opts = SourceOptions::default();
    let want = reference
        .net()
        .forward(&ids, &style, 1.0, None, &opts)
        .unwrap();
    let s_dec = style
        .narrow(1, 0, reference.net().config().style_dim)
        .unwrap();
    for (dtype, f0_tol, audio_tol) in [(DType::F16, 2e-3, 3e-2), (DType::BF16, 3e-2, 0.2)] {
        let model = kokoro(dtype);
        let got = model
            .net()
            .forward(&ids, &style, 1.0, Some(&want.durations), &opts)
            .unwrap();
        let f0 = rel_l2(&values(&got.f0), &values(&want.f0));
        let cast = |t: &Tensor| t.to_dtype(dtype).unwrap();
        let audio = model
            .net()
            .decoder
            .forward(&cast(&want.asr), &want.f0, &want.n, &cast(&s_dec), &opts)
            .unwrap();
        let audio = rel_l2(&audio, &want.audio);
        // Measured: f16 F0 2.7e-4, audio 8.9e-3; bf16 F0 7.6e-3, audio 7.0e-2.
        eprintln!("{dtype:?} vs f32: F0 rel. L2 {f0:.2e}, decoder audio rel. L2 {audio:.2e}");
        assert!(f0 < f0_tol, "{dtype:?} F0 rel. L2 {f0}");
        assert!(audio < audio_tol, "{dtype:?} decoder audio rel. L2 {audio}");
    }
}

#[test]
fn piper_generic_ops_match_the_cpu_fast_paths() {
    let onnx = models_dir().join("piper/en_US-joe-medium.onnx");
    assert!(
        onnx.exists(),
        "{} missing: run scripts/fetch_models.py",
        onnx.display()
    );
    let model = PiperModel::load(&onnx, &onnx.with_extension("onnx.json"), &Device::Cpu).unwrap();
    let ids = model
        .phoneme_ids("The bus leaves at six forty five.")
        .unwrap()
        .remove(0);
    let params = InferenceParams::from_config(&model.config().inference);
    let fast = model.vits().infer(&ids, &params).unwrap();
    let generic = with_generic_ops(|| model.vits().infer(&ids, &params)).unwrap();
    let durations = values(&generic.durations);
    assert_eq!(durations, values(&fast.durations), "durations differ");
    let z = rel_l2(&values(&generic.z), &values(&fast.z));
    let audio = rel_l2(&generic.audio, &fast.audio);
    eprintln!("piper generic vs fast: z {z:.2e}, audio {audio:.2e}");
    // Measured: latent 3e-6, audio 1e-4.
    assert!(z < 2e-5, "latent rel. L2 {z}");
    assert!(audio < 1e-3, "audio rel. L2 {audio}");
}

/// The decoder through ops candle differentiates (voice cloning's path): the same audio as the
/// fast path up to the source phase (as above), and a gradient with respect to the style that
/// agrees with a finite difference of the same function.
#[test]
fn kokoro_differentiable_decoder_matches_and_its_style_gradient_is_right() {
    let model = kokoro_f32();
    let ids = model.phoneme_ids(PHONEMES);
    let style = model.voice_store().style(&voice(model), ids.len()).unwrap();
    let opts = SourceOptions::default();
    let fast = model.net().forward(&ids, &style, 1.0, None, &opts).unwrap();
    let half = model.net().config().style_dim;
    let s_dec = candle_core::Var::from_tensor(&style.narrow(1, 0, half).unwrap()).unwrap();
    let decode = |s: &Tensor| {
        model
            .net()
            .decoder
            .forward_differentiable(&fast.asr, &fast.f0, &fast.n, s, &opts)
            .unwrap()
    };
    let started = std::time::Instant::now();
    let audio = decode(s_dec.as_tensor());
    let forward_secs = started.elapsed().as_secs_f64();
    let diff = rel_l2(&values(&audio), &fast.audio);
    // Measured: 7e-3, like the generic path (the source phase).
    assert!(diff < 2e-2, "differentiable vs fast audio rel. L2 {diff}");

    // Loss: the energy of the audio, a smooth function of the style.
    let loss = |audio: &Tensor| audio.sqr().unwrap().mean_all().unwrap();
    let started = std::time::Instant::now();
    let grads = loss(&audio).backward().unwrap();
    eprintln!(
        "{} samples: forward {forward_secs:.2} s, backward {:.2} s",
        fast.audio.len(),
        started.elapsed().as_secs_f64()
    );
    let grad = grads
        .get(s_dec.as_tensor())
        .expect("gradient reaches the style");
    let norm = grad
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .sqrt()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(norm.is_finite() && norm > 0.0, "gradient norm {norm}");
    let direction = (grad / f64::from(norm)).unwrap();
    let eps = 1e-2;
    let at = |sign: f64| {
        let s = (s_dec.as_tensor() + (&direction * (sign * eps)).unwrap()).unwrap();
        loss(&decode(&s)).to_scalar::<f32>().unwrap()
    };
    let finite = (at(1.0) - at(-1.0)) / (2.0 * eps as f32);
    eprintln!("directional derivative: autograd {norm:.4e}, finite difference {finite:.4e}");
    assert!(
        (finite - norm).abs() < 0.1 * norm,
        "autograd {norm} vs finite difference {finite}"
    );
}
