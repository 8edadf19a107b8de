//! Prometheus metrics, all prefixed `tts_`. The recorder is process-wide (installed once, shared by
//! every server in the process, as in the in-process tests); call sites use the small helpers here
//! so names and labels are spelled in one place.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
];
const RTF_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0,
];
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0];

/// Installs the recorder on first call; later calls return the same handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("tts_rtf".into()), RTF_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("tts_batch_size".into()),
                        BATCH_SIZE_BUCKETS,
                    )
                });
            match builder.and_then(|b| b.install_recorder()) {
                Ok(handle) => handle,
                // Another recorder is already installed (an embedding program): render an empty one.
                Err(err) => {
                    tracing::warn!(error = %err, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// Axum middleware: counts every response by matched route and status, and its latency.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    counter!("tts_requests_total", "route" => route, "status" => response.status().as_u16().to_string())
        .increment(1);
    response
}

pub fn set_queue_depth(depth: usize) {
    gauge!("tts_queue_depth").set(depth as f64);
}

pub fn queue_wait(wait: Duration) {
    histogram!("tts_queue_wait_seconds").record(wait.as_secs_f64());
}

/// Sentences synthesized by one model call (1 when not batched).
pub fn batch_size(model: &str, size: usize) {
    histogram!("tts_batch_size", "model" => model.to_string()).record(size as f64);
}

pub fn job_rejected() {
    counter!("tts_rejected_jobs_total").increment(1);
}

pub fn sentences_cancelled(count: u64) {
    counter!("tts_cancelled_sentences_total").increment(count);
}

pub fn time_to_first_audio(route: &'static str, elapsed: Duration) {
    histogram!("tts_ttfa_seconds", "route" => route).record(elapsed.as_secs_f64());
}

/// One finished synthesis: latency, RTF, characters and audio seconds.
pub fn synthesis_done(
    route: &'static str,
    model: &str,
    characters: usize,
    audio_secs: f64,
    latency: Duration,
) {
    histogram!("tts_latency_seconds", "route" => route).record(latency.as_secs_f64());
    if audio_secs > 0.0 {
        histogram!("tts_rtf", "model" => model.to_string())
            .record(latency.as_secs_f64() / audio_secs);
    }
    counter!("tts_characters_total", "model" => model.to_string()).increment(characters as u64);
    // Counters are integers: audio is counted in milliseconds to keep short utterances.
    counter!("tts_audio_milliseconds_total", "model" => model.to_string())
        .increment((audio_secs * 1000.0).round() as u64);
}
