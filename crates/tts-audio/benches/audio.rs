//! Encode and resample throughput on real speech.
//!
//! Throughput is reported in elements = input samples per second. Divide by the input
//! sample rate to read it as x real time: e.g. "2.4 Melem/s" on 24 kHz input is
//! 2.4e6 / 24000 = 100x real time. A summary line with that division done is printed too.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tts_audio::{new_encoder, resample, AudioFormat, EncoderOptions, Pcm, StreamResampler};

/// The speech fixture resampled to 24 kHz (Kokoro's rate) and repeated to ~10 s.
fn speech_24k() -> Pcm {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech_22050.wav");
    let mut reader = hound::WavReader::open(&path).expect("speech fixture");
    let rate = reader.spec().sample_rate;
    let samples: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| s.expect("fixture sample") as f32 / 32768.0)
        .collect();
    let pcm = resample(&Pcm::new(samples, rate), 24_000).expect("resample fixture");
    let mut long = Vec::new();
    while long.len() < 24_000 * 10 {
        long.extend_from_slice(&pcm.samples);
    }
    Pcm::new(long, 24_000)
}

/// Streams `pcm` through a new encoder in 20 ms chunks, as the server does.
fn encode_stream(pcm: &Pcm, format: AudioFormat) -> usize {
    let mut enc = new_encoder(&EncoderOptions::new(format, pcm.sample_rate)).expect("encoder");
    let mut bytes = 0;
    for chunk in pcm.samples.chunks(pcm.sample_rate as usize / 50) {
        bytes += enc.push(chunk).expect("push").len();
    }
    bytes + enc.finish().expect("finish").len()
}

fn resample_stream(pcm: &Pcm, to_hz: u32) -> usize {
    let mut r = StreamResampler::new(pcm.sample_rate, to_hz).expect("resampler");
    let mut n = 0;
    for chunk in pcm.samples.chunks(pcm.sample_rate as usize / 50) {
        n += r.process(chunk).expect("process").len();
    }
    n + r.finish().expect("finish").len()
}

/// Prints the x-real-time figure for one run of `f` over `pcm`.
fn report_realtime(label: &str, pcm: &Pcm, f: impl Fn() -> usize) {
    // One untimed run pays for FFT planning and allocation, as a long-lived server would.
    black_box(f());
    let runs = 5;
    let start = Instant::now();
    for _ in 0..runs {
        black_box(f());
    }
    let per_run = start.elapsed().as_secs_f64() / runs as f64;
    println!(
        "x-real-time {label}: {:.0}x ({:.1} s of audio in {:.1} ms)",
        pcm.duration_secs() / per_run,
        pcm.duration_secs(),
        per_run * 1e3
    );
}

fn bench_encode(c: &mut Criterion) {
    let pcm = speech_24k();
    let mut group = c.benchmark_group("encode_24k_speech");
    group.throughput(Throughput::Elements(pcm.samples.len() as u64));
    for format in AudioFormat::ALL {
        report_realtime(&format!("encode {format}"), &pcm, || {
            encode_stream(&pcm, format)
        });
        group.bench_with_input(BenchmarkId::from_parameter(format), &format, |b, &f| {
            b.iter(|| encode_stream(black_box(&pcm), f))
        });
    }
    group.finish();
}

fn bench_resample(c: &mut Criterion) {
    let pcm24 = speech_24k();
    let pcm22 = resample(&pcm24, 22_050).expect("22.05 kHz copy");
    let mut group = c.benchmark_group("resample_speech");
    for (pcm, to) in [
        (&pcm22, 24_000),
        (&pcm24, 48_000),
        (&pcm24, 8000),
        (&pcm24, 22_050),
    ] {
        let label = format!("{}->{}", pcm.sample_rate, to);
        report_realtime(&format!("resample {label}"), pcm, || {
            resample_stream(pcm, to)
        });
        group.throughput(Throughput::Elements(pcm.samples.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(&label), &to, |b, &to| {
            b.iter(|| resample_stream(black_box(pcm), to))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_encode, bench_resample
}
criterion_main!(benches);
