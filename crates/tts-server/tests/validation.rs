//! End-to-end: every invalid request is a 4xx with a JSON error naming the field, never a 500.

mod common;

use common::{client, shared, VOICE};
use serde_json::{json, Value};

async fn expect_error(
    route: &str,
    body: reqwest::Body,
    content_type: &str,
    status: u16,
    code: &str,
    field: Option<&str>,
) {
    let response = client()
        .post(shared().url(route))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), status, "{route} {code}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{route}: {body}");
    assert_eq!(body["error"]["field"].as_str(), field, "{route}: {body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
}

async fn expect_json_error(route: &str, body: Value, code: &str, field: &str) {
    expect_error(
        route,
        body.to_string().into(),
        "application/json",
        400,
        code,
        Some(field),
    )
    .await;
}

#[tokio::test]
async fn tts_body_errors_name_the_field() {
    let long = "a".repeat(5_001);
    let cases = [
        (json!({"text": "", "voice": VOICE}), "empty_text", "text"),
        (
            json!({"text": "   \n", "voice": VOICE}),
            "empty_text",
            "text",
        ),
        (
            json!({"text": long, "voice": VOICE}),
            "text_too_long",
            "text",
        ),
        (
            json!({"text": "Hi.", "voice": "nobody"}),
            "unknown_voice",
            "voice",
        ),
        (
            json!({"text": "Hi.", "voice": VOICE, "model": "tacotron"}),
            "unknown_model",
            "model",
        ),
        (
            json!({"text": "Hi.", "voice": VOICE, "format": "aac"}),
            "unsupported_format",
            "format",
        ),
        (
            json!({"text": "Hi.", "voice": VOICE, "speed": 0.1}),
            "invalid_speed",
            "speed",
        ),
        (
            json!({"text": "Hi.", "voice": VOICE, "speed": 4.5}),
            "invalid_speed",
            "speed",
        ),
        (
            json!({"text": "Hi.", "voice": VOICE, "sample_rate": 12345}),
            "unsupported_sample_rate",
            "sample_rate",
        ),
        (
            json!({"text": "Hi.", "voice": VOICE, "format": "mulaw", "sample_rate": 16000}),
            "unsupported_sample_rate",
            "sample_rate",
        ),
        (
            json!({"text": "Hi.", "voice": VOICE, "bitrate": 1000}),
            "invalid_bitrate",
            "bitrate",
        ),
        (json!({"voice": VOICE}), "missing_field", "text"),
        (
            json!({"text": "Hi.", "speed": "fast"}),
            "invalid_field",
            "speed",
        ),
        (
            json!({"text": "Hi.", "fromat": "mp3"}),
            "unknown_field",
            "fromat",
        ),
        (json!({"text": 5}), "invalid_field", "text"),
    ];
    for (body, code, field) in cases {
        expect_json_error("/v1/tts", body, code, field).await;
    }
}

#[tokio::test]
async fn a_voice_of_another_model_is_rejected_on_the_voice_field() {
    // With Kokoro loaded this is a mismatch, without it an unknown voice: a 400 on `voice` either way.
    let response = client()
        .post(shared().url("/v1/tts"))
        .json(&json!({"text": "Hi.", "voice": "jf_alpha", "model": "piper"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "voice");
}

#[tokio::test]
async fn malformed_json_and_wrong_content_type_are_client_errors() {
    for route in [
        "/v1/tts",
        "/v1/tts/stream",
        "/v1/tts/sse",
        "/v1/audio/speech",
    ] {
        expect_error(
            route,
            "{\"text\": ".into(),
            "application/json",
            400,
            "malformed_json",
            None,
        )
        .await;
        expect_error(
            route,
            "text=hello".into(),
            "text/plain",
            415,
            "unsupported_media_type",
            None,
        )
        .await;
    }
}

#[tokio::test]
async fn streaming_routes_validate_before_streaming() {
    for route in ["/v1/tts/stream", "/v1/tts/sse"] {
        expect_json_error(
            route,
            json!({"text": "", "voice": VOICE}),
            "empty_text",
            "text",
        )
        .await;
        expect_json_error(
            route,
            json!({"text": "Hi.", "voice": "nobody"}),
            "unknown_voice",
            "voice",
        )
        .await;
    }
}

#[tokio::test]
async fn openai_route_errors_use_openai_field_names() {
    let long = "a".repeat(4_097);
    let cases = [
        (
            json!({"model": "tts-1", "input": long, "voice": "alloy"}),
            "text_too_long",
            "input",
        ),
        (
            json!({"model": "tts-1", "input": "", "voice": "alloy"}),
            "empty_text",
            "input",
        ),
        (
            json!({"model": "tts-1", "input": "Hi.", "voice": "alloy", "response_format": "aac"}),
            "unsupported_format",
            "response_format",
        ),
        (
            json!({"model": "tts-1", "input": "Hi.", "voice": "alloy", "stream_format": "ws"}),
            "invalid_stream_format",
            "stream_format",
        ),
        (
            json!({"model": "gpt-5", "input": "Hi.", "voice": "alloy"}),
            "unknown_model",
            "model",
        ),
        (
            json!({"model": "tts-1", "input": "Hi.", "voice": "alloy", "speed": 4.5}),
            "invalid_speed",
            "speed",
        ),
        (
            json!({"model": "tts-1", "input": "Hi.", "voice": "somebody"}),
            "unknown_voice",
            "voice",
        ),
        (
            json!({"model": "tts-1", "voice": "alloy"}),
            "missing_field",
            "input",
        ),
    ];
    for (body, code, field) in cases {
        expect_json_error("/v1/audio/speech", body, code, field).await;
    }
}

#[tokio::test]
async fn websocket_settings_are_validated_before_the_upgrade() {
    let response = client()
        .get(shared().url("/v1/tts/ws?voice=nobody"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "voice");

    let plain = client()
        .get(shared().url("/v1/tts/ws"))
        .send()
        .await
        .unwrap();
    assert!(plain.status().is_client_error());
}

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let response = client()
        .get(shared().url("/v2/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}
