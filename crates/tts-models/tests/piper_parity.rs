//! Parity of the candle Piper (VITS) port with the reference runtime, stage by stage, on the
//! real `en_US-joe-medium` voice. Goldens come from `tools/piper_goldens.py` (onnxruntime,
//! noise scales 0, ids from `piper_phonemize`).

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use tts_models::vits::{InferenceParams, PiperModel};
use tts_models::{ModelError, SpeechModel, SynthesisRequest};

const SENTENCES: [&str; 3] = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog, then it rests; happily!",
    "Is this voice running natively in Rust?",
];

fn models_dir() -> PathBuf {
    std::env::var_os("TTS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn model() -> &'static PiperModel {
    static MODEL: OnceLock<PiperModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let onnx = models_dir().join("piper/en_US-joe-medium.onnx");
        assert!(
            onnx.exists(),
            "{} is missing: run scripts/fetch_models.py",
            onnx.display()
        );
        let json = onnx.with_extension("onnx.json");
        PiperModel::load(&onnx, &json, &Device::Cpu).expect("joe voice loads")
    })
}

fn golden(i: usize, name: &str) -> Tensor {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/piper/s{i}_{name}.npy"));
    Tensor::read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn golden_ids(i: usize) -> Vec<i64> {
    golden(i, "ids").to_vec1().expect("ids are int64")
}

fn deterministic() -> InferenceParams {
    InferenceParams {
        noise_scale: 0.0,
        length_scale: 1.0,
        noise_w: 0.0,
        speaker_id: 0,
        seed: 0,
    }
}

fn rel_l2(ours: &Tensor, reference: &Tensor) -> f32 {
    let ours = ours.flatten_all().unwrap();
    let reference = reference.flatten_all().unwrap();
    assert_eq!(ours.dims(), reference.dims(), "shape mismatch");
    let diff = (&ours - &reference)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    let norm = reference.sqr().unwrap().sum_all().unwrap();
    (diff.to_scalar::<f32>().unwrap() / norm.to_scalar::<f32>().unwrap()).sqrt()
}

#[test]
fn phoneme_ids_equal_piper_phonemize_exactly() {
    for (i, text) in SENTENCES.iter().enumerate() {
        let ours = model().phoneme_ids(text).expect("phonemize");
        assert_eq!(ours, vec![golden_ids(i)], "sentence {i}: {text}");
    }
}

#[test]
fn encoder_output_rel_l2_below_1e_3() {
    for i in 0..SENTENCES.len() {
        let enc = model().vits().encode(&golden_ids(i)).expect("encode");
        let e_x = rel_l2(&enc.x, &golden(i, "enc_x"));
        let stats = Tensor::cat(&[&enc.m_p, &enc.logs_p], 1).unwrap();
        let e_stats = rel_l2(&stats, &golden(i, "enc_stats"));
        println!("sentence {i}: encoder x rel L2 {e_x:.2e}, stats rel L2 {e_stats:.2e}");
        assert!(e_x < 1e-3, "sentence {i}: encoder x rel L2 {e_x}");
        assert!(
            e_stats < 1e-3,
            "sentence {i}: encoder stats rel L2 {e_stats}"
        );
    }
}

#[test]
fn durations_equal_reference_exactly() {
    for i in 0..SENTENCES.len() {
        let stages = model()
            .vits()
            .infer(&golden_ids(i), &deterministic())
            .expect("infer");
        let ours: Vec<f32> = stages.durations.flatten_all().unwrap().to_vec1().unwrap();
        let reference: Vec<f32> = golden(i, "durations")
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(ours, reference, "sentence {i}");
    }
}

#[test]
fn flow_output_and_audio_rel_l2_below_1e_3() {
    for i in 0..SENTENCES.len() {
        let stages = model()
            .vits()
            .infer(&golden_ids(i), &deterministic())
            .expect("infer");
        let e_z = rel_l2(&stages.z, &golden(i, "z"));
        let audio = Tensor::new(stages.audio.as_slice(), &Device::Cpu).unwrap();
        let e_audio = rel_l2(&audio, &golden(i, "audio"));
        println!("sentence {i}: flow z rel L2 {e_z:.2e}, audio rel L2 {e_audio:.2e}");
        assert!(e_z < 1e-3, "sentence {i}: z rel L2 {e_z}");
        assert!(e_audio < 1e-3, "sentence {i}: audio rel L2 {e_audio}");
    }
}

#[test]
fn hyperparameters_are_read_from_the_graph() {
    let cfg = &model().vits().config;
    assert_eq!((cfg.n_layers, cfg.n_heads, cfg.window_size), (6, 2, 4));
    let strides: Vec<usize> = cfg.decoder.upsamples.iter().map(|u| u.stride).collect();
    assert_eq!(strides, vec![8, 8, 4]);
    assert_eq!(cfg.hop_length(), 256);
    assert!(!cfg.decoder.resblocks[0].type1);
    // joe-medium's resblock dilations are (1,2), (2,6), (3,12), not VITS' default (1,3,5).
    let dil: Vec<Vec<usize>> = cfg
        .decoder
        .resblocks
        .iter()
        .map(|r| r.convs.iter().map(|c| c.0).collect())
        .collect();
    assert_eq!(dil, vec![vec![1, 2], vec![2, 6], vec![3, 12]]);
    assert_eq!(cfg.dp_flow_indices, vec![3, 5, 7]);
    assert_eq!(cfg.n_speakers, 1);
}

#[test]
fn single_speaker_voice_rejects_speaker_ids_above_zero() {
    let mut params = deterministic();
    params.speaker_id = 1;
    let err = model().vits().infer(&golden_ids(0), &params).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::InvalidInput {
                field: "speaker_id",
                ..
            }
        ),
        "{err}"
    );
    let err = model()
        .synthesize(&SynthesisRequest::new("Hi.", "en_US-joe-medium:7"))
        .unwrap_err();
    assert!(matches!(err, ModelError::UnknownVoice(_)), "{err}");
}

#[test]
fn noisy_synthesis_with_a_fixed_seed_is_reproducible() {
    let mut request = SynthesisRequest::new("Reproducible noise.", "en_US-joe-medium");
    request.seed = Some(42);
    let a = model().synthesize(&request).unwrap();
    let b = model().synthesize(&request).unwrap();
    assert_eq!(a.samples, b.samples);
    request.seed = Some(43);
    let c = model().synthesize(&request).unwrap();
    assert_ne!(a.samples, c.samples, "a different seed changes the noise");
}

#[test]
fn zero_noise_output_is_deterministic_and_seed_independent() {
    let mut p = deterministic();
    let a = model().vits().infer(&golden_ids(0), &p).unwrap().audio;
    p.seed = 99;
    let b = model().vits().infer(&golden_ids(0), &p).unwrap().audio;
    assert_eq!(a, b);
}

#[test]
fn speed_two_roughly_halves_the_duration() {
    let mut request =
        SynthesisRequest::new("This sentence is spoken at two speeds.", "en_US-joe-medium");
    let normal = model().synthesize(&request).unwrap();
    request.speed = 2.0;
    let fast = model().synthesize(&request).unwrap();
    let ratio = fast.samples.len() as f64 / normal.samples.len() as f64;
    assert!((0.4..0.65).contains(&ratio), "ratio {ratio}");
    assert_eq!(normal.sample_rate, 22050);
}

#[test]
fn synthesized_audio_is_peak_normalised_speech() {
    let pcm = model()
        .synthesize(&SynthesisRequest::new(
            "Hello there, how are you?",
            "en_US-joe-medium",
        ))
        .unwrap();
    let peak = pcm.samples.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!((peak - 1.0).abs() < 1e-6, "peak {peak}");
    assert!(pcm.duration_secs() > 0.8 && pcm.duration_secs() < 4.0);
}

#[test]
fn empty_text_is_a_clear_error() {
    for text in ["", "   \n "] {
        let err = model()
            .synthesize(&SynthesisRequest::new(text, "en_US-joe-medium"))
            .unwrap_err();
        assert!(
            matches!(err, ModelError::InvalidInput { field: "text", .. }),
            "{err}"
        );
    }
}

#[test]
fn awkward_text_gives_valid_audio_or_a_clear_error_never_a_panic() {
    let long: String = "This is a fairly long sentence that keeps going without any end in sight "
        .repeat(70)
        .chars()
        .take(5000)
        .collect();
    let cases = [
        "?!...;,".to_string(),
        "😀🎉🚀".to_string(),
        "Hello 世界, привет мир, مرحبا!".to_string(),
        long,
    ];
    for text in &cases {
        match model().synthesize(&SynthesisRequest::new(text.as_str(), "en_US-joe-medium")) {
            Ok(pcm) => {
                assert!(pcm.samples.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
                assert!(!pcm.samples.is_empty(), "{text:.40}");
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn invalid_speed_is_rejected() {
    let mut request = SynthesisRequest::new("Hi.", "en_US-joe-medium");
    for speed in [0.0, -1.0, f32::NAN] {
        request.speed = speed;
        assert!(model().synthesize(&request).is_err());
    }
}

#[test]
fn voices_lists_the_single_stock_voice() {
    let voices = model().voices();
    assert_eq!(voices.len(), 1);
    assert_eq!(voices[0].id, "en_US-joe-medium");
    assert_eq!(voices[0].language, "en-US");
    assert_eq!(model().family(), "piper");
}

#[test]
fn chunked_decoding_matches_whole_utterance_decoding_rel_l2_below_1e_3() {
    let z = golden(1, "z");
    let whole = model()
        .vits()
        .decode_in_chunks(&z, None, 10_000, 0)
        .unwrap();
    let chunked = model().vits().decode_in_chunks(&z, None, 100, 16).unwrap();
    assert_eq!(whole.len(), chunked.len());
    let err = rel_l2(
        &Tensor::new(chunked.as_slice(), &Device::Cpu).unwrap(),
        &Tensor::new(whole.as_slice(), &Device::Cpu).unwrap(),
    );
    println!("chunked vs whole decode rel L2 {err:.2e}");
    assert!(err < 1e-3, "rel L2 {err}");
}
