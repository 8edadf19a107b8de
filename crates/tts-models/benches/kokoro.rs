//! Kokoro CPU benchmarks: each stage (ALBERT, predictor, decoder, generator) and end to end on
//! three lengths, on the inputs that `tools/kokoro_reference_bench.py` times onnxruntime with.
//!
//! `cargo bench -p tts-models --bench kokoro`; set `RAYON_NUM_THREADS=2` to match the
//! reference's 2 threads.

use std::path::PathBuf;
use std::time::Duration;

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion};
use tts_models::kokoro::{KokoroModel, SourceOptions};

/// (name, voice, phonemes): the same inputs as tools/kokoro_reference_bench.py.
const INPUTS: [(&str, &str, &str); 3] = [
    ("short", "jf_alpha", "hˈɛlO, wˈɜɹld!"),
    ("medium", "jm_kumo", "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɑɡ."),
    (
        "long",
        "jf_alpha",
        "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɑɡ. wˌI dˈʌz ðə sˈʌn ʃˈIn? bɪkˈʌz ɪt ɪz hˈɑt, ænd ɪt ɪz vˈɛɹi fˈɑɹ əwˈA fɹʌm ˈʌs. ʃˈi sˈɛlz sˈiʃˌɛlz bˈI ðə sˈiʃˌɔɹ.",
    ),
];

fn model() -> KokoroModel {
    let dir = std::env::var_os("TTS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
        .join("kokoro");
    match KokoroModel::load(&dir, &Device::Cpu) {
        Ok(m) => m.with_source_options(SourceOptions::onnx_export()),
        Err(e) => panic!("{}: {e} (run scripts/fetch_models.py)", dir.display()),
    }
}

fn stages(c: &mut Criterion) {
    let m = model();
    let net = m.net();
    let (_, voice, phonemes) = INPUTS[1];
    let ids = m.phoneme_ids(phonemes);
    let style = m.voice_store().style(voice, ids.len()).expect("style");
    let s_dec = style.narrow(1, 0, 128).expect("style");
    let s_pred = style.narrow(1, 128, 128).expect("style");
    let (_, tokens) = net.padded_ids(&ids).expect("ids");
    let trace = net
        .forward(&ids, &style, 1.0, None, &SourceOptions::onnx_export())
        .expect("forward");
    let idx = net.alignment(&trace.durations).expect("alignment");
    let d_en = net.encode_bert(&tokens).expect("bert");
    let feats = net
        .decoder
        .features(&trace.asr, &trace.f0, &trace.n, &s_dec)
        .expect("decoder");
    let secs = trace.audio.len() as f64 / 24_000.0;
    eprintln!(
        "stage inputs: {} tokens, {} frames, {secs:.2}s audio",
        ids.len() + 2,
        trace.durations.iter().sum::<u32>()
    );

    let mut g = c.benchmark_group("kokoro_stages_medium");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("albert_bert_encoder", |b| {
        b.iter(|| net.encode_bert(&tokens).expect("bert"))
    });
    g.bench_function("predictor", |b| {
        b.iter(|| {
            let d = net.predictor.encode(&d_en, &s_pred).expect("encode");
            let raw = net.predictor.raw_durations(&d, 1.0).expect("durations");
            let en = d
                .squeeze(0)
                .and_then(|d| d.index_select(&idx, 0))
                .and_then(|d| d.t())
                .and_then(|d| d.unsqueeze(0))
                .and_then(|d| d.contiguous())
                .expect("align");
            (raw, net.predictor.f0_n(&en, &s_pred).expect("f0n"))
        })
    });
    g.bench_function("text_encoder", |b| {
        b.iter(|| net.text_encoder.forward(&tokens).expect("te"))
    });
    g.bench_function("decoder", |b| {
        b.iter(|| {
            net.decoder
                .features(&trace.asr, &trace.f0, &trace.n, &s_dec)
                .expect("decoder")
        })
    });
    g.bench_function("generator", |b| {
        b.iter(|| {
            net.decoder
                .generator()
                .forward(&feats, &s_dec, &trace.f0, &SourceOptions::onnx_export())
                .expect("generator")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("kokoro_end_to_end");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, voice, phonemes) in INPUTS {
        let audio = m
            .synthesize_phonemes(phonemes, voice, 1.0, 0)
            .expect("synth")
            .audio;
        eprintln!("{name}: {:.2}s of audio", audio.len() as f64 / 24_000.0);
        g.bench_function(name, |b| {
            b.iter(|| {
                m.synthesize_phonemes(phonemes, voice, 1.0, 0)
                    .expect("synth")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
