//! End-to-end: every HTTP route and format against the real server and the real Piper weights.

mod common;

use common::{client, decode, header, json_of, rms, shared, THREE_SENTENCES, VOICE};
use serde_json::{json, Value};

const TEXT: &str = "Hello from the speech server. This is a second sentence.";

async fn tts(body: Value) -> reqwest::Response {
    client()
        .post(shared().url("/v1/tts"))
        .json(&body)
        .send()
        .await
        .expect("request")
}

/// Duration tolerance: codec priming/padding (mp3, opus) and frame rounding.
fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 0.08 + expected * 0.01,
        "{what}: {actual:.3} s, expected {expected:.3} s"
    );
}

#[tokio::test]
async fn whole_file_in_every_format_decodes_to_the_announced_duration_and_rate() {
    for format in ["wav", "mp3", "opus", "flac", "pcm", "mulaw"] {
        let response = tts(json!({"text": TEXT, "voice": VOICE, "format": format})).await;
        assert_eq!(response.status(), 200, "{format}");
        let content_type = header(&response, "content-type").to_string();
        let duration: f64 = header(&response, "x-audio-duration").parse().unwrap();
        let rate: u32 = header(&response, "x-sample-rate").parse().unwrap();
        let rtf: f64 = header(&response, "x-rtf").parse().unwrap();
        assert!(!header(&response, "x-request-id").is_empty());
        let bytes = response.bytes().await.unwrap();
        let pcm = decode(&bytes, format, rate);
        assert_eq!(pcm.sample_rate, rate, "{format}");
        assert_close(pcm.duration_secs(), duration, format);
        assert!(
            duration > 1.5,
            "{format}: {duration} s is too short for two sentences"
        );
        assert!(rms(&pcm) > 0.01, "{format}: silent");
        assert!(rtf > 0.0);
        let expected_type = match format {
            "wav" => "audio/wav",
            "mp3" => "audio/mpeg",
            "opus" => "audio/ogg",
            "flac" => "audio/flac",
            "pcm" => "audio/pcm",
            _ => "audio/basic",
        };
        assert!(
            content_type.starts_with(expected_type),
            "{format}: {content_type}"
        );
    }
}

#[tokio::test]
async fn format_defaults_to_mp3() {
    let response = tts(json!({"text": "Just one.", "voice": VOICE})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "audio/mpeg");
}

#[tokio::test]
async fn requested_sample_rate_is_delivered_with_the_same_duration() {
    let native = tts(json!({"text": TEXT, "voice": VOICE, "format": "wav"})).await;
    let native_duration: f64 = header(&native, "x-audio-duration").parse().unwrap();
    let response =
        tts(json!({"text": TEXT, "voice": VOICE, "format": "wav", "sample_rate": 16000})).await;
    assert_eq!(response.status(), 200);
    let pcm = decode(&response.bytes().await.unwrap(), "wav", 0);
    assert_eq!(pcm.sample_rate, 16_000);
    assert_close(pcm.duration_secs(), native_duration, "16 kHz wav");
}

#[tokio::test]
async fn loudness_normalisation_reaches_the_target() {
    let response =
        tts(json!({"text": TEXT, "voice": VOICE, "format": "wav", "normalize_loudness": true}))
            .await;
    assert_eq!(response.status(), 200);
    let pcm = decode(&response.bytes().await.unwrap(), "wav", 0);
    let lufs = tts_audio::loudness::integrated_lufs(&pcm).unwrap();
    assert!((lufs + 20.0).abs() < 1.0, "integrated loudness {lufs} LUFS");
}

#[tokio::test]
async fn streamed_file_in_every_format_equals_the_whole_file_duration() {
    let whole = tts(json!({"text": THREE_SENTENCES, "voice": VOICE, "format": "wav"})).await;
    let expected: f64 = header(&whole, "x-audio-duration").parse().unwrap();
    for format in ["wav", "mp3", "opus", "flac", "pcm"] {
        let response = client()
            .post(shared().url("/v1/tts/stream"))
            .json(&json!({"text": THREE_SENTENCES, "voice": VOICE, "format": format}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{format}");
        let rate: u32 = header(&response, "x-sample-rate").parse().unwrap();
        let bytes = response.bytes().await.unwrap();
        let pcm = decode(&bytes, format, rate);
        assert_eq!(pcm.sample_rate, rate, "{format}");
        assert_close(pcm.duration_secs(), expected, &format!("streamed {format}"));
    }
}

#[tokio::test]
async fn streamed_wav_has_one_header_and_no_click_at_sentence_joins() {
    let response = client()
        .post(shared().url("/v1/tts/stream"))
        .json(&json!({"text": THREE_SENTENCES, "voice": VOICE, "format": "wav"}))
        .send()
        .await
        .unwrap();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.windows(4).filter(|w| w == b"RIFF").count(), 1);
    let pcm = decode(&bytes, "wav", 0);
    // The joins are the inserted pauses (runs of exact zeros, 150 ms by default); the audio on both
    // sides of each must start from silence, or the join clicks.
    let rate = pcm.sample_rate as usize;
    let min_run = rate / 10;
    let edge = rate / 1000;
    let samples = &pcm.samples;
    let mut joins = 0;
    let mut start = None;
    for (i, &s) in samples.iter().enumerate() {
        match (s == 0.0, start) {
            (true, None) => start = Some(i),
            (false, Some(begin)) => {
                if i - begin >= min_run && begin > 0 {
                    joins += 1;
                    let before = samples[begin.saturating_sub(edge)..begin]
                        .iter()
                        .fold(0.0f32, |m, v| m.max(v.abs()));
                    let after = samples[i..(i + edge).min(samples.len())]
                        .iter()
                        .fold(0.0f32, |m, v| m.max(v.abs()));
                    assert!(
                        before < 0.05 && after < 0.05,
                        "click at the join at {begin}: {before} / {after}"
                    );
                }
                start = None;
            }
            _ => {}
        }
    }
    assert!(
        joins >= 2,
        "found {joins} sentence joins in a three-sentence stream"
    );
}

#[tokio::test]
async fn sse_sends_audio_deltas_then_done_with_usage() {
    let response = client()
        .post(shared().url("/v1/tts/sse"))
        .json(&json!({"text": TEXT, "voice": VOICE, "format": "mp3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("text/event-stream"));
    let body = response.text().await.unwrap();
    let events = parse_sse(&body);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.len() >= 2, "{names:?}");
    assert!(
        names[..names.len() - 1]
            .iter()
            .all(|n| *n == "speech.audio.delta"),
        "{names:?}"
    );
    assert_eq!(names.last(), Some(&"speech.audio.done"));

    use base64::Engine as _;
    let mut audio = Vec::new();
    for (_, data) in &events[..events.len() - 1] {
        assert_eq!(data["type"], "speech.audio.delta");
        let chunk = base64::engine::general_purpose::STANDARD
            .decode(data["audio"].as_str().unwrap())
            .unwrap();
        audio.extend(chunk);
    }
    let done = &events.last().unwrap().1;
    assert_eq!(done["usage"]["input_tokens"], TEXT.chars().count());
    let announced = done["audio_duration"].as_f64().unwrap();
    assert!(done["rtf"].as_f64().unwrap() > 0.0);
    let pcm = decode(&audio, "mp3", 0);
    assert_close(pcm.duration_secs(), announced, "sse mp3");
}

/// `(event name, JSON data)` of each event in a text/event-stream body.
pub fn parse_sse(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = Some(value.trim().to_string());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                }
            }
            Some((name?, serde_json::from_str(&data).ok()?))
        })
        .collect()
}

#[tokio::test]
async fn openai_speech_accepts_the_sdk_request_shapes() {
    let server = shared();
    // The minimal SDK call: OpenAI model and voice names, mp3 by default.
    let response = client()
        .post(server.url("/v1/audio/speech"))
        .json(&json!({"model": "tts-1", "input": TEXT, "voice": "alloy", "instructions": "calm"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "audio/mpeg");
    let pcm = decode(&response.bytes().await.unwrap(), "mp3", 0);
    assert!(pcm.duration_secs() > 1.5);

    // Voice as an object, our own model name, raw PCM (24 kHz s16le like OpenAI's).
    let response = client()
        .post(server.url("/v1/audio/speech"))
        .json(&json!({"model": "piper", "input": TEXT, "voice": {"id": VOICE}, "response_format": "pcm", "speed": 1.25}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "audio/pcm;rate=24000;channels=1"
    );
    let fast = decode(&response.bytes().await.unwrap(), "pcm", 24_000);
    assert!(fast.duration_secs() > 1.0 && fast.duration_secs() < pcm.duration_secs());

    // stream_format sse.
    let response = client()
        .post(server.url("/v1/audio/speech"))
        .json(&json!({"model": "gpt-4o-mini-tts", "input": TEXT, "voice": "nova", "response_format": "wav", "stream_format": "sse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = parse_sse(&response.text().await.unwrap());
    assert_eq!(
        events.last().map(|(n, _)| n.as_str()),
        Some("speech.audio.done")
    );
    assert!(
        events.last().unwrap().1["usage"]["total_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn voices_models_health_ready_and_openapi_answer() {
    let server = shared();
    let voices: Value = json_of(client().get(server.url("/v1/voices"))).await;
    let list = voices["voices"].as_array().unwrap();
    let joe = list
        .iter()
        .find(|v| v["id"] == VOICE)
        .expect("piper voice listed");
    assert_eq!(joe["model"], "piper");
    assert_eq!(joe["sample_rate"], 22050);
    assert_eq!(voices["default_voice"], VOICE);
    assert_eq!(voices["openai_aliases"]["alloy"], VOICE);

    let models: Value = json_of(client().get(server.url("/v1/models"))).await;
    assert_eq!(models["object"], "list");
    assert!(models["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "piper"));

    let health = client().get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: Value = json_of(client().get(server.url("/ready"))).await;
    assert_eq!(ready["status"], "ready");

    let openapi: Value = json_of(client().get(server.url("/openapi.json"))).await;
    for path in [
        "/v1/tts",
        "/v1/tts/stream",
        "/v1/tts/sse",
        "/v1/tts/ws",
        "/v1/audio/speech",
        "/v1/voices",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from openapi.json"
        );
    }
}

#[tokio::test]
async fn metrics_count_requests_characters_and_latency() {
    let server = shared();
    let response = tts(json!({"text": "Count me.", "voice": VOICE, "format": "wav"})).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "tts_requests_total",
        "tts_characters_total",
        "tts_audio_milliseconds_total",
        "tts_ttfa_seconds_count",
        "tts_latency_seconds_count",
        "tts_rtf_count",
        "tts_queue_wait_seconds_count",
        "tts_queue_depth",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(common::metric_sum(&metrics, "tts_characters_total") >= 9.0);
}
