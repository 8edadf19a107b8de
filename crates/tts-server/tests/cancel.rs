//! End-to-end: a client that disconnects mid-stream cancels its remaining sentences.

mod common;

use std::time::Duration;

use common::{client, piper_only_models_dir, TestServer, VOICE};
use futures_util::StreamExt;
use serde_json::json;
use tts_server::ServerConfig;

#[tokio::test]
async fn disconnect_cancels_the_remaining_sentences() {
    let server = TestServer::start(ServerConfig {
        models_dir: piper_only_models_dir(),
        ..ServerConfig::default()
    });
    let sentences = 12;
    let text: String = (1..=sentences)
        .map(|i| {
            format!(
                "This is sentence number {i}, which is long enough to take a little while to say. "
            )
        })
        .collect();
    let metrics_url = server.url("/metrics");
    let cancelled = |body: &str| common::metric_sum(body, "tts_cancelled_sentences_total");
    let before = cancelled(
        &client()
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );

    let response = client()
        .post(server.url("/v1/tts/stream"))
        .json(&json!({"text": text, "voice": VOICE, "format": "wav"}))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    assert!(!body.next().await.expect("first chunk").unwrap().is_empty());
    drop(body);

    // Poll until the server notices; the limit only bounds the wait.
    let mut after = before;
    for _ in 0..200 {
        after = cancelled(
            &client()
                .get(&metrics_url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        if after > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        after > before,
        "no sentence was cancelled after the disconnect"
    );
    let stats = server.state.speech.engine().stats();
    let synthesized = stats
        .sentences_synthesized
        .load(std::sync::atomic::Ordering::Relaxed);
    // Warm-up runs outside the engine, so every synthesized sentence here belongs to this request.
    assert!(
        synthesized < sentences,
        "all {synthesized} sentences were synthesized anyway"
    );
    server.shutdown();
}
