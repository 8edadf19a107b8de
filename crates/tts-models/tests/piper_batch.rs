//! Batched Piper inference (the model server's dynamic batching) against the unbatched path, on
//! the real `en_US-joe-medium` voice: every item of a padded batch must sound exactly like the same
//! utterance synthesized alone, with noise on, different seeds and speeds, and lengths from a
//! couple of phonemes to a sentence long enough for the chunked decoder.

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::Device;
use tts_models::vits::{InferenceParams, PiperModel, Utterance};
use tts_models::{ModelError, SpeechModel, SynthesisRequest};

/// Largest relative L2 distance allowed between an item's batched and unbatched audio. Measured:
/// 0 (bit-identical) for most items, under 3e-7 for the others (GEMM summation order).
const TOLERANCE: f32 = 1e-6;

const LONG: &str = "Piper voices are small and fast, so a single modest processor can read long \
    passages aloud, such as this sentence, which keeps going with several clauses, commas, and \
    careful pauses, before it finally reaches its period.";

fn model() -> &'static PiperModel {
    static MODEL: OnceLock<PiperModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = std::env::var_os("TTS_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
        let onnx = dir.join("piper/en_US-joe-medium.onnx");
        assert!(
            onnx.exists(),
            "{} is missing: run scripts/fetch_models.py",
            onnx.display()
        );
        PiperModel::load(&onnx, &onnx.with_extension("onnx.json"), &Device::Cpu)
            .expect("joe voice loads")
    })
}

fn ids(text: &str) -> Vec<i64> {
    model().phoneme_ids(text).expect("phonemize").concat()
}

fn params(seed: u64, length_scale: f32) -> InferenceParams {
    InferenceParams {
        noise_scale: 0.667,
        length_scale,
        noise_w: 0.8,
        speaker_id: 0,
        seed,
    }
}

fn rel_l2(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len(), "lengths differ");
    let diff: f64 = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let norm: f64 = reference.iter().map(|&b| (b as f64).powi(2)).sum();
    (diff / norm).sqrt() as f32
}

#[test]
fn each_batched_utterance_equals_its_unbatched_audio() {
    let vits = model().vits();
    let texts = [
        "Oh!",
        "Hello world.",
        LONG,
        "Is this voice running natively in Rust?",
    ];
    let mut all_ids: Vec<Vec<i64>> = texts.iter().map(|t| ids(t)).collect();
    // Two phonemes between the start and end markers: the shortest real utterance.
    all_ids.push(all_ids[0][..5].to_vec());
    let settings = [
        params(7, 1.0),
        params(1, 0.8),
        params(42, 1.0),
        params(3, 1.3),
        params(9, 1.0),
    ];
    let batch: Vec<Utterance> = all_ids
        .iter()
        .zip(&settings)
        .map(|(ids, params)| Utterance { ids, params })
        .collect();
    let batched = vits.infer_batch(&batch);
    assert_eq!(batched.len(), batch.len());
    for (i, (utterance, audio)) in batch.iter().zip(batched).enumerate() {
        let audio = audio.unwrap_or_else(|e| panic!("item {i} failed: {e}"));
        let alone = vits
            .infer(utterance.ids, utterance.params)
            .expect("unbatched")
            .audio;
        let err = rel_l2(&audio, &alone);
        assert!(err <= TOLERANCE, "item {i}: rel L2 {err:e}");
    }
    // The long sentence exercises the chunked decoder (more than one chunk with its context).
    let long_frames = vits
        .infer(&all_ids[2], &settings[2])
        .unwrap()
        .z
        .dim(2)
        .unwrap();
    assert!(
        long_frames > 160,
        "long sentence has only {long_frames} frames"
    );
}

#[test]
fn an_invalid_utterance_fails_alone() {
    let vits = model().vits();
    let good = ids("Hello world.");
    let other = ids("Is this voice running natively in Rust?");
    let out_of_vocab = vec![1, 0, 100_000, 0, 2];
    let p = params(5, 1.0);
    let bad_speed = InferenceParams {
        length_scale: f32::NAN,
        ..p
    };
    let batch = [
        Utterance {
            ids: &good,
            params: &p,
        },
        Utterance {
            ids: &out_of_vocab,
            params: &p,
        },
        Utterance {
            ids: &[],
            params: &p,
        },
        Utterance {
            ids: &other,
            params: &bad_speed,
        },
        Utterance {
            ids: &other,
            params: &p,
        },
    ];
    let results = vits.infer_batch(&batch);
    for i in [1, 2, 3] {
        assert!(
            matches!(results[i], Err(ModelError::InvalidInput { .. })),
            "item {i} should fail: {:?}",
            results[i].as_ref().map(Vec::len)
        );
    }
    for i in [0, 4] {
        let audio = results[i].as_ref().expect("valid item succeeds");
        let alone = vits.infer(batch[i].ids, batch[i].params).unwrap().audio;
        assert!(rel_l2(audio, &alone) <= TOLERANCE);
    }
}

#[test]
fn synthesize_batch_equals_synthesize_for_each_request() {
    let model = model();
    assert!(model.batches());
    let voice = model.voice_id().to_string();
    let request = |text: &str, speed: f32, seed: Option<u64>| SynthesisRequest {
        text: text.into(),
        voice: voice.clone(),
        speed,
        seed,
    };
    let mut unknown_voice = request("A voice nobody has.", 1.0, None);
    unknown_voice.voice = "no-such-voice".into();
    let requests = [
        request("Good morning.", 1.0, None),
        // Two sentences: two utterances of the batch, joined with Piper's silence.
        request("The bus leaves at six. It is a short ride.", 1.25, Some(11)),
        request("Fails alone.", 0.0, None),
        unknown_voice,
        request("Then it rests; happily!", 0.9, Some(2)),
    ];
    let results = model.synthesize_batch(&requests);
    assert_eq!(results.len(), requests.len());
    assert!(matches!(
        results[2],
        Err(ModelError::InvalidInput { field: "speed", .. })
    ));
    assert!(matches!(results[3], Err(ModelError::UnknownVoice(_))));
    for i in [0, 1, 4] {
        let batched = results[i].as_ref().expect("valid request succeeds");
        let alone = model.synthesize(&requests[i]).expect("alone");
        assert_eq!(batched.sample_rate, alone.sample_rate);
        let err = rel_l2(&batched.samples, &alone.samples);
        assert!(err <= TOLERANCE, "request {i}: rel L2 {err:e}");
    }
}
