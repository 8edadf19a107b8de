//! Usage end to end: after a mixed run (misses, a cache hit, a stream, the OpenAI route, a refused
//! request) the per-key totals of `GET /v1/usage` add up to what the responses said, user keys see
//! only their own usage, and the totals survive a restart.

mod common;

use std::path::{Path, PathBuf};

use chrono::{Days, Utc};
use common::{client, piper_only_models_dir, TestServer, VOICE};
use serde_json::{json, Value};
use tts_server::auth::AuthMode;
use tts_server::ServerConfig;

const ALICE: &str = "tts_alice_usage_key";
const ROOT: &str = "tts_root_usage_key";
const PRICE: f64 = 20.0;

fn config(dir: &Path) -> ServerConfig {
    let keys = format!(
        "[[keys]]\nid = \"alice\"\nrole = \"user\"\nsha256 = \"{}\"\n\n[[keys]]\nid = \"root\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        tts_accounts::hash_key(ALICE),
        tts_accounts::hash_key(ROOT)
    );
    let keys_file = dir.join("keys.toml");
    std::fs::write(&keys_file, keys).expect("keys file");
    ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        models_dir: piper_only_models_dir(),
        storage_dir: dir.join("storage"),
        auth: AuthMode::On,
        keys_file,
        price_per_million_chars: PRICE,
        ..ServerConfig::default()
    }
}

fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tts-usage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The range around today, so a run across midnight UTC still sees everything.
fn range_query() -> String {
    let today = Utc::now().date_naive();
    let from = today.checked_sub_days(Days::new(1)).unwrap();
    let to = today.checked_add_days(Days::new(1)).unwrap();
    format!("from={from}&to={to}")
}

async fn usage(server: &TestServer, key: &str, extra: &str) -> reqwest::Response {
    client()
        .get(server.url(&format!("/v1/usage?{}{extra}", range_query())))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

async fn total(server: &TestServer, key: &str, extra: &str) -> Value {
    let response = usage(server, key, extra).await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    report["total"].clone()
}

fn duration_header(response: &reqwest::Response) -> f64 {
    common::header(response, "x-audio-duration")
        .parse()
        .unwrap()
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

#[tokio::test]
async fn usage_totals_add_up_after_a_mixed_run_and_survive_a_restart() {
    let dir = fresh_dir();
    let server = TestServer::start_as_configured(config(&dir));
    let first = "The first call is synthesized.";
    let streamed = "This one is streamed as raw samples.";
    let openai = "The admin uses the OpenAI route.";

    // alice: a miss, the same text again (a cache hit), a stream, and a refused request.
    let miss = client()
        .post(server.url("/v1/tts"))
        .bearer_auth(ALICE)
        .json(&json!({"text": first, "voice": VOICE, "format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(miss.status(), 200);
    assert_eq!(common::header(&miss, "x-cache"), "miss");
    let miss_seconds = duration_header(&miss);
    miss.bytes().await.unwrap();

    let hit = client()
        .post(server.url("/v1/tts"))
        .bearer_auth(ALICE)
        .json(&json!({"text": first, "voice": VOICE, "format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(hit.status(), 200);
    assert!(common::header(&hit, "x-cache").starts_with("hit"));
    let hit_seconds = duration_header(&hit);
    hit.bytes().await.unwrap();

    let stream = client()
        .post(server.url("/v1/tts/stream"))
        .bearer_auth(ALICE)
        .json(&json!({"text": streamed, "voice": VOICE, "format": "pcm"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let rate: f64 = common::header(&stream, "x-sample-rate").parse().unwrap();
    let pcm = stream.bytes().await.unwrap();
    let stream_seconds = pcm.len() as f64 / 2.0 / rate;

    let refused = client()
        .post(server.url("/v1/tts"))
        .bearer_auth(ALICE)
        .json(&json!({"text": "Nobody speaks this.", "voice": "nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);

    // root: one OpenAI-route request.
    let speech = client()
        .post(server.url("/v1/audio/speech"))
        .bearer_auth(ROOT)
        .json(&json!({"model": "tts-1", "input": openai, "voice": VOICE, "response_format": "pcm"}))
        .send()
        .await
        .unwrap();
    assert_eq!(speech.status(), 200);
    let openai_seconds = speech.bytes().await.unwrap().len() as f64 / 2.0 / 24_000.0;

    let chars = |s: &str| s.chars().count() as u64;
    let check_alice = |alice: &Value| {
        assert_eq!(alice["requests"], 3, "{alice}");
        assert_eq!(
            alice["characters_synthesized"].as_u64(),
            Some(chars(first) + chars(streamed)),
            "{alice}"
        );
        assert_eq!(alice["characters_cached"].as_u64(), Some(chars(first)));
        let seconds = alice["audio_seconds"].as_f64().unwrap();
        let expected = miss_seconds + hit_seconds + stream_seconds;
        assert!(close(seconds, expected, 0.01), "{seconds} vs {expected}");
        let cost = alice["cost"].as_f64().unwrap();
        let saved = alice["cost_saved"].as_f64().unwrap();
        assert!(close(
            cost,
            (chars(first) + chars(streamed)) as f64 * PRICE / 1e6,
            1e-9
        ));
        assert!(close(saved, chars(first) as f64 * PRICE / 1e6, 1e-9));
    };
    // Streams are metered when their last byte is produced: allow the producer a moment.
    let mut alice = total(&server, ALICE, "").await;
    for _ in 0..50 {
        if alice["requests"] == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        alice = total(&server, ALICE, "").await;
    }
    check_alice(&alice);

    // A user may not read another key's usage; the admin reads all or one.
    assert_eq!(usage(&server, ALICE, "&key=root").await.status(), 403);
    let everyone = total(&server, ROOT, "").await;
    assert_eq!(everyone["requests"], 4);
    assert_eq!(
        everyone["characters_synthesized"].as_u64(),
        Some(chars(first) + chars(streamed) + chars(openai))
    );
    let openai_total = total(&server, ROOT, "&key=root").await;
    assert_eq!(openai_total["requests"], 1);
    let seconds = openai_total["audio_seconds"].as_f64().unwrap();
    assert!(
        close(seconds, openai_seconds, 0.02),
        "{seconds} vs {openai_seconds}"
    );
    check_alice(&total(&server, ROOT, "&key=alice").await);

    let bad = client()
        .get(server.url("/v1/usage?from=yesterday"))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["field"], "from");

    server.shutdown();
    let restarted = TestServer::start_as_configured(config(&dir));
    check_alice(&total(&restarted, ALICE, "").await);
    assert_eq!(total(&restarted, ROOT, "").await["requests"], 4);
    restarted.shutdown();
}
