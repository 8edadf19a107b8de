//! End-to-end: the voice library on a real in-process server with the real weights. Samples are
//! real speech (the Piper voice, through the server itself) encoded at test time into WAV, MP3,
//! FLAC, Opus (tts-audio) and Ogg Vorbis (ffmpeg); each rejection gets its own malformed sample.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{client, decode, json_of, rms, TestServer, THREE_SENTENCES, VOICE};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use tts_audio::{AudioFormat, Pcm};
use tts_server::ServerConfig;

/// A named blend of the server's config.
const NARRATOR: &str = "narrator";
const NARRATOR_MIX: &str = "jf_alpha(2)+jm_kumo(1)";

/// One server per binary with a small fitting budget, so uploads stay quick.
fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        TestServer::start(ServerConfig {
            models_dir: common::models_dir(),
            voice_fit_secs: 1.0,
            voice_fit_iterations: 2,
            voice_blends: [(NARRATOR.to_string(), NARRATOR_MIX.to_string())].into(),
            ..ServerConfig::default()
        })
    })
}

/// Uploads share one fitting slot; running these tests one at a time keeps them from queueing
/// into the server's in-flight upload limit.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn voices_dir() -> PathBuf {
    server().state.config.storage_dir.join("voices")
}

/// Names in the voices directory that are not finished voices (temp dirs of uploads).
fn temp_entries() -> Vec<String> {
    std::fs::read_dir(voices_dir())
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Real speech from the Piper voice at 22.05 kHz.
async fn speech(text: &str) -> Pcm {
    let response = client()
        .post(server().url("/v1/tts"))
        .json(&json!({"text": text, "voice": VOICE, "format": "wav"}))
        .send()
        .await
        .expect("tts request");
    assert_eq!(response.status(), 200);
    decode(&response.bytes().await.expect("body"), "wav", 0)
}

/// About 10 s of speech.
async fn sample() -> Pcm {
    static SAMPLE: tokio::sync::OnceCell<Pcm> = tokio::sync::OnceCell::const_new();
    SAMPLE
        .get_or_init(|| async {
            let pcm = speech(THREE_SENTENCES).await;
            assert!(
                (7.0..25.0).contains(&pcm.duration_secs()),
                "sample is {} s",
                pcm.duration_secs()
            );
            pcm
        })
        .await
        .clone()
}

fn encode(pcm: &Pcm, format: AudioFormat) -> Vec<u8> {
    tts_audio::encode(pcm, format, None).expect("encode")
}

/// Re-encodes a WAV with ffmpeg (Ogg Vorbis, stereo), which tts-audio does not write.
fn ffmpeg(wav: &[u8], args: &[&str], ext: &str) -> Vec<u8> {
    let dir = tempdir();
    let input = dir.join("in.wav");
    let output = dir.join(format!("out.{ext}"));
    std::fs::write(&input, wav).unwrap();
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&input)
        .args(args)
        .arg(&output)
        .status()
        .expect("ffmpeg (apt-get install ffmpeg)");
    assert!(status.success(), "ffmpeg {args:?} failed");
    let bytes = std::fs::read(&output).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    bytes
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tts-voices-test-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn form(file: Vec<u8>, filename: &str, name: &str) -> Form {
    Form::new()
        .part("file", Part::bytes(file).file_name(filename.to_string()))
        .text("name", name.to_string())
        .text("consent", "true")
}

async fn upload(form: Form) -> reqwest::Response {
    client()
        .post(server().url("/v1/voices"))
        .multipart(form)
        .send()
        .await
        .expect("upload request")
}

/// Uploads and expects 201; returns the voice JSON.
async fn upload_ok(file: Vec<u8>, filename: &str, name: &str) -> Value {
    let response = upload(form(file, filename, name).text("language", "en-US")).await;
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 201, "{filename}: {body}");
    body
}

async fn listed_voices() -> Vec<Value> {
    let list: Value = json_of(client().get(server().url("/v1/voices"))).await;
    list["voices"].as_array().unwrap().clone()
}

async fn delete(id: &str) -> reqwest::Response {
    client()
        .delete(server().url(&format!("/v1/voices/{id}")))
        .send()
        .await
        .unwrap()
}

fn assert_stored(id: &str, ext: &str) {
    let dir = voices_dir().join(id);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let original = format!("original.{ext}");
    let mut expected = vec![
        original.as_str(),
        "processed.wav",
        "style.npy",
        "voice.json",
    ];
    expected.sort();
    assert_eq!(names, expected, "{id}");
    let stored: Value =
        serde_json::from_slice(&std::fs::read(dir.join("voice.json")).unwrap()).unwrap();
    assert_eq!(stored["id"], id);
    assert_eq!(stored["embedding"].as_array().unwrap().len(), 256);
    assert_eq!(stored["consent"], true);
    let processed = tts_audio::decode(&std::fs::read(dir.join("processed.wav")).unwrap(), None)
        .expect("processed.wav decodes");
    assert_eq!(processed.sample_rate, 24_000);
    // -20 LUFS, unless reaching it would push the true peak over the -1 dBTP ceiling: then the
    // gain stops at the ceiling (speech with a high crest factor), never clipping.
    let lufs = tts_audio::loudness::integrated_lufs(&processed).unwrap();
    let peak = tts_audio::loudness::true_peak_dbtp(&processed).unwrap();
    assert!(lufs < -19.5, "processed clip at {lufs} LUFS");
    assert!(
        (lufs + 20.0).abs() < 1.0 || (peak + 1.0).abs() < 0.5,
        "processed clip at {lufs} LUFS with true peak {peak} dBTP"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_in_each_format_creates_a_listed_kokoro_voice_stored_on_disk() {
    let _serial = SERIAL.lock().await;
    let pcm = sample().await;
    let wav = encode(&pcm, AudioFormat::Wav);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("sample.wav", wav.clone(), "wav"),
        ("sample.mp3", encode(&pcm, AudioFormat::Mp3), "mp3"),
        ("sample.flac", encode(&pcm, AudioFormat::Flac), "flac"),
        ("sample.opus", encode(&pcm, AudioFormat::Opus), "opus"),
        (
            "sample.ogg",
            ffmpeg(&wav, &["-c:a", "libvorbis", "-q:a", "4"], "ogg"),
            "ogg",
        ),
        // More than one channel is downmixed, not refused.
        ("stereo.wav", ffmpeg(&wav, &["-ac", "2"], "wav"), "wav"),
    ];
    let mut ids = Vec::new();
    for (filename, bytes, ext) in cases {
        let voice = upload_ok(bytes, filename, &format!("Joe {filename}")).await;
        let id = voice["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("joe-"), "{id}");
        assert_eq!(voice["kind"], "cloned");
        assert_eq!(voice["models"], json!(["kokoro"]));
        assert_eq!(voice["language"], "en-US");
        assert_eq!(voice["original"]["format"], ext);
        let duration = voice["duration"].as_f64().unwrap();
        assert!(
            (duration - pcm.duration_secs()).abs() < 1.5,
            "{filename}: {duration} s"
        );
        assert_eq!(voice["digest"].as_str().unwrap().len(), 64);
        assert_stored(&id, ext);

        let got: Value = json_of(client().get(server().url(&format!("/v1/voices/{id}")))).await;
        assert_eq!(got["id"], id.as_str());
        assert_eq!(got["name"], format!("Joe {filename}"));
        ids.push(id);
    }
    let listed = listed_voices().await;
    for id in &ids {
        let entry = listed
            .iter()
            .find(|v| v["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not listed"));
        assert_eq!(entry["kind"], "cloned");
        assert_eq!(entry["models"], json!(["kokoro"]));
    }
    assert!(listed
        .iter()
        .any(|v| v["id"] == "jf_alpha" && v["kind"] == "stock"));
    assert!(temp_entries().is_empty(), "{:?}", temp_entries());
    for id in ids {
        assert_eq!(delete(&id).await.status(), 200);
    }
}

async fn assert_rejected(form: Form, status: u16, code: &str, field: &str) {
    let response = upload(form).await;
    let got = response.status().as_u16();
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(got, status, "{code}: {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_bad_upload_is_refused_with_a_named_error_and_leaves_nothing() {
    let _serial = SERIAL.lock().await;
    let pcm = sample().await;
    let before = listed_voices().await.len();
    let wav = |pcm: &Pcm| encode(pcm, AudioFormat::Wav);

    // Too large: over the 20 MiB default.
    let big = vec![0u8; 21 * 1024 * 1024];
    assert_rejected(form(big, "big.wav", "big"), 413, "file_too_large", "file").await;
    // Not audio.
    let text = b"this is a text file, not a recording".repeat(100);
    assert_rejected(
        form(text, "notes.wav", "text"),
        400,
        "undecodable_audio",
        "file",
    )
    .await;
    // Audio that is cut off mid-file.
    let mut flac = encode(&pcm, AudioFormat::Flac);
    flac.truncate(flac.len() / 2);
    assert_rejected(
        form(flac, "cut.flac", "cut"),
        400,
        "undecodable_audio",
        "file",
    )
    .await;
    // Too short: one short sentence.
    let short = speech("The bus leaves at six.").await;
    assert_rejected(
        form(wav(&short), "short.wav", "short"),
        400,
        "audio_too_short",
        "file",
    )
    .await;
    // Too long: the paragraph four times.
    let long = Pcm::new(pcm.samples.repeat(4), pcm.sample_rate);
    assert_rejected(
        form(wav(&long), "long.wav", "long"),
        400,
        "audio_too_long",
        "file",
    )
    .await;
    // Telephone-band source.
    let narrow = tts_audio::resample(&pcm, 8_000).unwrap();
    assert_rejected(
        form(wav(&narrow), "phone.wav", "phone"),
        400,
        "sample_rate_too_low",
        "file",
    )
    .await;
    // Mostly silence: a short sentence, then twenty seconds of nothing.
    let mut quiet = short.samples.clone();
    quiet.extend(std::iter::repeat_n(0.0, 20 * short.sample_rate as usize));
    assert_rejected(
        form(
            wav(&Pcm::new(quiet, short.sample_rate)),
            "quiet.wav",
            "quiet",
        ),
        400,
        "mostly_silence",
        "file",
    )
    .await;
    // Heavy clipping: the speech driven 20× into full scale.
    let clipped = Pcm::new(
        pcm.samples
            .iter()
            .map(|s| (s * 20.0).clamp(-1.0, 1.0))
            .collect(),
        pcm.sample_rate,
    );
    assert_rejected(
        form(wav(&clipped), "loud.wav", "loud"),
        400,
        "audio_clipped",
        "file",
    )
    .await;
    // Consent missing or not `true`.
    let no_consent = Form::new()
        .part("file", Part::bytes(wav(&pcm)).file_name("a.wav"))
        .text("name", "x");
    assert_rejected(no_consent, 400, "consent_required", "consent").await;
    let false_consent = Form::new()
        .part("file", Part::bytes(wav(&pcm)).file_name("a.wav"))
        .text("name", "x")
        .text("consent", "false");
    assert_rejected(false_consent, 400, "consent_required", "consent").await;
    // No name, no file, an unknown part.
    let no_name = Form::new()
        .part("file", Part::bytes(wav(&pcm)).file_name("a.wav"))
        .text("consent", "true");
    assert_rejected(no_name, 400, "invalid_name", "name").await;
    let no_file = Form::new().text("name", "x").text("consent", "true");
    assert_rejected(no_file, 400, "missing_file", "file").await;
    assert_rejected(
        form(wav(&pcm), "a.wav", "x").text("speaker", "y"),
        400,
        "unknown_field",
        "speaker",
    )
    .await;
    assert_rejected(
        form(wav(&pcm), "a.wav", "x").text("language", "en US; rm -rf"),
        400,
        "invalid_language",
        "language",
    )
    .await;
    // Not multipart at all.
    let response = client()
        .post(server().url("/v1/voices"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);

    assert_eq!(listed_voices().await.len(), before, "no voice was added");
    assert!(temp_entries().is_empty(), "{:?}", temp_entries());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_uploads_each_get_their_own_voice() {
    let _serial = SERIAL.lock().await;
    let wav = encode(&sample().await, AudioFormat::Wav);
    let uploads = (0..3).map(|i| {
        let wav = wav.clone();
        tokio::spawn(async move { upload_ok(wav, "same.wav", &format!("Same {i}")).await })
    });
    let mut ids = Vec::new();
    for handle in uploads {
        let voice = handle.await.expect("upload task");
        ids.push(voice["id"].as_str().unwrap().to_string());
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "{ids:?}");
    let listed = listed_voices().await;
    for id in &ids {
        assert!(listed.iter().any(|v| v["id"] == id.as_str()), "{id}");
        assert_stored(id, "wav");
    }
    assert!(temp_entries().is_empty(), "{:?}", temp_entries());
    for id in ids {
        assert_eq!(delete(&id).await.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn uploaded_voice_speaks_on_tts_streaming_and_openai_routes() {
    let _serial = SERIAL.lock().await;
    let voice = upload_ok(
        encode(&sample().await, AudioFormat::Flac),
        "joe.flac",
        "Speaker",
    )
    .await;
    let id = voice["id"].as_str().unwrap().to_string();
    let text = "A cloned voice reads this sentence.";
    for (route, body) in [
        (
            "/v1/tts",
            json!({"text": text, "voice": id, "format": "wav"}),
        ),
        (
            "/v1/tts/stream",
            json!({"text": text, "voice": id, "format": "wav"}),
        ),
        (
            "/v1/audio/speech",
            json!({"model": "tts-1", "input": text, "voice": id, "response_format": "wav"}),
        ),
    ] {
        let response = client()
            .post(server().url(route))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        assert_eq!(
            status,
            200,
            "{route}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        );
        let pcm = decode(&bytes, "wav", 0);
        assert_eq!(pcm.sample_rate, 24_000, "{route}: Kokoro's rate");
        assert!(
            pcm.duration_secs() > 1.0,
            "{route}: {} s",
            pcm.duration_secs()
        );
        assert!(rms(&pcm) > 0.01, "{route}: silent");
    }
    // A cloned voice also blends with stock Kokoro voices.
    let response = client()
        .post(server().url("/v1/tts"))
        .json(&json!({"text": text, "voice": format!("{id}(1)+jf_alpha(1)"), "format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "blend with a stock voice");
    let pcm = decode(&response.bytes().await.unwrap(), "wav", 0);
    assert!(rms(&pcm) > 0.01, "blend: silent");
    assert_eq!(delete(&id).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_voice_is_gone_everywhere_and_stock_voices_cannot_be_deleted() {
    let _serial = SERIAL.lock().await;
    let voice = upload_ok(
        encode(&sample().await, AudioFormat::Mp3),
        "gone.mp3",
        "Gone",
    )
    .await;
    let id = voice["id"].as_str().unwrap().to_string();
    assert!(voices_dir().join(&id).is_dir());
    // Speak with it twice: the second answer comes from the cache.
    let mut cache_key = String::new();
    for expected in ["miss", "hit"] {
        let response = client()
            .post(server().url("/v1/tts"))
            .json(&json!({"text": "Soon to be forgotten.", "voice": id, "format": "mp3"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let status = common::header(&response, "x-cache").to_string();
        assert!(status.starts_with(expected), "{expected}: X-Cache {status}");
        cache_key = common::header(&response, "x-cache-key").to_string();
    }
    let cached = client()
        .get(server().url(&format!("/v1/audio/{cache_key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 200);

    let response = delete(&id).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["deleted"], true);
    assert!(
        body["cache_entries_purged"].as_u64().unwrap() >= 1,
        "{body}"
    );
    let cached = client()
        .get(server().url(&format!("/v1/audio/{cache_key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 404, "the voice's cached audio is purged");
    assert!(!voices_dir().join(&id).exists());
    assert!(!listed_voices().await.iter().any(|v| v["id"] == id.as_str()));

    let got = client()
        .get(server().url(&format!("/v1/voices/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 404);
    let tts = client()
        .post(server().url("/v1/tts"))
        .json(&json!({"text": "Hello.", "voice": id, "format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(tts.status(), 400);
    let body: Value = tts.json().await.unwrap();
    assert_eq!(body["error"]["field"], "voice");

    let again = delete(&id).await;
    assert_eq!(again.status(), 404);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "voice_not_found");
    let stock = delete("jf_alpha").await;
    assert_eq!(stock.status(), 400);
    // Ids that try to leave the voices directory never reach the file system.
    for bad in ["..", "..%2F..%2Fetc", ".tmp-x", "%2E%2E"] {
        let response = delete(bad).await;
        assert!(
            response.status() == 400 || response.status() == 404,
            "{bad}: {}",
            response.status()
        );
    }
    assert!(voices_dir().is_dir());
    assert!(Path::new(&server().state.config.storage_dir).is_dir());
}

async fn wav_of(voice: &str, text: &str) -> Vec<u8> {
    let response = client()
        .post(server().url("/v1/tts"))
        .json(&json!({"text": text, "voice": voice, "format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{voice}");
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_blend_is_listed_and_speaks_as_its_mix() {
    let listed = listed_voices().await;
    let narrator = listed
        .iter()
        .find(|v| v["id"] == NARRATOR)
        .expect("the blend is listed");
    assert_eq!(narrator["kind"], "blend");
    assert_eq!(narrator["blend"], NARRATOR_MIX);
    assert_eq!(narrator["model"], "kokoro");
    assert_eq!(narrator["language"], "ja");
    let kinds: std::collections::BTreeSet<&str> =
        listed.iter().filter_map(|v| v["kind"].as_str()).collect();
    assert!(
        kinds.contains("stock") && kinds.contains("blend"),
        "{kinds:?}"
    );
    let one: Value = json_of(client().get(server().url(&format!("/v1/voices/{NARRATOR}")))).await;
    assert_eq!(one["kind"], "blend");

    let text = "The narrator reads the opening line.";
    let named = wav_of(NARRATOR, text).await;
    let mixed = wav_of(NARRATOR_MIX, text).await;
    assert_eq!(
        named, mixed,
        "the named blend must sound exactly like its mix"
    );
    assert_ne!(named, wav_of("jf_alpha", text).await);
    assert!(rms(&decode(&named, "wav", 0)) > 0.01);
    // A blend of the blend resolves too.
    let nested = wav_of(&format!("{NARRATOR}(1)+jm_kumo(1)"), text).await;
    assert!(rms(&decode(&nested, "wav", 0)) > 0.01);

    let refused = delete(NARRATOR).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "configured_blend");
}

#[tokio::test]
async fn a_blend_of_single_speaker_voices_stops_the_start_naming_it() {
    let config = ServerConfig {
        models_dir: common::piper_only_models_dir(),
        storage_dir: common::fresh_storage_dir(),
        voice_blends: [("duet".to_string(), format!("{VOICE}(1)+{VOICE}(2)"))].into(),
        ..ServerConfig::default()
    };
    let storage = config.storage_dir.clone();
    let err = tts_server::build_state(config)
        .await
        .err()
        .expect("a Piper blend must be refused");
    let message = err.to_string();
    assert!(message.contains("\"duet\""), "{message}");
    assert!(message.contains("only Kokoro voices"), "{message}");
    let _ = std::fs::remove_dir_all(storage);
}
