//! Parity of the candle GE2E encoder with the reference (Resemblyzer 0.1.4 on torch, librosa 0.11,
//! py-webrtcvad), on golden tensors written by `tools/ge2e_goldens.py` for three real clips
//! (Piper joe, espeak-ng `en-us+f3`, Kokoro `jf_alpha`), all 16 kHz so no resampler is involved.
//!
//! Tolerances per stage:
//! - preprocessing: the same 30 ms windows kept by the VAD (exact), RMS within 1e-5 relative;
//! - mel: |ours − ref| ≤ 1e-3·|ref| + 1e-5·max(ref) per value (f32 FFT vs numpy's pocketfft);
//! - partial embeddings: max |Δ| ≤ 2e-4 per component (values ≈ 0.06; f32 LSTM over 160 steps);
//! - utterance embedding: max |Δ| ≤ 2e-4 and cosine ≥ 0.9999.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use tts_speaker::{audio, cosine, SpeakerEncoder};

fn models_dir() -> PathBuf {
    std::env::var_os("TTS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn encoder() -> SpeakerEncoder {
    let path = models_dir().join("speaker/resemblyzer-ge2e.pt");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch_models.py",
        path.display()
    );
    match SpeakerEncoder::load(&path, &Device::Cpu) {
        Ok(e) => e,
        Err(e) => panic!("loading {}: {e}", path.display()),
    }
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ge2e")
}

fn npy(path: &Path) -> anyhow::Result<Vec<f32>> {
    Ok(Tensor::read_npy(path)?.flatten_all()?.to_vec1()?)
}

fn check_clip(enc: &SpeakerEncoder, name: &str, meta: &serde_json::Value) -> anyhow::Result<()> {
    let dir = data_dir();
    let bytes = std::fs::read(dir.join(format!("{name}.wav")))?;
    let pcm = tts_audio::decode(&bytes, Some("wav"))?;
    assert_eq!(pcm.sample_rate, 16_000);
    let clip = &meta["clips"][name];
    assert_eq!(
        pcm.samples.len() as u64,
        clip["input_samples"].as_u64().unwrap_or(0)
    );

    // Preprocessing: the kept VAD windows, in order, of the volume-normalised input.
    let trace = enc.embed_traced(&pcm)?;
    let normalised = audio::normalize_volume(&pcm.samples);
    let kept: Vec<usize> = clip["kept_windows"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as usize)
                .collect()
        })
        .unwrap_or_default();
    let expected: Vec<f32> = kept
        .iter()
        .flat_map(|&i| normalised[i * 480..(i + 1) * 480].iter().copied())
        .collect();
    assert_eq!(
        trace.wav.len(),
        expected.len(),
        "{name}: preprocessed length"
    );
    assert_eq!(
        trace.wav, expected,
        "{name}: kept windows differ from the reference VAD"
    );
    let rms = (trace.wav.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>()
        / trace.wav.len() as f64)
        .sqrt();
    let ref_rms = clip["preprocessed_rms"].as_f64().unwrap_or(f64::NAN);
    assert!(
        ((rms - ref_rms) / ref_rms).abs() < 1e-5,
        "{name}: rms {rms} vs {ref_rms}"
    );

    // Mel spectrogram.
    let mel_ref = npy(&dir.join(format!("{name}_mel.npy")))?;
    assert_eq!(trace.mel.len(), mel_ref.len(), "{name}: mel frames");
    let peak = mel_ref.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = trace
        .mel
        .iter()
        .zip(&mel_ref)
        .map(|(a, b)| (a - b).abs() / (1e-3 * b.abs() + 1e-5 * peak))
        .fold(0f32, f32::max);
    assert!(worst <= 1.0, "{name}: mel error {worst} × tolerance");
    eprintln!("{name}: mel worst error {worst:.3} × tolerance");

    // Partial embeddings.
    let partials_ref = npy(&dir.join(format!("{name}_partials.npy")))?;
    let partials: Vec<f32> = trace.partials.concat();
    assert_eq!(partials.len(), partials_ref.len(), "{name}: partial count");
    let max_diff = partials
        .iter()
        .zip(&partials_ref)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max_diff <= 2e-4,
        "{name}: partial embeddings differ by {max_diff}"
    );

    // Utterance embedding.
    let embed_ref = npy(&dir.join(format!("{name}_embed.npy")))?;
    let max_diff = trace
        .embedding
        .iter()
        .zip(&embed_ref)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let cos = cosine(&trace.embedding, &embed_ref);
    eprintln!("{name}: embedding max |Δ| {max_diff:.2e}, cosine {cos:.6}");
    assert!(
        max_diff <= 2e-4 && cos >= 0.9999,
        "{name}: embedding Δ {max_diff}, cosine {cos}"
    );
    Ok(())
}

#[test]
fn encoder_matches_resemblyzer_goldens_at_every_stage() -> anyhow::Result<()> {
    let enc = encoder();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data_dir().join("goldens.json"))?)?;
    let names: Vec<String> = meta["clips"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(names.len(), 3, "goldens.json lists the clips");
    for name in &names {
        check_clip(&enc, name, &meta)?;
    }
    Ok(())
}
