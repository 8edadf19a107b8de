//! Shared loading for the integration tests (real weights under `models/`).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::Device;
use tts_audio::Pcm;
use tts_models::kokoro::KokoroModel;
use tts_models::vits::PiperModel;
use tts_speaker::SpeakerEncoder;

pub fn models_dir() -> PathBuf {
    std::env::var_os("TTS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn need(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch_models.py",
        path.display()
    );
    path
}

pub fn encoder() -> &'static SpeakerEncoder {
    static ENC: OnceLock<SpeakerEncoder> = OnceLock::new();
    ENC.get_or_init(|| {
        let path = need(models_dir().join("speaker/resemblyzer-ge2e.pt"));
        SpeakerEncoder::load(&path, &Device::Cpu)
            .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
    })
}

pub fn kokoro() -> &'static KokoroModel {
    static MODEL: OnceLock<KokoroModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = models_dir().join("kokoro");
        need(dir.join("kokoro-v1.0.int8.onnx"));
        KokoroModel::load(&dir, &Device::Cpu)
            .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
    })
}

pub fn piper() -> &'static PiperModel {
    static MODEL: OnceLock<PiperModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let onnx = need(models_dir().join("piper/en_US-joe-medium.onnx"));
        let json = need(models_dir().join("piper/en_US-joe-medium.onnx.json"));
        PiperModel::load(&onnx, &json, &Device::Cpu)
            .unwrap_or_else(|e| panic!("loading {}: {e}", onnx.display()))
    })
}

/// A clip of `tests/data/ge2e/` (16 kHz WAV).
pub fn clip(name: &str) -> Pcm {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/ge2e/{name}.wav"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    tts_audio::decode(&bytes, Some("wav")).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
