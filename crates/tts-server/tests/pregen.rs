//! Pre-generation end to end: `tts-server pregen` fills the cache (the summary counts synthesized,
//! already cached and failed phrases, and a second run finds them cached), a server on the same
//! storage answers those phrases from disk, and the config's `pregen` list is warmed at start-up.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{client, json_of, piper_only_models_dir, TestServer, VOICE};
use serde_json::{json, Value};
use tts_server::pregen::PregenPhrase;
use tts_server::ServerConfig;

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tts-pregen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn pregen(phrases: &Path, storage: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tts-server"))
        .arg("pregen")
        .arg(phrases)
        .args([
            "--voice",
            VOICE,
            "--format",
            "mp3",
            "--max-text-chars",
            "80",
        ])
        .arg("--models-dir")
        .arg(piper_only_models_dir())
        .arg("--storage-dir")
        .arg(storage)
        .output()
        .expect("run tts-server pregen")
}

fn summary(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find(|line| line.starts_with("pregen:"))
        .unwrap_or_else(|| panic!("no summary line in {output:?}"))
        .to_string()
}

#[tokio::test]
async fn pregen_command_fills_the_cache_and_reports_each_outcome() {
    let dir = fresh_dir("cli");
    let storage = dir.join("storage");
    let phrases = dir.join("phrases.txt");
    let long =
        "This line is far too long for the limit that this test sets on purpose, so it fails.";
    std::fs::write(
        &phrases,
        format!("# greetings\nWelcome to the line.\n\nPlease hold.\n{long}\n"),
    )
    .unwrap();

    let first = pregen(&phrases, &storage);
    assert_eq!(
        summary(&first),
        "pregen: 3 phrases: 2 synthesized, 0 already cached, 1 failed"
    );
    // A failed phrase makes the run fail, so scripts notice.
    assert!(!first.status.success());

    std::fs::write(&phrases, "Welcome to the line.\nPlease hold.\n").unwrap();
    let second = pregen(&phrases, &storage);
    assert_eq!(
        summary(&second),
        "pregen: 2 phrases: 0 synthesized, 2 already cached, 0 failed"
    );
    assert!(second.status.success(), "{second:?}");

    // A server on the same storage answers the phrase from disk, without synthesis.
    let server = TestServer::start_as_configured(ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        models_dir: piper_only_models_dir(),
        storage_dir: storage,
        ..ServerConfig::default()
    });
    let response = client()
        .post(server.url("/v1/tts"))
        .json(&json!({"text": "Please hold.", "voice": VOICE, "format": "mp3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(common::header(&response, "x-cache"), "hit-disk");
    server.shutdown();
}

#[tokio::test]
async fn config_pregen_list_is_warmed_at_start_up() {
    let phrase = "Thank you for calling.";
    let server = TestServer::start(ServerConfig {
        models_dir: piper_only_models_dir(),
        pregen: vec![PregenPhrase::Item {
            text: phrase.into(),
            voice: Some(VOICE.into()),
            format: Some("wav".into()),
            speed: None,
        }],
        ..ServerConfig::default()
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stats: Value = json_of(client().get(server.url("/v1/cache/stats"))).await;
        if stats["stores"].as_u64() >= Some(1) && stats["in_flight"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "start-up pregen did not store: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let response = client()
        .post(server.url("/v1/tts"))
        .json(&json!({"text": phrase, "voice": VOICE, "format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(common::header(&response, "x-cache").starts_with("hit"));
    server.shutdown();
}
