//! `tts-load`: streams the same text from a running tts-server at several concurrency levels and
//! reports time to first audio (p50/p95/p99), total latency and throughput (requests/s and seconds
//! of audio per wall second). Audio is requested as raw PCM so its duration is exact.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use futures_util::StreamExt;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Load test a running tts-server")]
struct Args {
    /// Server base URL.
    #[arg(long, env = "TTS_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value = "en_US-joe-medium")]
    voice: String,
    /// Concurrent streams, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    concurrency: Vec<usize>,
    /// Requests per client at each level.
    #[arg(long, default_value_t = 4)]
    requests_per_client: usize,
    #[arg(
        long,
        default_value = "The quick brown fox jumps over the lazy dog. It was a bright cold day in April. The clocks were striking thirteen."
    )]
    text: String,
}

struct Sample {
    ttfa: Duration,
    total: Duration,
    audio_secs: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::new();
    // One request first, so the first level does not pay for connection set-up and cold caches.
    one_request(&client, &args)
        .await
        .context("warm-up request")?;
    println!("| concurrency | requests | TTFA p50 ms | TTFA p95 ms | TTFA p99 ms | latency p50 ms | req/s | audio s per s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &clients in &args.concurrency {
        let started = Instant::now();
        let workers = (0..clients).map(|_| {
            let (client, args) = (client.clone(), &args);
            async move {
                let mut samples = Vec::new();
                for _ in 0..args.requests_per_client {
                    samples.push(one_request(&client, args).await?);
                }
                anyhow::Ok(samples)
            }
        });
        let mut samples = Vec::new();
        for result in futures_util::future::join_all(workers).await {
            samples.extend(result?);
        }
        let wall = started.elapsed().as_secs_f64();
        let mut ttfa: Vec<f64> = samples.iter().map(|s| s.ttfa.as_secs_f64() * 1e3).collect();
        let mut total: Vec<f64> = samples
            .iter()
            .map(|s| s.total.as_secs_f64() * 1e3)
            .collect();
        let audio: f64 = samples.iter().map(|s| s.audio_secs).sum();
        println!(
            "| {clients} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} |",
            samples.len(),
            percentile(&mut ttfa, 0.50),
            percentile(&mut ttfa, 0.95),
            percentile(&mut ttfa, 0.99),
            percentile(&mut total, 0.50),
            samples.len() as f64 / wall,
            audio / wall,
        );
    }
    Ok(())
}

async fn one_request(client: &reqwest::Client, args: &Args) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let response = client
        .post(format!("{}/v1/tts/stream", args.url.trim_end_matches('/')))
        .json(&json!({"text": args.text, "voice": args.voice, "format": "pcm"}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "server answered {}: {}",
            response.status(),
            response.text().await?
        );
    }
    let rate: f64 = response
        .headers()
        .get("x-sample-rate")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .context("x-sample-rate header")?;
    let mut body = response.bytes_stream();
    let mut ttfa = None;
    let mut bytes = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if ttfa.is_none() && !chunk.is_empty() {
            ttfa = Some(started.elapsed());
        }
        bytes += chunk.len();
    }
    Ok(Sample {
        ttfa: ttfa.context("no audio received")?,
        total: started.elapsed(),
        // s16le mono: two bytes per sample.
        audio_secs: bytes as f64 / 2.0 / rate,
    })
}

/// Nearest-rank percentile.
fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}
