//! End-to-end: a full queue answers 503 with Retry-After, and the requests it admitted succeed.

mod common;

use common::{client, piper_only_models_dir, TestServer, THREE_SENTENCES, VOICE};
use serde_json::{json, Value};
use tts_server::ServerConfig;

#[tokio::test]
async fn full_queue_gives_503_with_retry_after() {
    let server = TestServer::start(ServerConfig {
        models_dir: piper_only_models_dir(),
        workers: 1,
        queue_capacity: 1,
        retry_after_secs: 2,
        ..ServerConfig::default()
    });
    // One worker busy + one queued: of eight simultaneous requests, some must be refused.
    // Distinct texts: identical ones would share one synthesis (cache coalescing) and never queue.
    let requests = (0..8).map(|i| {
        let url = server.url("/v1/tts");
        async move {
            client()
                .post(url)
                .json(&json!({"text": format!("{THREE_SENTENCES} Request {i}."), "voice": VOICE, "format": "wav"}))
                .send()
                .await
                .unwrap()
        }
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut ok = 0;
    let mut refused = 0;
    for response in responses {
        match response.status().as_u16() {
            200 => {
                assert!(!response.bytes().await.unwrap().is_empty());
                ok += 1;
            }
            503 => {
                assert_eq!(common::header(&response, "retry-after"), "2");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "overloaded");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1, "no request was served");
    assert!(refused >= 1, "no request was refused");
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(common::metric_sum(&metrics, "tts_rejected_jobs_total") >= refused as f64);
    server.shutdown();
}
