//! Piper (VITS) on CPU: the whole pipeline and each stage, on three sentence lengths; and eight
//! sentences one after another vs in padded batches (`piper-batch`, the model server's dynamic
//! batching).
//! `tools/piper_reference_bench.py` times onnxruntime on the same sentences and scales.
//! Run with `RAYON_NUM_THREADS=2 cargo bench -p tts-models --bench piper` to match its 2 threads.

use std::path::PathBuf;
use std::time::Duration;

use candle_core::Device;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::{rngs::StdRng, SeedableRng};
use tts_models::vits::{InferenceParams, PiperModel, Utterance};
use tts_text::Espeak;

/// Keep in sync with `tools/piper_reference_bench.py`.
const SENTENCES: [(&str, &str); 3] = [
    ("short", "Hello world."),
    ("medium", "The quick brown fox jumps over the lazy dog, then it rests; happily!"),
    (
        "long",
        "Piper voices are small and fast, so a single modest processor can read long passages aloud, \
         such as this sentence, which keeps going with several clauses, commas, and careful pauses, \
         before it finally reaches its period.",
    ),
];

/// Prior noise on, duration noise off, so both runtimes produce the same number of frames.
fn params() -> InferenceParams {
    InferenceParams {
        noise_scale: 0.667,
        length_scale: 1.0,
        noise_w: 0.0,
        speaker_id: 0,
        seed: 1,
    }
}

fn load() -> PiperModel {
    let dir = std::env::var_os("TTS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let onnx = dir.join("piper/en_US-joe-medium.onnx");
    assert!(
        onnx.exists(),
        "{} missing: run scripts/fetch_models.py",
        onnx.display()
    );
    PiperModel::load(&onnx, &onnx.with_extension("onnx.json"), &Device::Cpu).expect("voice loads")
}

fn bench(c: &mut Criterion) {
    let model = load();
    let vits = model.vits();
    let p = params();
    let mut group = c.benchmark_group("piper");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.warm_up_time(Duration::from_secs(1));
    for (name, text) in SENTENCES {
        let ids = model.phoneme_ids(text).expect("ids").concat();
        let enc = vits.encode(&ids).expect("encode");
        let noise =
            candle_core::Tensor::zeros((1, 2, ids.len()), candle_core::DType::F32, &Device::Cpu)
                .unwrap();
        let durations = vits
            .dp
            .durations(&enc.x, None, &noise, 1.0)
            .expect("durations");
        let mut rng = StdRng::seed_from_u64(1);
        let z_p = vits
            .expand_prior(&enc, &durations, p.noise_scale, &mut rng)
            .expect("prior");
        let z = vits.flow.reverse(&z_p, None).expect("flow");
        eprintln!("{name}: {} ids, {} frames", ids.len(), z.dim(2).unwrap());

        group.bench_with_input(BenchmarkId::new("pipeline", name), &text, |b, t| {
            b.iter(|| model.synthesize_text(t, &p).expect("synthesize"))
        });
        group.bench_with_input(BenchmarkId::new("phonemize", name), &text, |b, t| {
            b.iter(|| Espeak::global().unwrap().phonemize(t, "en-us").unwrap())
        });
        group.bench_with_input(BenchmarkId::new("encoder", name), &ids, |b, ids| {
            b.iter(|| vits.encode(ids).expect("encode"))
        });
        group.bench_with_input(BenchmarkId::new("durations", name), &enc, |b, enc| {
            b.iter(|| {
                vits.dp
                    .durations(&enc.x, None, &noise, 1.0)
                    .expect("durations")
            })
        });
        group.bench_with_input(BenchmarkId::new("flow", name), &z_p, |b, z_p| {
            b.iter(|| vits.flow.reverse(z_p, None).expect("flow"))
        });
        group.bench_with_input(BenchmarkId::new("decoder", name), &z, |b, z| {
            b.iter(|| vits.decode(z, None).expect("decode"))
        });
    }
    group.finish();
}

/// Eight sentences of similar length, as concurrent requests give the batcher.
const BATCH: [&str; 8] = [
    "The quick brown fox jumps over the lazy dog.",
    "It was a bright cold day in April.",
    "The clocks were striking thirteen.",
    "The bus leaves at six every morning.",
    "It is a short ride to the station.",
    "Then it rests, happily, in the sun!",
    "Is this voice running natively in Rust?",
    "Piper voices are small and fast.",
];

fn bench_batch(c: &mut Criterion) {
    let model = load();
    let vits = model.vits();
    let p = params();
    let ids: Vec<Vec<i64>> = BATCH
        .iter()
        .map(|t| model.phoneme_ids(t).expect("ids").concat())
        .collect();
    let batch: Vec<Utterance> = ids
        .iter()
        .map(|ids| Utterance { ids, params: &p })
        .collect();
    let mut group = c.benchmark_group("piper-batch");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.warm_up_time(Duration::from_secs(2));
    group.bench_function("8 sentences one by one", |b| {
        b.iter(|| {
            for u in &batch {
                vits.infer(u.ids, u.params).expect("infer");
            }
        })
    });
    group.bench_function("8 sentences batched", |b| {
        b.iter(|| vits.infer_grouped(&batch))
    });
    group.finish();
}

criterion_group!(benches, bench, bench_batch);
criterion_main!(benches);
