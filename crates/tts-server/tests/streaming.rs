//! End-to-end: streaming is incremental; the first bytes reach the client while later sentences
//! are still being synthesized.

mod common;

use common::{client, piper_only_models_dir, TestServer, THREE_SENTENCES, VOICE};
use futures_util::StreamExt;
use serde_json::json;
use tts_server::ServerConfig;

#[tokio::test]
async fn first_streamed_bytes_arrive_before_the_whole_text_is_synthesized() {
    // A server of its own, so no other request moves the "last sentence done" instant.
    let server = TestServer::start(ServerConfig {
        models_dir: piper_only_models_dir(),
        ..ServerConfig::default()
    });
    let stats = server.state.speech.engine().stats();
    let response = client()
        .post(server.url("/v1/tts/stream"))
        .json(&json!({"text": THREE_SENTENCES, "voice": VOICE, "format": "mp3"}))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let first = body.next().await.expect("a first chunk").unwrap();
    let first_bytes_at = std::time::Instant::now();
    assert!(!first.is_empty());
    while let Some(chunk) = body.next().await {
        chunk.unwrap();
    }
    let synthesis_ended_at = stats
        .last_sentence_done
        .lock()
        .unwrap()
        .expect("sentences were synthesized");
    assert!(
        first_bytes_at < synthesis_ended_at,
        "first bytes came only after the last sentence was synthesized"
    );
    server.shutdown();
}
