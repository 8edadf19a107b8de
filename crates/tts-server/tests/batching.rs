//! End-to-end: concurrent requests on the real Piper voice are synthesized in shared batches, and
//! each response decodes to the same audio as the same request served alone.

mod common;

use std::sync::atomic::Ordering;

use common::{client, piper_only_models_dir, TestServer, VOICE};
use serde_json::json;
use tts_audio::Pcm;
use tts_server::ServerConfig;

const TEXTS: [&str; 4] = [
    "The bus leaves at six. It is a short ride.",
    "Good morning, everyone.",
    "The train goes north along the river, past the old mill and the fields of barley.",
    "Is this voice running natively in Rust? It is.",
];

async fn speak(server: &TestServer, text: &str) -> Pcm {
    let response = client()
        .post(server.url("/v1/tts"))
        .json(&json!({"text": text, "voice": VOICE, "format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{text}");
    common::decode(&response.bytes().await.unwrap(), "wav", 0)
}

#[tokio::test]
async fn concurrent_requests_are_batched_and_sound_as_they_do_alone() {
    let server = TestServer::start(ServerConfig {
        models_dir: piper_only_models_dir(),
        max_batch_size: 8,
        // Long enough that the simultaneous requests all reach the first batch.
        max_batch_wait_ms: 200.0,
        // No cache: the requests served alone below must be synthesized again.
        cache_memory_mb: 0,
        cache_disk_mb: 0,
        ..ServerConfig::default()
    });
    let together = futures_util::future::join_all(TEXTS.iter().map(|t| speak(&server, t))).await;
    let stats = server.state.speech.engine().stats();
    let largest = stats.largest_batch.load(Ordering::Relaxed);
    assert!(largest > 1, "no batch held more than one sentence");
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let batches = common::metric_sum(&metrics, "tts_batch_size_count");
    let sentences = common::metric_sum(&metrics, "tts_batch_size_sum");
    assert!(
        sentences > batches,
        "tts_batch_size shows no batching: {sentences} sentences in {batches} calls"
    );

    for (text, batched) in TEXTS.iter().zip(&together) {
        let before = stats.batches_run.load(Ordering::Relaxed);
        let alone = speak(&server, text).await;
        let calls = stats.batches_run.load(Ordering::Relaxed) - before;
        let sentence_count = text.matches(['.', '?']).count() as u64;
        assert_eq!(
            calls, sentence_count,
            "{text}: served alone, one call per sentence"
        );
        assert_eq!(batched.sample_rate, alone.sample_rate);
        assert_eq!(batched.samples.len(), alone.samples.len(), "{text}");
        // Both are the same floats quantised to 16 bits; allow one step for rounding.
        let max_diff = batched
            .samples
            .iter()
            .zip(&alone.samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            max_diff <= 1.0 / 32768.0 + 1e-7,
            "{text}: max diff {max_diff}"
        );
        assert!(common::rms(&alone) > 0.01, "{text}: silence");
    }
    server.shutdown();
}
