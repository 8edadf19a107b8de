//! End-to-end Piper synthesis to a WAV file: the speech survives 16-bit WAV writing and reading
//! with its length intact. The file is left in cargo's test tmp dir for listening.

use std::path::PathBuf;

use candle_core::Device;
use tts_models::vits::PiperModel;
use tts_models::{SpeechModel, SynthesisRequest};

#[test]
fn joe_speaks_a_sentence_into_a_wav_file() {
    let dir = std::env::var_os("TTS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let onnx = dir.join("piper/en_US-joe-medium.onnx");
    assert!(
        onnx.exists(),
        "{} missing: run scripts/fetch_models.py",
        onnx.display()
    );
    let model = PiperModel::load(&onnx, &onnx.with_extension("onnx.json"), &Device::Cpu).unwrap();
    let text = "Hello! This is the Joe voice, running natively in Rust with candle.";
    let pcm = model
        .synthesize(&SynthesisRequest::new(text, "en_US-joe-medium"))
        .unwrap();
    assert!(
        pcm.duration_secs() > 2.0 && pcm.duration_secs() < 8.0,
        "{}",
        pcm.duration_secs()
    );

    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("piper_joe_example.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: pcm.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for &s in &pcm.samples {
        writer.write_sample((s * 32767.0).round() as i16).unwrap();
    }
    writer.finalize().unwrap();

    let reader = hound::WavReader::open(&path).unwrap();
    assert_eq!(reader.spec().sample_rate, 22050);
    assert_eq!(reader.len() as usize, pcm.samples.len());
    println!("wrote {} ({:.2} s)", path.display(), pcm.duration_secs());
}
