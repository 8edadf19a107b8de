//! `tts bench`: `n` streamed requests from `c` concurrent workers, reporting time to first
//! audio and total latency percentiles (HdrHistogram), throughput, and the share answered
//! from the server's cache (`X-Cache: hit-*`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget};
use serde_json::json;
use tts_client::{Client, ClientError, SpeechRequest};

use crate::output::{audio_seconds, resolve_format};
use crate::UsageError;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Texts to send, one per line; requests cycle through them.
    #[arg(long)]
    pub text_file: PathBuf,
    /// Concurrent requests.
    #[arg(short, long, default_value_t = 4)]
    pub concurrency: usize,
    /// Total requests.
    #[arg(short = 'n', long, default_value_t = 100)]
    pub requests: usize,
    #[arg(short = 'v', long)]
    pub voice: Option<String>,
    #[arg(short, long)]
    pub model: Option<String>,
    /// Audio format; pcm (default) is measured without decoding.
    #[arg(short, long, default_value = "pcm")]
    pub format: String,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

struct Sample {
    ttfa: Duration,
    latency: Duration,
    audio_seconds: Option<f64>,
    cache_hit: bool,
    has_cache_header: bool,
}

pub async fn run(client: &Client, args: BenchArgs, quiet: bool) -> anyhow::Result<()> {
    let format = resolve_format(Some(&args.format), None)?;
    let content = tokio::fs::read_to_string(&args.text_file)
        .await
        .with_context(|| format!("reading {}", args.text_file.display()))?;
    let texts: Arc<Vec<String>> = Arc::new(
        content
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
    );
    if texts.is_empty() {
        return Err(UsageError(format!("{} has no text", args.text_file.display())).into());
    }
    let total = args.requests.max(1);
    let next = Arc::new(AtomicUsize::new(0));
    let bar = ProgressBar::new(total as u64);
    if quiet || args.json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = SpeechRequest {
        voice: args.voice.clone(),
        model: args.model.clone(),
        format: Some(format.as_str().to_string()),
        ..SpeechRequest::default()
    };

    let started = Instant::now();
    let workers = (0..args.concurrency.clamp(1, total)).map(|_| {
        let (client, texts, next, bar, template) = (
            client.clone(),
            texts.clone(),
            next.clone(),
            bar.clone(),
            template.clone(),
        );
        tokio::spawn(async move {
            let mut results = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let request = SpeechRequest {
                    text: texts[i % texts.len()].clone(),
                    ..template.clone()
                };
                results.push(one_request(&client, &request, format).await);
                bar.inc(1);
            }
            results
        })
    });
    let mut samples = Vec::new();
    let mut errors: Vec<ClientError> = Vec::new();
    for worker in futures_util::future::join_all(workers).await {
        for result in worker.context("bench worker panicked")? {
            match result {
                Ok(sample) => samples.push(sample),
                Err(err) => errors.push(err),
            }
        }
    }
    let wall = started.elapsed();
    bar.finish_and_clear();

    let report = Report::new(&samples, errors.len(), wall, args.concurrency);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        report.print();
    }
    if let Some(err) = errors.into_iter().next() {
        return Err(anyhow::Error::new(err).context(format!(
            "{} of {total} requests failed (first error shown)",
            total - samples.len()
        )));
    }
    Ok(())
}

async fn one_request(
    client: &Client,
    request: &SpeechRequest,
    format: tts_audio::AudioFormat,
) -> Result<Sample, ClientError> {
    let mut stream = client.stream(request).await?;
    let bytes = stream.collect_bytes().await?;
    let info = stream.info();
    Ok(Sample {
        ttfa: stream.time_to_first_chunk().unwrap_or_default(),
        latency: stream.total_time().unwrap_or_default(),
        audio_seconds: audio_seconds(&bytes, format, info.sample_rate),
        cache_hit: info.is_cache_hit(),
        has_cache_header: info.cache.is_some(),
    })
}

struct Report {
    ok: usize,
    failed: usize,
    concurrency: usize,
    wall: Duration,
    ttfa: Histogram<u64>,
    latency: Histogram<u64>,
    audio_seconds: f64,
    cache_hits: usize,
    cache_reported: usize,
}

fn histogram(values: impl Iterator<Item = Duration>) -> Histogram<u64> {
    // Microseconds from 1 µs to 1 h with 3 significant digits; bounds are constants, so valid.
    let mut hist =
        Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid");
    for value in values {
        hist.saturating_record(value.as_micros().max(1) as u64);
    }
    hist
}

impl Report {
    fn new(samples: &[Sample], failed: usize, wall: Duration, concurrency: usize) -> Self {
        Self {
            ok: samples.len(),
            failed,
            concurrency,
            wall,
            ttfa: histogram(samples.iter().map(|s| s.ttfa)),
            latency: histogram(samples.iter().map(|s| s.latency)),
            audio_seconds: samples.iter().filter_map(|s| s.audio_seconds).sum(),
            cache_hits: samples.iter().filter(|s| s.cache_hit).count(),
            cache_reported: samples.iter().filter(|s| s.has_cache_header).count(),
        }
    }

    fn percentiles_ms(hist: &Histogram<u64>) -> serde_json::Value {
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        json!({
            "p50": ms(0.50), "p90": ms(0.90), "p95": ms(0.95), "p99": ms(0.99),
            "max": hist.max() as f64 / 1000.0, "mean": hist.mean() / 1000.0,
        })
    }

    fn json(&self) -> serde_json::Value {
        let secs = self.wall.as_secs_f64().max(1e-9);
        json!({
            "requests": self.ok + self.failed,
            "ok": self.ok,
            "failed": self.failed,
            "concurrency": self.concurrency,
            "wall_s": self.wall.as_secs_f64(),
            "requests_per_s": self.ok as f64 / secs,
            "audio_s": self.audio_seconds,
            "audio_s_per_s": self.audio_seconds / secs,
            "ttfa_ms": Self::percentiles_ms(&self.ttfa),
            "latency_ms": Self::percentiles_ms(&self.latency),
            // Null when the server sends no X-Cache header at all.
            "cache_hit_share": (self.cache_reported > 0)
                .then(|| self.cache_hits as f64 / self.ok.max(1) as f64),
        })
    }

    fn print(&self) {
        let secs = self.wall.as_secs_f64().max(1e-9);
        let line = |name: &str, h: &Histogram<u64>| {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "{name:<8} p50 {:>8.1}  p90 {:>8.1}  p95 {:>8.1}  p99 {:>8.1}  max {:>8.1} ms",
                ms(0.5),
                ms(0.9),
                ms(0.95),
                ms(0.99),
                h.max() as f64 / 1000.0
            );
        };
        println!(
            "requests {}  ok {}  failed {}  concurrency {}  wall {:.2} s",
            self.ok + self.failed,
            self.ok,
            self.failed,
            self.concurrency,
            secs
        );
        println!(
            "throughput {:.2} req/s  {:.2} audio-s/s ({:.1} s of audio)",
            self.ok as f64 / secs,
            self.audio_seconds / secs,
            self.audio_seconds
        );
        line("ttfa", &self.ttfa);
        line("latency", &self.latency);
        if self.cache_reported > 0 {
            println!(
                "cache hits {:.1}% ({}/{})",
                100.0 * self.cache_hits as f64 / self.ok.max(1) as f64,
                self.cache_hits,
                self.ok
            );
        } else {
            println!("cache hits n/a (no X-Cache header)");
        }
    }
}
