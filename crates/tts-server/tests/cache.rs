//! The audio cache end to end: `X-Cache` per tier, restart keeps the disk tier, corrupt files are
//! never served, identical concurrent requests share one synthesis (whole files and streams),
//! downloads by key, purges.

mod common;

use std::sync::atomic::Ordering;

use common::{client, header, json_of, sentences_synthesized, TestServer, THREE_SENTENCES, VOICE};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tts_server::ServerConfig;

fn piper_config() -> ServerConfig {
    ServerConfig {
        models_dir: common::piper_only_models_dir(),
        ..ServerConfig::default()
    }
}

async fn tts(server: &TestServer, text: &str, format: &str) -> (String, String, Vec<u8>) {
    let response = client()
        .post(server.url("/v1/tts"))
        .json(&json!({"text": text, "voice": VOICE, "format": format}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let status = header(&response, "x-cache").to_string();
    let key = header(&response, "x-cache-key").to_string();
    (status, key, response.bytes().await.expect("body").to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_identical_request_is_a_memory_hit_with_the_same_bytes() {
    let server = TestServer::start(piper_config());
    let (first, key, bytes) = tts(&server, "The kettle is on.", "mp3").await;
    assert_eq!(first, "miss");
    assert_eq!(key.len(), 64);
    let synthesized = sentences_synthesized(&server);
    // Whitespace differences normalise to the same key.
    let (second, key2, bytes2) = tts(&server, "  The kettle   is on. ", "mp3").await;
    assert_eq!(second, "hit-memory");
    assert_eq!(key2, key);
    assert_eq!(bytes2, bytes);
    assert_eq!(
        sentences_synthesized(&server),
        synthesized,
        "a hit synthesized"
    );
    let pcm = common::decode(&bytes2, "mp3", 0);
    assert!(common::rms(&pcm) > 0.01);

    // Another format is another entry.
    let (wav, wav_key, _) = tts(&server, "The kettle is on.", "wav").await;
    assert_eq!(wav, "miss");
    assert_ne!(wav_key, key);

    // Download by key.
    let response = client()
        .get(server.url(&format!("/v1/audio/{key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "audio/mpeg");
    assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);

    let stats: Value = json_of(client().get(server.url("/v1/cache/stats"))).await;
    assert!(stats["memory"]["hits"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["misses"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["disk"]["entries"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["bytes_saved"].as_u64().unwrap() >= bytes.len() as u64);
    assert!(stats["synthesis_seconds_saved"].as_f64().unwrap() > 0.0);
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_or_unknown_audio_keys_get_json_errors() {
    let server = TestServer::start(piper_config());
    let bad = client()
        .get(server.url("/v1/audio/not-a-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["field"], "key");
    let absent = client()
        .get(server.url(&format!("/v1/audio/{}", "ab".repeat(32))))
        .send()
        .await
        .unwrap();
    assert_eq!(absent.status(), 404);
    let body: Value = absent.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_on_the_same_storage_serves_from_disk() {
    let storage = common::fresh_storage_dir();
    let config = ServerConfig {
        storage_dir: storage.clone(),
        bind: "127.0.0.1:0".parse().unwrap(),
        ..piper_config()
    };
    let server = TestServer::start_as_configured(config.clone());
    let (status, key, bytes) = tts(&server, "Persistence is a virtue.", "wav").await;
    assert_eq!(status, "miss");
    server.shutdown();

    let server = TestServer::start_as_configured(config);
    let (status, key2, bytes2) = tts(&server, "Persistence is a virtue.", "wav").await;
    assert_eq!(status, "hit-disk");
    assert_eq!(key2, key);
    assert_eq!(bytes2, bytes);
    assert_eq!(sentences_synthesized(&server), 0);
    // Promoted to memory by the disk hit.
    let (status, _, _) = tts(&server, "Persistence is a virtue.", "wav").await;
    assert_eq!(status, "hit-memory");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_disk_entry_is_dropped_and_resynthesized() {
    let storage = common::fresh_storage_dir();
    // No memory tier: every lookup reads the disk file.
    let config = ServerConfig {
        storage_dir: storage.clone(),
        bind: "127.0.0.1:0".parse().unwrap(),
        cache_memory_mb: 0,
        ..piper_config()
    };
    let server = TestServer::start_as_configured(config);
    let (status, key, bytes) = tts(&server, "Bits rot quietly.", "flac").await;
    assert_eq!(status, "miss");
    let (status, _, _) = tts(&server, "Bits rot quietly.", "flac").await;
    assert_eq!(status, "hit-disk");

    let file = storage.join("cache/objects").join(&key[..2]).join(&key);
    let stored = std::fs::read(&file).expect("cached file on disk");
    assert_eq!(stored, bytes);
    std::fs::write(&file, &stored[..stored.len() / 2]).unwrap();

    let before = sentences_synthesized(&server);
    let (status, _, again) = tts(&server, "Bits rot quietly.", "flac").await;
    assert_eq!(status, "miss", "a truncated file was served");
    assert!(sentences_synthesized(&server) > before);
    assert_eq!(again.len(), bytes.len());
    common::decode(&again, "flac", 0);
    let stats: Value = json_of(client().get(server.url("/v1/cache/stats"))).await;
    assert_eq!(stats["corrupt_dropped"], 1, "{stats}");
    // The resynthesized entry replaced the corrupt one.
    let (status, _, _) = tts(&server, "Bits rot quietly.", "flac").await;
    assert_eq!(status, "hit-disk");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_identical_requests_make_one_model_call() {
    let server = TestServer::start(ServerConfig {
        queue_capacity: 4,
        ..piper_config()
    });
    let before = sentences_synthesized(&server);
    let http = client();
    let url = server.url("/v1/tts");
    let requests = (0..1_000).map(|_| {
        let http = http.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let response = http
                .post(url)
                .json(&json!({"text": "Everyone asks the same question.", "voice": VOICE}))
                .send()
                .await
                .expect("request");
            let status = response.status();
            let cache = response
                .headers()
                .get("x-cache")
                .map(|v| v.to_str().unwrap_or("").to_string())
                .unwrap_or_default();
            let body = response.bytes().await.expect("body");
            (status, cache, body)
        })
    });
    let results = futures_util::future::join_all(requests).await;
    let mut misses = 0;
    let mut bodies = std::collections::HashSet::new();
    for result in results {
        let (status, cache, body) = result.expect("task");
        assert_eq!(status, 200, "x-cache {cache}");
        assert!(
            ["miss", "coalesced", "hit-memory"].contains(&cache.as_str()),
            "{cache}"
        );
        misses += usize::from(cache == "miss");
        bodies.insert(body);
    }
    assert_eq!(misses, 1);
    assert_eq!(bodies.len(), 1, "responses differ");
    assert_eq!(sentences_synthesized(&server) - before, 1);
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streaming_follower_receives_the_leaders_whole_file() {
    let server = TestServer::start(piper_config());
    let text = format!("{THREE_SENTENCES} {THREE_SENTENCES}");
    let body = json!({"text": text, "voice": VOICE, "format": "wav"});
    let leader = client()
        .post(server.url("/v1/tts/stream"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&leader, "x-cache"), "miss");
    let mut leader_body = leader.bytes_stream();
    let mut leader_bytes = leader_body.next().await.unwrap().unwrap().to_vec();
    // The leader has sent its first sentence and is still synthesizing the rest.
    let follower = client()
        .post(server.url("/v1/tts/stream"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&follower, "x-cache"), "coalesced");
    let follower_bytes = follower.bytes().await.unwrap().to_vec();
    while let Some(chunk) = leader_body.next().await {
        leader_bytes.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(follower_bytes, leader_bytes);
    let pcm = common::decode(&follower_bytes, "wav", 0);
    assert!(pcm.duration_secs() > 5.0, "{} s", pcm.duration_secs());
    // The complete stream was stored: the next request is a hit, also on the whole-file route.
    let (status, _, bytes) = tts(&server, &text, "wav").await;
    assert_eq!(status, "hit-memory");
    assert_eq!(bytes, leader_bytes);
    server.shutdown();
}

async fn purge(server: &TestServer, query: &str) -> Value {
    let response = client()
        .delete(server.url(&format!("/v1/cache{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_by_voice_removes_only_that_voices_entries() {
    let server = TestServer::start(piper_config());
    let (status, _, _) = tts(&server, "Forget me not.", "mp3").await;
    assert_eq!(status, "miss");
    assert_eq!(purge(&server, "?voice=jf_alpha").await["removed"], 0);
    let (status, _, _) = tts(&server, "Forget me not.", "mp3").await;
    assert_eq!(status, "hit-memory");
    let removed = purge(&server, &format!("?voice={VOICE}")).await["removed"].clone();
    assert!(removed.as_u64().unwrap() >= 1, "{removed}");
    let (status, _, _) = tts(&server, "Forget me not.", "mp3").await;
    assert_eq!(status, "miss", "purged entry still served");
    assert!(purge(&server, "").await["removed"].as_u64().unwrap() >= 1);
    let (status, _, _) = tts(&server, "Forget me not.", "mp3").await;
    assert_eq!(status, "miss");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streamed_routes_answer_hits_with_x_cache() {
    let server = TestServer::start(piper_config());
    let body = json!({"model": "tts-1", "input": "Cached for everyone.", "voice": VOICE});
    let first = client()
        .post(server.url("/v1/audio/speech"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&first, "x-cache"), "miss");
    let first = first.bytes().await.unwrap();
    let second = client()
        .post(server.url("/v1/audio/speech"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&second, "x-cache"), "hit-memory");
    assert_eq!(second.bytes().await.unwrap(), first);

    let sse = client()
        .post(server.url("/v1/tts/sse"))
        .json(&json!({"text": "Cached for everyone.", "voice": VOICE}))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&sse, "x-cache"), "hit-memory");
    let events = sse.text().await.unwrap();
    assert!(events.contains("speech.audio.delta"));
    assert!(events.contains("speech.audio.done"));
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_of_a_failed_synthesis_get_the_leaders_error() {
    // One worker, busy with a long sentence; the identical pair behind it outlives its timeout.
    let server = TestServer::start(ServerConfig {
        request_timeout_secs: 0.5,
        ..piper_config()
    });
    // One sentence under the server's 300-character chunk: one engine sentence of a second or so.
    let long = "While the rain kept falling on the quiet harbour town, the old ferryman, \
        who had crossed the wide grey water every morning for forty years, counted the \
        passengers twice, checked the ropes, and waited patiently for the late bus.";
    let blocker = tokio::spawn({
        let url = server.url("/v1/tts");
        async move {
            client()
                .post(url)
                .json(&json!({"text": long, "voice": VOICE, "format": "pcm"}))
                .send()
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let request = || {
        client()
            .post(server.url("/v1/tts"))
            .json(&json!({"text": "Nobody waits this long.", "voice": VOICE, "format": "mp3"}))
            .send()
    };
    let (a, b) = tokio::join!(request(), request());
    for response in [a.unwrap(), b.unwrap()] {
        assert_eq!(response.status(), 504);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "timeout", "{body}");
    }
    let _ = blocker.await;
    // One shared job timed out; two separate ones would have cancelled two sentences. The engine
    // drops a timed-out job when a worker reaches it, after the responses went out.
    let engine = server.state.speech.engine();
    let cancelled = || engine.stats().sentences_cancelled.load(Ordering::Relaxed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while (engine.queue_depth() > 0 || cancelled() == 0) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        cancelled(),
        1,
        "the identical requests did not share one synthesis"
    );
}
