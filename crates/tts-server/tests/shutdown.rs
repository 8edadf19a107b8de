//! End-to-end: a shutdown signal drains in-flight streams to complete files, then stops.

mod common;

use common::{client, decode, header, piper_only_models_dir, TestServer, THREE_SENTENCES, VOICE};
use futures_util::StreamExt;
use serde_json::json;
use tts_server::ServerConfig;

#[tokio::test]
async fn shutdown_lets_an_inflight_stream_finish_whole() {
    let mut server = TestServer::start(ServerConfig {
        models_dir: piper_only_models_dir(),
        ..ServerConfig::default()
    });
    let whole = client()
        .post(server.url("/v1/tts"))
        .json(&json!({"text": THREE_SENTENCES, "voice": VOICE, "format": "wav"}))
        .send()
        .await
        .unwrap();
    let expected: f64 = header(&whole, "x-audio-duration").parse().unwrap();
    // Empty the cache, so the stream below is synthesized (in flight) while the server drains.
    let purged = client()
        .delete(server.url("/v1/cache"))
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), 200);

    let response = client()
        .post(server.url("/v1/tts/stream"))
        .json(&json!({"text": THREE_SENTENCES, "voice": VOICE, "format": "wav"}))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut bytes = body.next().await.expect("first chunk").unwrap().to_vec();
    server.signal_shutdown();
    while let Some(chunk) = body.next().await {
        bytes.extend(chunk.expect("stream completes during shutdown"));
    }
    let pcm = decode(&bytes, "wav", 0);
    assert!(
        (pcm.duration_secs() - expected).abs() < 0.05,
        "drained stream has {} s, expected {expected} s",
        pcm.duration_secs()
    );
    let url = server.url("/health");
    server.shutdown();
    assert!(
        client().get(url).send().await.is_err(),
        "server still accepts connections"
    );
}
