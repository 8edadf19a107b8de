//! Batch jobs end to end: a job with failing items completes the others, each with a cache key and
//! a download URL that serves the audio; the item limit is enforced; other keys cannot see a job.

mod common;

use std::time::{Duration, Instant};

use common::{client, json_of, piper_only_models_dir, TestServer, VOICE};
use serde_json::{json, Value};
use tts_server::auth::AuthMode;
use tts_server::ServerConfig;

const OWNER: &str = "tts_batch_owner_key";
const STRANGER: &str = "tts_batch_stranger_key";
const ADMIN: &str = "tts_batch_admin_key";

fn server() -> TestServer {
    TestServer::start(config())
}

fn config() -> ServerConfig {
    let dir = std::env::temp_dir().join(format!("tts-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let entry = |id: &str, role: &str, key: &str| {
        format!(
            "[[keys]]\nid = \"{id}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            tts_accounts::hash_key(key)
        )
    };
    let keys_file = dir.join("keys.toml");
    std::fs::write(
        &keys_file,
        [
            entry("owner", "user", OWNER),
            entry("stranger", "user", STRANGER),
            entry("admin", "admin", ADMIN),
        ]
        .join("\n"),
    )
    .unwrap();
    ServerConfig {
        models_dir: piper_only_models_dir(),
        auth: AuthMode::On,
        keys_file,
        batch_max_items: 5,
        batch_concurrency: 2,
        ..ServerConfig::default()
    }
}

async fn wait_completed(server: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let view: Value = job(server, OWNER, id).await.json().await.unwrap();
        if view["status"] == "completed" {
            return view;
        }
        assert!(Instant::now() < deadline, "job did not finish: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn job(server: &TestServer, key: &str, id: &str) -> reqwest::Response {
    client()
        .get(server.url(&format!("/v1/batch/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn batch_with_failing_items_completes_the_rest_with_download_urls() {
    let server = server();
    let items = json!({"items": [
        {"text": "The first item is fine.", "voice": VOICE, "format": "wav"},
        {"text": "This voice does not exist.", "voice": "nobody"},
        {"text": "The third item is fine too.", "voice": VOICE, "format": "mp3", "speed": 1.2},
        {"text": "?!...", "voice": VOICE},
    ]});
    let created = client()
        .post(server.url("/v1/batch"))
        .bearer_auth(OWNER)
        .json(&items)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 202);
    let created: Value = created.json().await.unwrap();
    let id = created["id"].as_str().expect("job id").to_string();
    assert_eq!(created["total"], 4);

    let view = wait_completed(&server, &id).await;
    assert_eq!(view["done"], 2, "{view}");
    assert_eq!(view["failed"], 2, "{view}");
    assert_eq!(view["pending"], 0);
    let items = view["items"].as_array().unwrap();
    assert_eq!(items[1]["status"], "failed");
    assert_eq!(items[1]["error"]["code"], "unknown_voice");
    assert_eq!(items[1]["error"]["field"], "voice");
    // Passes validation, fails at synthesis: nothing in it to speak.
    assert_eq!(items[3]["status"], "failed");
    assert_eq!(items[3]["error"]["code"], "empty_text");

    for (index, format) in [(0, "wav"), (2, "mp3")] {
        let item = &items[index];
        assert_eq!(item["status"], "done", "{item}");
        assert_eq!(item["cache"], "miss");
        let key = item["cache_key"].as_str().expect("cache key");
        assert_eq!(item["url"], format!("/v1/audio/{key}"));
        let audio = client()
            .get(server.url(item["url"].as_str().unwrap()))
            .bearer_auth(OWNER)
            .send()
            .await
            .unwrap();
        assert_eq!(audio.status(), 200, "{item}");
        let pcm = common::decode(&audio.bytes().await.unwrap(), format, 0);
        assert!(common::rms(&pcm) > 0.01, "item {index} is silent");
        let seconds = item["audio_seconds"].as_f64().unwrap();
        assert!(
            (pcm.duration_secs() - seconds).abs() < 0.1,
            "item {index}: decoded {} s, reported {seconds} s",
            pcm.duration_secs()
        );
    }

    // The same text again is answered by the cache: one synthesis saved.
    let again = client()
        .post(server.url("/v1/tts"))
        .bearer_auth(OWNER)
        .json(&json!({"text": "The first item is fine.", "voice": VOICE, "format": "wav"}))
        .send()
        .await
        .unwrap();
    assert!(common::header(&again, "x-cache").starts_with("hit"));

    // Another user cannot see the job; an admin can.
    assert_eq!(job(&server, STRANGER, &id).await.status(), 404);
    assert_eq!(job(&server, ADMIN, &id).await.status(), 200);
    server.shutdown();
}

#[tokio::test]
async fn batch_over_the_item_limit_or_empty_is_refused_naming_items() {
    let server = server();
    let item = json!({"text": "Hello."});
    for items in [vec![item; 6], vec![]] {
        let response = client()
            .post(server.url("/v1/batch"))
            .bearer_auth(OWNER)
            .json(&json!({ "items": items }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["field"], "items");
    }
    let unknown = job(&server, OWNER, "no-such-job").await;
    assert_eq!(unknown.status(), 404);
    server.shutdown();
}

#[tokio::test]
async fn a_job_cut_short_by_a_restart_finishes_after_it() {
    let storage = common::fresh_storage_dir();
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        storage_dir: storage.clone(),
        batch_concurrency: 1,
        ..config()
    };
    let texts = [
        "The first line of the script.",
        "The second line follows it.",
        "A third line comes after that.",
        "And the fourth line ends the scene.",
    ];
    let server = TestServer::start_as_configured(config.clone());
    let items: Vec<Value> = texts
        .iter()
        .map(|t| json!({"text": t, "voice": VOICE, "format": "opus"}))
        .collect();
    let created: Value = json_of(
        client()
            .post(server.url("/v1/batch"))
            .bearer_auth(OWNER)
            .json(&json!({ "items": items })),
    )
    .await;
    let id = created["id"].as_str().expect("job id").to_string();
    server.shutdown();

    // What the stopped server left on disk: the job, with items still to do.
    let stored: Value = serde_json::from_slice(
        &std::fs::read(storage.join("batches").join(format!("{id}.json"))).unwrap(),
    )
    .unwrap();
    let unfinished = stored["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["status"] != "done")
        .count();
    assert!(
        unfinished > 0,
        "the job finished before the restart: {stored}"
    );

    let restarted = TestServer::start_as_configured(config);
    let view = wait_completed(&restarted, &id).await;
    assert_eq!(view["done"], 4, "{view}");
    for item in view["items"].as_array().unwrap() {
        let audio = client()
            .get(restarted.url(item["url"].as_str().expect("download url")))
            .bearer_auth(OWNER)
            .send()
            .await
            .unwrap();
        assert_eq!(audio.status(), 200, "{item}");
        let pcm = common::decode(&audio.bytes().await.unwrap(), "opus", 0);
        assert!(common::rms(&pcm) > 0.01, "{item}");
    }
    // Other keys still cannot see it after the restart.
    assert_eq!(job(&restarted, STRANGER, &id).await.status(), 404);
    restarted.shutdown();
    let _ = std::fs::remove_dir_all(storage);
}
