//! Dynamic batching under load: 16 concurrent clients stream 3-sentence texts from an in-process
//! server on the real Piper voice, once with batching off (`max_batch_size` 1) and once with the
//! default dynamic batching (8 sentences, 5 ms), alternating over rounds in one process, and the
//! throughput and latency ratios between the two.
//!
//! `CANDLE_NUM_THREADS=1 RAYON_NUM_THREADS=2 cargo bench -p tts-server --bench batching`
//! (`BATCH_BENCH_ROUNDS`, `BATCH_BENCH_REQUESTS` per client, `BATCH_BENCH_CLIENTS` override the
//! defaults 2, 2 and 16).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tts_server::ServerConfig;
use tts_testkit::{piper_only_models_dir, TestServer, VOICE};

/// Sentences the request texts are drawn from (each request gets a distinct text, so no
/// two concurrent requests are coalesced into one synthesis).
const POOL: [&str; 8] = [
    "The quick brown fox jumps over the lazy dog.",
    "It was a bright cold day in April.",
    "The clocks were striking thirteen.",
    "The bus leaves at six every morning.",
    "It is a short ride to the station.",
    "Then it rests, happily, in the sun!",
    "Is this voice running natively in Rust?",
    "Piper voices are small and fast.",
];

struct Sample {
    ttfa: Duration,
    total: Duration,
    audio_secs: f64,
}

#[derive(Default)]
struct Totals {
    samples: Vec<Sample>,
    wall: Duration,
    sentences: u64,
    model_calls: u64,
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn text(client: usize, request: usize) -> String {
    let n = client * 31 + request * 7;
    format!(
        "Message {}. {} {}",
        client * 100 + request,
        POOL[n % POOL.len()],
        POOL[(n + 3) % POOL.len()]
    )
}

async fn one_request(http: &reqwest::Client, server: &TestServer, text: &str) -> Sample {
    let started = Instant::now();
    let response = http
        .post(server.url("/v1/tts/stream"))
        .json(&json!({"text": text, "voice": VOICE, "format": "pcm"}))
        .send()
        .await
        .expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    let rate: f64 = response
        .headers()
        .get("x-sample-rate")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("x-sample-rate");
    let mut body = response.bytes_stream();
    let (mut ttfa, mut bytes) = (None, 0usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("body");
        if ttfa.is_none() && !chunk.is_empty() {
            ttfa = Some(started.elapsed());
        }
        bytes += chunk.len();
    }
    Sample {
        ttfa: ttfa.expect("audio"),
        total: started.elapsed(),
        audio_secs: bytes as f64 / 2.0 / rate,
    }
}

/// One load run against a fresh server with `max_batch_size`, added to `totals`.
fn run(max_batch_size: usize, clients: usize, requests: usize, totals: &mut Totals) {
    let server = TestServer::start(ServerConfig {
        models_dir: piper_only_models_dir(),
        max_batch_size,
        cache_memory_mb: 0,
        cache_disk_mb: 0,
        queue_capacity: clients * 2,
        request_timeout_secs: 600.0,
        ..ServerConfig::default()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let http = reqwest::Client::new();
    let engine = server.state.speech.engine().clone();
    let (sentences0, calls0) = (
        engine.stats().sentences_synthesized.load(Ordering::Relaxed),
        engine.stats().batches_run.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    let samples = runtime.block_on(async {
        let tasks = (0..clients).map(|c| {
            let (http, server) = (&http, &server);
            async move {
                let mut samples = Vec::new();
                for r in 0..requests {
                    samples.push(one_request(http, server, &text(c, r)).await);
                }
                samples
            }
        });
        futures_util::future::join_all(tasks).await
    });
    totals.wall += started.elapsed();
    totals.samples.extend(samples.into_iter().flatten());
    totals.sentences += engine.stats().sentences_synthesized.load(Ordering::Relaxed) - sentences0;
    totals.model_calls += engine.stats().batches_run.load(Ordering::Relaxed) - calls0;
    server.shutdown();
}

/// Nearest-rank percentile, in milliseconds.
fn percentile(values: impl Iterator<Item = Duration>, q: f64) -> f64 {
    let mut v: Vec<f64> = values.map(|d| d.as_secs_f64() * 1e3).collect();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
    v.get(rank - 1).copied().unwrap_or(0.0)
}

struct Row {
    req_per_s: f64,
    audio_per_s: f64,
    latency_p50: f64,
    latency_p95: f64,
    ttfa_p95: f64,
    mean_batch: f64,
}

fn row(t: &Totals) -> Row {
    let wall = t.wall.as_secs_f64();
    Row {
        req_per_s: t.samples.len() as f64 / wall,
        audio_per_s: t.samples.iter().map(|s| s.audio_secs).sum::<f64>() / wall,
        latency_p50: percentile(t.samples.iter().map(|s| s.total), 0.50),
        latency_p95: percentile(t.samples.iter().map(|s| s.total), 0.95),
        ttfa_p95: percentile(t.samples.iter().map(|s| s.ttfa), 0.95),
        mean_batch: t.sentences as f64 / t.model_calls.max(1) as f64,
    }
}

fn main() {
    let rounds = setting("BATCH_BENCH_ROUNDS", 2);
    let requests = setting("BATCH_BENCH_REQUESTS", 2);
    let clients = setting("BATCH_BENCH_CLIENTS", 16);
    let configs = [("batch 1", 1), ("dynamic (8, 5 ms)", 8)];
    let mut totals: Vec<Totals> = configs.iter().map(|_| Totals::default()).collect();
    // Alternating the two settings spreads slow phases of a shared machine over both.
    for round in 0..rounds {
        for ((name, size), totals) in configs.iter().zip(&mut totals) {
            run(*size, clients, requests, totals);
            eprintln!("round {round}: {name} done");
        }
    }
    println!("{clients} concurrent clients, {requests} requests each per round, {rounds} rounds");
    println!("| setting | requests | req/s | audio s per s | latency p50 ms | latency p95 ms | TTFA p95 ms | sentences per model call |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let rows: Vec<Row> = totals.iter().map(row).collect();
    for ((name, _), (t, r)) in configs.iter().zip(totals.iter().zip(&rows)) {
        println!(
            "| {name} | {} | {:.2} | {:.1} | {:.0} | {:.0} | {:.0} | {:.2} |",
            t.samples.len(),
            r.req_per_s,
            r.audio_per_s,
            r.latency_p50,
            r.latency_p95,
            r.ttfa_p95,
            r.mean_batch
        );
    }
    let (base, dynamic) = (&rows[0], &rows[1]);
    println!(
        "| ratio dynamic / batch 1 | | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× | |",
        dynamic.req_per_s / base.req_per_s,
        dynamic.audio_per_s / base.audio_per_s,
        dynamic.latency_p50 / base.latency_p50,
        dynamic.latency_p95 / base.latency_p95,
        dynamic.ttfa_p95 / base.ttfa_p95
    );
}
