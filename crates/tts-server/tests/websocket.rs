//! End-to-end: the WebSocket session with incremental text, several utterances and errors.

mod common;

use std::time::Duration;

use common::{decode, rms, shared, VOICE};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(query: &str) -> Socket {
    let (socket, _) =
        tokio_tungstenite::connect_async(shared().ws_url(&format!("/v1/tts/ws?{query}")))
            .await
            .expect("websocket connect");
    socket
}

async fn send(socket: &mut Socket, value: Value) {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

enum Frame {
    Event(Value),
    Audio(Vec<u8>),
    Closed,
}

async fn next(socket: &mut Socket) -> Frame {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("server answered within the test's patience");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Frame::Event(serde_json::from_str(&text).unwrap())
            }
            Some(Ok(Message::Binary(bytes))) => return Frame::Audio(bytes.to_vec()),
            Some(Ok(Message::Close(_))) | None => return Frame::Closed,
            Some(Ok(_)) => continue,
            Some(Err(err)) => panic!("websocket error: {err}"),
        }
    }
}

/// Reads until an event of type `until`, returning the events and the audio bytes seen.
async fn read_until(socket: &mut Socket, until: &str) -> (Vec<Value>, Vec<u8>) {
    let mut events = Vec::new();
    let mut audio = Vec::new();
    loop {
        match next(socket).await {
            Frame::Event(event) => {
                let done = event["type"] == until;
                events.push(event);
                if done {
                    return (events, audio);
                }
            }
            Frame::Audio(bytes) => audio.extend(bytes),
            Frame::Closed => panic!("closed before {until}; events {events:?}"),
        }
    }
}

#[tokio::test]
async fn completed_sentences_are_spoken_before_flush_and_utterances_repeat() {
    let mut socket = connect(&format!("voice={VOICE}&format=pcm")).await;

    // "How" is incomplete; "Hello there." is complete and must be spoken without a flush.
    send(
        &mut socket,
        json!({"type": "text", "text": "Hello there. How"}),
    )
    .await;
    let (events, audio) = read_until(&mut socket, "sentence_done").await;
    assert_eq!(events[0]["type"], "audio_start");
    assert_eq!(events[0]["format"], "pcm");
    let rate = events[0]["sample_rate"].as_u64().unwrap() as u32;
    assert_eq!(events.last().unwrap()["text"], "Hello there.");
    assert!(!audio.is_empty(), "audio came before the flush");
    let mut utterance_audio = audio;

    send(
        &mut socket,
        json!({"type": "text", "text": " are you today? I am"}),
    )
    .await;
    send(&mut socket, json!({"type": "text", "text": " fine."})).await;
    send(&mut socket, json!({"type": "flush"})).await;
    let (events, audio) = read_until(&mut socket, "done").await;
    utterance_audio.extend(audio);
    let spoken: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "sentence_done")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(spoken, vec!["How are you today?", "I am fine."]);
    let done = events.last().unwrap();
    assert_eq!(done["sentences"], 3);
    assert_eq!(done["utterance"], 1);
    let pcm = decode(&utterance_audio, "pcm", rate);
    let announced = done["audio_seconds"].as_f64().unwrap();
    assert!(
        (pcm.duration_secs() - announced).abs() < 0.05,
        "{} vs {announced}",
        pcm.duration_secs()
    );
    assert!(rms(&pcm) > 0.01);

    // A second utterance on the same connection starts afresh.
    send(
        &mut socket,
        json!({"type": "text", "text": "Second utterance."}),
    )
    .await;
    send(&mut socket, json!({"type": "flush"})).await;
    let (events, audio) = read_until(&mut socket, "done").await;
    assert_eq!(events[0]["type"], "audio_start");
    assert_eq!(events[0]["utterance"], 2);
    assert!(!audio.is_empty());

    send(&mut socket, json!({"type": "close"})).await;
    assert!(matches!(next(&mut socket).await, Frame::Closed));
}

#[tokio::test]
async fn each_utterance_is_one_valid_file_in_a_container_format() {
    let mut socket = connect(&format!("voice={VOICE}&format=wav&sample_rate=16000")).await;
    send(
        &mut socket,
        json!({"type": "text", "text": "One sentence here. And another one."}),
    )
    .await;
    send(&mut socket, json!({"type": "flush"})).await;
    let (events, audio) = read_until(&mut socket, "done").await;
    assert_eq!(events[0]["sample_rate"], 16000);
    let pcm = decode(&audio, "wav", 0);
    assert_eq!(pcm.sample_rate, 16_000);
    let announced = events.last().unwrap()["audio_seconds"].as_f64().unwrap();
    assert!((pcm.duration_secs() - announced).abs() < 0.05);
}

#[tokio::test]
async fn bad_messages_get_error_events_and_the_session_continues() {
    let mut socket = connect(&format!("voice={VOICE}")).await;
    socket.send(Message::Text("not json".into())).await.unwrap();
    let Frame::Event(error) = next(&mut socket).await else {
        panic!("expected an error event");
    };
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "malformed_json");

    send(&mut socket, json!({"type": "dance"})).await;
    let Frame::Event(error) = next(&mut socket).await else {
        panic!("expected an error event");
    };
    assert_eq!(error["type"], "error");

    send(&mut socket, json!({"type": "text", "text": "Still here."})).await;
    send(&mut socket, json!({"type": "close"})).await;
    let (events, audio) = read_until(&mut socket, "done").await;
    assert!(events.iter().any(|e| e["type"] == "sentence_done"));
    assert!(!audio.is_empty());
}
