//! End-to-end: the WebSocket session with incremental text, several utterances and errors.

mod common;

use std::time::Duration;

use common::{client, decode, rms, shared, VOICE};
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

const WS_KEY: &str = "tts_ws_cache_usage_key";

/// A Piper-only server with one user key allowed `burst` requests (then one a minute).
fn keyed_server(burst: u32) -> common::TestServer {
    let dir = common::fresh_storage_dir().with_extension("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let keys_file = dir.join("keys.toml");
    std::fs::write(
        &keys_file,
        format!(
            "[[keys]]\nid = \"agent\"\nrole = \"user\"\nsha256 = \"{}\"\n",
            tts_accounts::hash_key(WS_KEY)
        ),
    )
    .unwrap();
    common::TestServer::start(tts_server::ServerConfig {
        models_dir: common::piper_only_models_dir(),
        auth: tts_server::auth::AuthMode::On,
        keys_file,
        rate_per_minute: 1,
        rate_burst: Some(burst),
        ..tts_server::ServerConfig::default()
    })
}

async fn connect_to(server: &common::TestServer, query: &str) -> Socket {
    let url = server.ws_url(&format!("/v1/tts/ws?{query}&api_key={WS_KEY}"));
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connect");
    socket
}

async fn utterance(socket: &mut Socket, text: &str) -> (Vec<Value>, Vec<u8>) {
    send(socket, json!({"type": "text", "text": text})).await;
    send(socket, json!({"type": "flush"})).await;
    read_until(socket, "done").await
}

fn sentence_cache_states(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "sentence_done")
        .map(|e| e["cache"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn repeated_sentences_come_from_the_cache_and_each_utterance_is_metered() {
    let server = keyed_server(10);
    let synthesized = || common::sentences_synthesized(&server);
    let mut socket = connect_to(&server, &format!("voice={VOICE}&format=wav")).await;
    let text = "Thanks for calling. How can I help you today?";
    let (first_events, first_audio) = utterance(&mut socket, text).await;
    assert_eq!(sentence_cache_states(&first_events), ["miss", "miss"]);
    let after_first = synthesized();
    assert_eq!(after_first, 2);

    // The same sentences again, then one known and one new sentence.
    let (second_events, second_audio) = utterance(&mut socket, text).await;
    assert_eq!(
        sentence_cache_states(&second_events),
        ["hit-memory", "hit-memory"]
    );
    assert_eq!(
        synthesized(),
        after_first,
        "a cached sentence was synthesized"
    );
    assert_eq!(
        second_audio, first_audio,
        "a hit must sound exactly like the miss"
    );
    let (mixed_events, mixed_audio) =
        utterance(&mut socket, "How can I help you today? Goodbye now.").await;
    assert_eq!(sentence_cache_states(&mixed_events), ["hit-memory", "miss"]);
    assert_eq!(synthesized(), after_first + 1);
    let pcm = decode(&mixed_audio, "wav", 0);
    assert!(rms(&pcm) > 0.01);
    send(&mut socket, json!({"type": "close"})).await;
    assert!(matches!(next(&mut socket).await, Frame::Closed));

    // Three utterances, three metered requests; characters split by where the audio came from.
    let chars = |s: &str| s.chars().count() as u64;
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (today.pred_opt().unwrap(), today.succ_opt().unwrap());
    let mut total = Value::Null;
    for _ in 0..50 {
        total = common::json_of(
            client()
                .get(server.url(&format!("/v1/usage?from={from}&to={to}")))
                .bearer_auth(WS_KEY),
        )
        .await["total"]
            .clone();
        if total["requests"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(total["requests"], 3, "{total}");
    let (thanks, help, bye) = (
        chars("Thanks for calling."),
        chars("How can I help you today?"),
        chars("Goodbye now."),
    );
    let synthesized_chars = thanks + help + bye;
    let cached_chars = thanks + 2 * help;
    assert_eq!(
        total["characters_synthesized"].as_u64(),
        Some(synthesized_chars),
        "{total}"
    );
    assert_eq!(
        total["characters_cached"].as_u64(),
        Some(cached_chars),
        "{total}"
    );
}

#[tokio::test]
async fn utterances_after_the_first_take_from_the_rate_limit() {
    // Burst 2: the upgrade takes one token (and pays for the first utterance), the second
    // utterance the other; the third is refused with the wait, and the session goes on.
    let server = keyed_server(2);
    let mut socket = connect_to(&server, &format!("voice={VOICE}&format=pcm")).await;
    let (events, _) = utterance(&mut socket, "First one.").await;
    assert_eq!(events.last().unwrap()["type"], "done");
    let (events, _) = utterance(&mut socket, "Second one.").await;
    assert_eq!(events.last().unwrap()["type"], "done");
    send(&mut socket, json!({"type": "text", "text": "Third one."})).await;
    send(&mut socket, json!({"type": "flush"})).await;
    let Frame::Event(error) = next(&mut socket).await else {
        panic!("expected an error event");
    };
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "rate_limited", "{error}");
    assert!(error["retry_after_secs"].as_u64().unwrap() >= 1, "{error}");
    send(&mut socket, json!({"type": "close"})).await;
    assert!(matches!(next(&mut socket).await, Frame::Closed));
}

#[tokio::test]
async fn sessions_saying_the_same_new_sentences_at_once_share_one_synthesis() {
    let server = common::TestServer::start_with(|_| {});
    let first = "The harbour lights came on one by one as the ferry turned toward the pier.";
    let second = "Nobody on the deck said a word until the engines finally fell quiet.";
    // Half the sessions say the sentences in one order, half in the other: each session leads
    // one sentence and follows another's, which must not make them wait on each other forever.
    let orders = [[first, second], [second, first]];
    let sessions = (0..6).map(|i| {
        let server = &server;
        let order = orders[i % 2];
        async move {
            let url = server.ws_url(&format!("/v1/tts/ws?voice={VOICE}&format=pcm"));
            let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            for sentence in order {
                send(
                    &mut socket,
                    json!({"type": "text", "text": format!("{sentence} ")}),
                )
                .await;
            }
            send(&mut socket, json!({"type": "flush"})).await;
            let (events, audio) = read_until(&mut socket, "done").await;
            let spoken: Vec<(String, String)> = events
                .iter()
                .filter(|e| e["type"] == "sentence_done")
                .map(|e| {
                    let text = e["text"].as_str().unwrap().to_string();
                    (text, e["cache"].as_str().unwrap().to_string())
                })
                .collect();
            (spoken, audio)
        }
    });
    let (spoken, audio): (Vec<_>, Vec<_>) = futures_util::future::join_all(sessions)
        .await
        .into_iter()
        .unzip();

    assert_eq!(
        common::sentences_synthesized(&server),
        2,
        "each sentence is synthesized exactly once; sessions said {spoken:?}"
    );
    let states: Vec<&str> = spoken
        .iter()
        .flatten()
        .map(|(_, cache)| cache.as_str())
        .collect();
    assert_eq!(states.len(), 12, "{spoken:?}");
    assert_eq!(
        states.iter().filter(|s| **s == "miss").count(),
        2,
        "{spoken:?}"
    );
    assert!(
        states.contains(&"coalesced"),
        "sessions asking at the same time share the synthesis in flight: {spoken:?}"
    );
    assert!(
        states
            .iter()
            .all(|s| ["miss", "coalesced", "hit-memory"].contains(s)),
        "{spoken:?}"
    );
    // Shared or not, every session in an order heard exactly the same audio.
    for (i, session_audio) in audio.iter().enumerate() {
        assert!(
            session_audio.len() > 24_000,
            "session {i}: too little audio"
        );
        assert_eq!(session_audio, &audio[i % 2], "session {i}");
    }
}
