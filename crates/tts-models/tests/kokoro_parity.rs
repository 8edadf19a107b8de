//! Kokoro parity against onnxruntime on the int8 export (goldens from `tools/kokoro_goldens.py`)
//! and behaviour tests on the real weights.
//!
//! Noise floor: the reference quantises every activation to uint8 at run time (dynamic
//! quantisation), while this implementation runs the dequantised weights in f32. Measured on
//! these goldens (see each test), the float forward differs from the int8 graph by ~1–3 % per
//! module and ~10–15 % after ALBERT's 12 shared passes, so tolerances are set per stage a
//! little above the measured difference; stages with no quantisation (ids, style rows,
//! weights, the inverse STFT) must match exactly or to float rounding.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use tts_models::kokoro::{IstftMode, KokoroModel, SourceOptions};
use tts_models::{ModelError, SpeechModel, SynthesisRequest};

fn models_dir() -> PathBuf {
    std::env::var_os("TTS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn model() -> &'static KokoroModel {
    static MODEL: OnceLock<KokoroModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = models_dir().join("kokoro");
        assert!(
            dir.join("kokoro-v1.0.int8.onnx").exists(),
            "{} is missing the Kokoro weights: run scripts/fetch_models.py",
            dir.display()
        );
        match KokoroModel::load(&dir, &Device::Cpu) {
            Ok(m) => m,
            Err(e) => panic!("loading {}: {e}", dir.display()),
        }
    })
}

/// The same weights with the export's source and iSTFT, for waveform comparisons.
fn export_model() -> &'static KokoroModel {
    static MODEL: OnceLock<KokoroModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = models_dir().join("kokoro");
        match KokoroModel::load(&dir, &Device::Cpu) {
            Ok(m) => m.with_source_options(SourceOptions::onnx_export()),
            Err(e) => panic!("loading {}: {e}", dir.display()),
        }
    })
}

struct Golden(HashMap<String, Tensor>);

impl Golden {
    fn load(name: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/kokoro")
            .join(format!("{name}.npz"));
        let arrays = Tensor::read_npz(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self(
            arrays
                .into_iter()
                .map(|(k, v)| (k.trim_end_matches(".npy").to_string(), v))
                .collect(),
        )
    }

    fn t(&self, key: &str) -> &Tensor {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("golden has no {key}"))
    }

    fn f32s(&self, key: &str) -> Vec<f32> {
        self.t(key)
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1())
            .expect("f32 golden")
    }

    fn u32s(&self, key: &str) -> Vec<u32> {
        let v: Vec<i64> = self
            .t(key)
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("i64 golden");
        v.into_iter().map(|x| x as u32).collect()
    }
}

/// The golden cases: (file, voice, phonemes) as in tools/kokoro_goldens.py.
const CASES: [(&str, &str, &str); 3] = [
    ("en_short", "jf_alpha", "hˈɛlO, wˈɜɹld!"),
    (
        "en_sentence",
        "jm_kumo",
        "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɑɡ.",
    ),
    (
        "ja_sentence",
        "jf_nezumi",
        "koɲɲiʨiwa, kjoːwa ii teɴki desɯ ne.",
    ),
];

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

fn vec_of(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.to_vec1())
        .expect("tensor values")
}

/// Mean absolute difference of natural-log mel spectrograms (80 bands, n_fft 1024, hop 256,
/// 24 kHz), the HiFi-GAN mel-loss measure.
fn log_mel_distance(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (ma, mb) = (log_mel(&a[..n]), log_mel(&b[..n]));
    let total: f64 = ma.iter().zip(&mb).map(|(x, y)| (x - y).abs()).sum();
    total / ma.len() as f64
}

fn log_mel(x: &[f32]) -> Vec<f64> {
    let (n_fft, hop, n_mels, sr) = (1024usize, 256usize, 80usize, 24_000f64);
    let bins = n_fft / 2 + 1;
    let hz_to_mel = |f: f64| 2595.0 * (1.0 + f / 700.0).log10();
    let mel_to_hz = |m: f64| 700.0 * (10f64.powf(m / 2595.0) - 1.0);
    let (m_lo, m_hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let pts: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(m_lo + (m_hi - m_lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let win: Vec<f64> = (0..n_fft)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos())
        .collect();
    let (cos, sin): (Vec<f64>, Vec<f64>) = (0..n_fft)
        .map(|i| {
            let a = 2.0 * std::f64::consts::PI * i as f64 / n_fft as f64;
            (a.cos(), a.sin())
        })
        .unzip();
    let mut out = Vec::new();
    let mut start = 0;
    while start + n_fft <= x.len() {
        let seg: Vec<f64> = (0..n_fft).map(|i| x[start + i] as f64 * win[i]).collect();
        let power: Vec<f64> = (0..bins)
            .map(|k| {
                let (mut re, mut im) = (0.0, 0.0);
                for (i, s) in seg.iter().enumerate() {
                    let idx = (k * i) % n_fft;
                    re += s * cos[idx];
                    im -= s * sin[idx];
                }
                (re * re + im * im).sqrt()
            })
            .collect();
        for m in 0..n_mels {
            let (lo, c, hi) = (pts[m], pts[m + 1], pts[m + 2]);
            let mut e = 0.0;
            for (k, p) in power.iter().enumerate() {
                let f = k as f64 * sr / n_fft as f64;
                let w = if f > lo && f <= c {
                    (f - lo) / (c - lo)
                } else if f > c && f < hi {
                    (hi - f) / (hi - c)
                } else {
                    0.0
                };
                e += w * p;
            }
            out.push((e.max(1e-5)).ln());
        }
        start += hop;
    }
    out
}

#[test]
fn onnx_weights_load_under_official_names_bit_for_bit() {
    let m = model();
    let g = Golden::load("weights_sample");
    let dir = models_dir().join("kokoro");
    let tensors = match tts_models::kokoro::weights::load_onnx(
        &dir.join("kokoro-v1.0.int8.onnx"),
        m.net().config(),
        &Device::Cpu,
    ) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        tensors.len() as u32,
        g.u32s("count")[0],
        "457 inference tensors (546 of 548 official)"
    );
    let names: Vec<String> =
        g.0.keys()
            .filter_map(|k| k.strip_suffix(".head"))
            .map(str::to_string)
            .collect();
    assert!(names.len() >= 10);
    for name in names {
        let t = tensors
            .get(&name)
            .unwrap_or_else(|| panic!("{name} not extracted"));
        let shape: Vec<usize> = g
            .u32s(&format!("{name}.shape"))
            .into_iter()
            .map(|d| d as usize)
            .collect();
        assert_eq!(t.dims(), shape.as_slice(), "{name} shape");
        let v = vec_of(t);
        assert_eq!(
            &v[..64.min(v.len())],
            g.f32s(&format!("{name}.head")).as_slice(),
            "{name} values"
        );
        let sum: f64 = v.iter().map(|&x| x as f64).sum();
        let want: Vec<f64> = g.t(&format!("{name}.sum")).to_vec1().expect("sum");
        assert!(
            (sum - want[0]).abs() <= 1e-4 * want[0].abs().max(1.0),
            "{name} sum {sum} vs {}",
            want[0]
        );
    }
}

#[test]
fn ids_and_style_rows_equal_the_reference_exactly() {
    let m = model();
    for (case, voice, phonemes) in CASES {
        let g = Golden::load(case);
        let ids = m.phoneme_ids(phonemes);
        let mut padded = vec![0u32];
        padded.extend(&ids);
        padded.push(0);
        assert_eq!(padded, g.u32s("ids"), "{case} ids");
        let style = m.voice_store().style(voice, ids.len()).expect("style");
        assert_eq!(vec_of(&style), g.f32s("style"), "{case} style row");
    }
}

#[test]
fn predicted_durations_match_for_95_percent_of_tokens() {
    let m = model();
    let (mut equal, mut total) = (0usize, 0usize);
    for (case, voice, phonemes) in CASES {
        let g = Golden::load(case);
        let ids = m.phoneme_ids(phonemes);
        let style = m.voice_store().style(voice, ids.len()).expect("style");
        let net = m.net();
        let (_, tokens) = net.padded_ids(&ids).expect("ids");
        let d_en = net.encode_bert(&tokens).expect("bert");
        let d_en_err = rel_l2(&vec_of(&d_en), &g.f32s("d_en"));
        let s_pred = style.narrow(1, 128, 128).expect("style half");
        let d = net
            .predictor
            .encode(&d_en, &s_pred)
            .expect("duration encoder");
        let raw = net.predictor.raw_durations(&d, 1.0).expect("durations");
        let ours = tts_models::kokoro::prosody::round_durations(&raw);
        let want = g.u32s("durations");
        let same = ours.iter().zip(&want).filter(|(a, b)| a == b).count();
        let raw_err = rel_l2(&raw, &g.f32s("raw_dur"));
        eprintln!(
            "{case}: d_en rel_l2 {d_en_err:.4}, raw durations rel_l2 {raw_err:.4}, equal {same}/{}",
            want.len()
        );
        // Measured: d_en 0.10-0.12 (ALBERT's 12 int8 passes), raw durations 0.01-0.03.
        assert!(
            d_en_err < 0.25,
            "{case}: bert_encoder output differs by {d_en_err}"
        );
        equal += same;
        total += want.len();
    }
    assert!(
        equal * 100 >= total * 95,
        "durations equal for only {equal}/{total} tokens"
    );
}

#[test]
fn f0_and_energy_match_given_the_reference_durations() {
    let m = model();
    for (case, voice, phonemes) in CASES {
        let g = Golden::load(case);
        let ids = m.phoneme_ids(phonemes);
        let style = m.voice_store().style(voice, ids.len()).expect("style");
        let trace = m
            .net()
            .forward(
                &ids,
                &style,
                1.0,
                Some(&g.u32s("durations")),
                &SourceOptions::onnx_export(),
            )
            .expect("forward");
        let f0_err = rel_l2(&vec_of(&trace.f0), &g.f32s("f0"));
        let n_err = rel_l2(&vec_of(&trace.n), &g.f32s("n"));
        let asr_err = rel_l2(&vec_of(&trace.asr), &g.f32s("asr"));
        let mel = log_mel_distance(&trace.audio, &g.f32s("audio"));
        eprintln!(
            "{case}: F0 {f0_err:.4}, N {n_err:.4}, asr {asr_err:.4}, audio log-mel L1 {mel:.3}"
        );
        // Measured: F0 0.004-0.027, N 0.006-0.014, asr 0.005, log-mel 0.36-0.40.
        assert!(
            asr_err < 0.05,
            "{case}: decoder input (asr) differs by {asr_err}"
        );
        assert!(f0_err < 0.10, "{case}: F0 differs by {f0_err}");
        assert!(n_err < 0.20, "{case}: energy differs by {n_err}");
        assert!(mel < 1.0, "{case}: audio log-mel distance {mel}");
    }
}

#[test]
fn decoder_and_generator_match_given_the_reference_inputs() {
    let m = model();
    let g = Golden::load("en_short");
    let ids = m.phoneme_ids(CASES[0].2);
    let style = m.voice_store().style(CASES[0].1, ids.len()).expect("style");
    let s_dec = style.narrow(1, 0, 128).expect("style half");
    let dec = &m.net().decoder;
    let f0 = g.t("f0").unsqueeze(0).expect("f0");
    let n = g.t("n").unsqueeze(0).expect("n");
    let asr = g.t("asr").unsqueeze(0).expect("asr");
    let feats = dec.features(&asr, &f0, &n, &s_dec).expect("decoder");
    let feat_err = rel_l2(&vec_of(&feats), &g.f32s("gen_in"));
    let opts = SourceOptions::onnx_export();
    let post = dec
        .generator()
        .pre_istft(&g.t("gen_in").unsqueeze(0).expect("x"), &s_dec, &f0, &opts)
        .expect("generator");
    let post_err = rel_l2(&vec_of(&post), &g.f32s("conv_post"));
    // The inverse STFT alone has no quantisation: from the reference spectrum it must
    // reproduce the reference audio to float rounding.
    let golden_post = g.t("conv_post").unsqueeze(0).expect("post");
    let audio = dec
        .generator()
        .istft(&golden_post, IstftMode::OnnxExport)
        .expect("istft");
    let istft_err = rel_l2(&audio, &g.f32s("audio"));
    eprintln!("decoder features {feat_err:.4}, conv_post {post_err:.4}, iSTFT {istft_err:.2e}");
    // Measured: features 0.047, conv_post 0.060, iSTFT 3e-7.
    assert!(
        istft_err < 1e-4,
        "export iSTFT emulation differs by {istft_err}"
    );
    assert!(feat_err < 0.08, "decoder features differ by {feat_err}");
    assert!(post_err < 0.15, "conv_post differs by {post_err}");
}

#[test]
fn bad_input_gives_clear_errors() {
    let m = model();
    let empty = m.synthesize(&SynthesisRequest::new("   ", "jf_alpha"));
    assert!(
        matches!(empty, Err(ModelError::InvalidInput { field: "text", .. })),
        "{empty:?}"
    );
    let long = m.synthesize(&SynthesisRequest::new("a".repeat(10_000), "jf_alpha"));
    assert!(
        matches!(long, Err(ModelError::InvalidInput { field: "text", .. })),
        "{long:?}"
    );
    let unknown = m.synthesize(&SynthesisRequest::new("hello", "zz_nobody"));
    assert!(
        matches!(unknown, Err(ModelError::UnknownVoice(_))),
        "{unknown:?}"
    );
    let mut req = SynthesisRequest::new("hello", "jf_alpha");
    req.speed = 0.0;
    assert!(matches!(
        m.synthesize(&req),
        Err(ModelError::InvalidInput { field: "speed", .. })
    ));
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

fn synth(text: &str, voice: &str, speed: f32) -> tts_audio::Pcm {
    let mut req = SynthesisRequest::new(text, voice);
    req.speed = speed;
    match model().synthesize(&req) {
        Ok(p) => p,
        Err(e) => panic!("{voice} {text:?}: {e}"),
    }
}

/// Writes an example WAV next to the test binaries (and to `$KOKORO_WAV_DIR` when set).
fn save_wav(name: &str, pcm: &tts_audio::Pcm) {
    let bytes = tts_audio::encode(pcm, tts_audio::AudioFormat::Wav, None).expect("wav");
    let mut dirs = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR"))];
    if let Some(d) = std::env::var_os("KOKORO_WAV_DIR") {
        dirs.push(PathBuf::from(d));
    }
    for d in dirs {
        let path = d.join(name);
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("wrote {}", path.display());
    }
}

const EN_TEXT: &str = "The quick brown fox jumps over the lazy dog.";
const JA_TEXT: &str = "こんにちは、きょうは いい てんき ですね。";

#[test]
fn every_voice_speaks_english_and_japanese_audibly_with_plausible_length() {
    let m = model();
    let voices = m.voices();
    assert_eq!(voices.len(), 5, "voices_ja.npz ships five voices");
    for v in voices {
        for (lang, text) in [("en", EN_TEXT), ("ja", JA_TEXT)] {
            let pcm = synth(text, &v.id, 1.0);
            assert_eq!(pcm.sample_rate, 24_000);
            let secs = pcm.duration_secs();
            let level = rms(&pcm.samples);
            eprintln!("{} {lang}: {secs:.2}s rms {level:.3}", v.id);
            // ~10 words / ~20 morae: natural speech takes roughly 1.5-5 s.
            assert!((1.2..6.0).contains(&secs), "{} {lang}: {secs:.2}s", v.id);
            assert!(level > 0.01, "{} {lang}: near-silent (rms {level})", v.id);
            assert!(pcm.samples.iter().all(|s| s.is_finite()));
            if v.id == "jf_alpha" {
                save_wav(&format!("kokoro_{}_{lang}.wav", v.id), &pcm);
            }
        }
    }
}

#[test]
fn full_pipeline_audio_is_close_to_the_reference_and_far_from_another_voice() {
    // Intelligibility proxy: our audio from the same phonemes (own durations) against the
    // reference waveform, with another voice as the negative control.
    let m = export_model();
    for (case, voice, phonemes) in CASES {
        let g = Golden::load(case);
        let want = g.f32s("audio");
        let ours = m
            .synthesize_phonemes(phonemes, voice, 1.0, 0)
            .expect("synth")
            .audio;
        let other_voice = if voice == "jm_kumo" {
            "jf_alpha"
        } else {
            "jm_kumo"
        };
        let other = m
            .synthesize_phonemes(phonemes, other_voice, 1.0, 0)
            .expect("synth")
            .audio;
        let d_ours = log_mel_distance(&ours, &want);
        let d_other = log_mel_distance(&other, &want);
        let len_ratio = ours.len() as f64 / want.len() as f64;
        eprintln!("{case}: log-mel L1 ours {d_ours:.3}, other voice {d_other:.3}, length ratio {len_ratio:.3}");
        assert!(
            (0.95..1.05).contains(&len_ratio),
            "{case}: length ratio {len_ratio}"
        );
        // Measured 0.47-0.70 (one or two durations differ by a frame, which shifts what follows);
        // another voice on the same phonemes measures 1.8-2.8.
        assert!(d_ours < 0.9, "{case}: log-mel distance {d_ours}");
        assert!(
            d_ours < 0.5 * d_other,
            "{case}: ours {d_ours} not clearly closer than another voice {d_other}"
        );
    }
}

#[test]
fn blends_mix_the_packs_and_speak() {
    let m = model();
    let store = m.voice_store();
    let blend = store.style("jf_alpha(2)+jm_kumo(1)", 20).expect("blend");
    let a = vec_of(&store.style("jf_alpha", 20).expect("a"));
    let k = vec_of(&store.style("jm_kumo", 20).expect("k"));
    let b = vec_of(&blend);
    for i in 0..b.len() {
        let want = (2.0 * a[i] + k[i]) / 3.0;
        assert!(
            (b[i] - want).abs() < 1e-6,
            "row value {i}: {} vs {want}",
            b[i]
        );
    }
    let pcm = synth(EN_TEXT, "jf_alpha(2)+jm_kumo(1)", 1.0);
    assert!(rms(&pcm.samples) > 0.01);
    let alpha = synth(EN_TEXT, "jf_alpha", 1.0);
    assert_ne!(
        pcm.samples, alpha.samples,
        "a blend sounds different from its main voice"
    );
}

#[test]
fn speed_changes_duration_monotonically() {
    let slow = synth(EN_TEXT, "jf_alpha", 0.5).duration_secs();
    let normal = synth(EN_TEXT, "jf_alpha", 1.0).duration_secs();
    let fast = synth(EN_TEXT, "jf_alpha", 2.0).duration_secs();
    eprintln!("speed 0.5: {slow:.2}s, 1: {normal:.2}s, 2: {fast:.2}s");
    assert!(
        slow > normal * 1.5 && normal > fast * 1.5,
        "{slow} {normal} {fast}"
    );
}

#[test]
fn long_text_is_split_into_chunks_and_fully_spoken() {
    let text = "This sentence is repeated several times to build a paragraph that is longer than one forward pass. ".repeat(6);
    let chunks = tts_text::kokoro::phonemize(&text, 510).expect("g2p");
    assert!(chunks.len() >= 2, "{} chunks", chunks.len());
    let pcm = synth(&text, "jf_alpha", 1.0);
    let one = synth("This sentence is repeated several times to build a paragraph that is longer than one forward pass.", "jf_alpha", 1.0);
    let ratio = pcm.duration_secs() / one.duration_secs();
    eprintln!(
        "{} chunks, {:.1}s vs {:.1}s for one sentence",
        chunks.len(),
        pcm.duration_secs(),
        one.duration_secs()
    );
    assert!(
        (4.5..7.5).contains(&ratio),
        "6 sentences last {ratio:.1}x one sentence"
    );
}

#[test]
fn synthesis_is_deterministic_for_a_seed() {
    let mut req = SynthesisRequest::new("Same seed, same audio.", "jm_kumo");
    req.seed = Some(7);
    let a = model().synthesize(&req).expect("a");
    let b = model().synthesize(&req).expect("b");
    assert_eq!(a.samples, b.samples);
    req.seed = Some(8);
    let c = model().synthesize(&req).expect("c");
    assert_ne!(a.samples, c.samples, "the source noise depends on the seed");
}
