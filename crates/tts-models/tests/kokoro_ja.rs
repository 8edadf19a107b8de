//! End to end: Japanese with kanji through Kokoro with `jf_alpha`. Needs the Kokoro weights and
//! the Japanese dictionary (`scripts/fetch_models.py`, which fetches both).

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::Device;
use tts_models::kokoro::KokoroModel;
use tts_models::{SpeechModel, SynthesisRequest};

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
        let ja = models_dir().join("ja");
        assert!(
            ja.join("ja_words.txt").exists(),
            "{} is missing the Japanese dictionary: run scripts/fetch_models.py --only ja",
            ja.display()
        );
        tts_text::japanese::set_dictionary_dir(ja);
        KokoroModel::load(&dir, &Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
    })
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

fn synth(text: &str) -> tts_audio::Pcm {
    model()
        .synthesize(&SynthesisRequest::new(text, "jf_alpha"))
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

const KANJI: &str = "今日はいい天気ですね。東京へ行きます。";

#[test]
fn kanji_sentence_speaks_audibly_with_plausible_duration() {
    let pcm = synth(KANJI);
    let secs = pcm.duration_secs();
    let level = rms(&pcm.samples);
    eprintln!("{KANJI}: {secs:.2} s, rms {level:.3}");
    // 26 morae: natural speech is ~6-9 morae per second plus the pause at the full stop.
    assert!((2.0..7.0).contains(&secs), "{secs:.2} s");
    assert!(level > 0.01, "near-silent (rms {level})");
    assert!(pcm.samples.iter().all(|s| s.is_finite()));
    let bytes = tts_audio::encode(&pcm, tts_audio::AudioFormat::Wav, None).expect("wav");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kokoro_jf_alpha_kanji.wav");
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    eprintln!("wrote {}", path.display());
}

#[test]
fn kanji_text_is_spoken_from_the_dictionary_reading() {
    // The text path must give exactly the audio of the reading misaki would give (same seed).
    let from_text = synth(KANJI);
    let reading = "kʲoː βa iː teŋkʲi desɨ ne. toːkʲoː e ikʲimasɨ.";
    let from_phonemes = model()
        .synthesize_phonemes(reading, "jf_alpha", 1.0, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_text.samples.len(), from_phonemes.audio.len());
    assert!(
        from_text.samples == from_phonemes.audio,
        "text and reading gave different audio"
    );
}

#[test]
fn numbers_and_latin_inside_japanese_are_spoken() {
    let text = "2026年にPythonで3つのプログラムを書きました。";
    let pcm = synth(text);
    let secs = pcm.duration_secs();
    let level = rms(&pcm.samples);
    eprintln!("{text}: {secs:.2} s, rms {level:.3}");
    assert!((2.5..9.0).contains(&secs), "{secs:.2} s");
    assert!(level > 0.01, "near-silent (rms {level})");
}
