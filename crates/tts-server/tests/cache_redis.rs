//! The Redis tier against a real `redis-server` on a loopback port: replicas share entries and one
//! synthesis, and killing Redis mid-test leaves every request served.

mod common;

use std::time::Instant;

use common::{client, header, json_of, sentences_synthesized, TestServer, VOICE};
use serde_json::{json, Value};
use tts_server::ServerConfig;
use tts_testkit::RedisServer;

fn replica(redis: &RedisServer) -> TestServer {
    TestServer::start(ServerConfig {
        models_dir: common::piper_only_models_dir(),
        redis_url: Some(redis.url()),
        ..ServerConfig::default()
    })
}

async fn tts(server: &TestServer, text: &str) -> (String, Vec<u8>) {
    let started = Instant::now();
    let response = client()
        .post(server.url("/v1/tts"))
        .json(&json!({"text": text, "voice": VOICE, "format": "mp3"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let status = header(&response, "x-cache").to_string();
    let bytes = response.bytes().await.expect("body").to_vec();
    eprintln!("{text:?}: {status} in {:?}", started.elapsed());
    (status, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_entries_and_an_outage_keeps_serving() {
    let mut redis = RedisServer::start();
    let a = replica(&redis);
    let b = replica(&redis);

    let (status, bytes) = tts(&a, "Shared between replicas.").await;
    assert_eq!(status, "miss");
    let (status, from_redis) = tts(&b, "Shared between replicas.").await;
    assert_eq!(status, "hit-redis");
    assert_eq!(from_redis, bytes);
    assert_eq!(sentences_synthesized(&b), 0);

    redis.kill();
    // Redis is gone: new texts synthesize, known ones come from the local tiers.
    let (status, fresh) = tts(&a, "Said while redis was down.").await;
    assert_eq!(status, "miss");
    assert!(!fresh.is_empty());
    let (status, _) = tts(&a, "Said while redis was down.").await;
    assert_eq!(status, "hit-memory");
    let (status, again) = tts(&b, "Shared between replicas.").await;
    assert_eq!(status, "hit-memory");
    assert_eq!(again, bytes);
    let (status, _) = tts(&b, "Another text during the outage.").await;
    assert_eq!(status, "miss");

    let stats: Value = json_of(client().get(a.url("/v1/cache/stats"))).await;
    assert!(stats["redis_errors"].as_u64().unwrap() > 0, "{stats}");
    let metrics = client()
        .get(a.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(common::metric_sum(&metrics, "tts_cache_redis_errors_total") > 0.0);
    a.shutdown();
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_on_two_replicas_make_one_model_call() {
    let redis = RedisServer::start();
    let a = replica(&redis);
    let b = replica(&redis);
    let text = "Two replicas, one synthesis.";
    let ((status_a, bytes_a), (status_b, bytes_b)) = tokio::join!(tts(&a, text), tts(&b, text));
    let mut statuses = [status_a, status_b];
    statuses.sort();
    assert_eq!(statuses, ["hit-redis", "miss"]);
    assert_eq!(bytes_a, bytes_b);
    assert_eq!(sentences_synthesized(&a) + sentences_synthesized(&b), 1);
    a.shutdown();
    b.shutdown();
}

/// A streamed request's body, read chunk by chunk: (X-Cache, bytes, when the first chunk came).
async fn stream(server: &TestServer, text: &str) -> (String, Vec<u8>, Instant) {
    use futures_util::StreamExt;
    let response = client()
        .post(server.url("/v1/tts/stream"))
        .json(&json!({"text": text, "voice": VOICE, "format": "mp3"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let status = header(&response, "x-cache").to_string();
    let mut body = response.bytes_stream();
    let mut bytes = Vec::new();
    let mut first = None;
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.expect("chunk"));
        first.get_or_insert_with(Instant::now);
    }
    (status, bytes, first.expect("no audio"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_streaming_follower_on_another_replica_gets_the_leaders_chunks_from_the_start() {
    let redis = RedisServer::start();
    let a = replica(&redis);
    let b = replica(&redis);
    let text = common::THREE_SENTENCES;
    let leader = tokio::spawn({
        let url = a.url("/v1/tts/stream");
        async move {
            use futures_util::StreamExt;
            let response = client()
                .post(url)
                .json(&json!({"text": text, "voice": VOICE, "format": "mp3"}))
                .send()
                .await
                .expect("request");
            let status = response
                .headers()
                .get("x-cache")
                .map(|v| v.to_str().unwrap().to_string());
            let mut body = response.bytes_stream();
            let mut bytes = Vec::new();
            while let Some(chunk) = body.next().await {
                bytes.extend_from_slice(&chunk.expect("chunk"));
            }
            (status, bytes, Instant::now())
        }
    });
    // Joins while A is still synthesizing (its first sentence is out, the rest is not).
    while sentences_synthesized(&a) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (status, follower_bytes, follower_first) = stream(&b, text).await;
    let (leader_status, leader_bytes, leader_done) = leader.await.unwrap();
    assert_eq!(leader_status.as_deref(), Some("miss"));
    assert_eq!(status, "coalesced");
    assert_eq!(
        follower_bytes, leader_bytes,
        "the follower got another file"
    );
    assert!(
        follower_first < leader_done,
        "the follower's first audio came only after the leader finished"
    );
    assert_eq!(sentences_synthesized(&b), 0, "the follower synthesized");
    let pcm = common::decode(&follower_bytes, "mp3", 0);
    assert!(common::rms(&pcm) > 0.01);
    a.shutdown();
    b.shutdown();
}
