//! End-to-end: the client against a real in-process tts-server with the Piper weights — whole
//! files, chunked streams, SSE, WebSocket sessions, voices, typed errors and real overload.

mod common;

use common::{client, decode, rms, TestServer, THREE_SENTENCES, VOICE};
use futures_util::StreamExt;
use tts_client::{Client, RetryPolicy, SpeechRequest, SseEvent, WsEvent, WsOptions};
use tts_server::ServerConfig;

fn request(text: &str, format: &str) -> SpeechRequest {
    SpeechRequest::new(text).voice(VOICE).format(format)
}

#[tokio::test]
async fn synthesize_returns_a_file_matching_its_duration_header() {
    let speech = client()
        .synthesize(&request("Hello there, this is a test.", "wav"))
        .await
        .unwrap();
    let pcm = decode(&speech.audio, "wav", 0);
    let header = speech.info.audio_seconds.expect("X-Audio-Duration");
    assert!(
        (pcm.duration_secs() - header).abs() < 0.05,
        "{} vs {header}",
        pcm.duration_secs()
    );
    assert!(rms(&pcm) > 0.01, "silence");
    assert_eq!(speech.info.content_type.as_deref(), Some("audio/wav"));
    assert!(speech.info.request_id.is_some());
    assert!(speech.info.rtf.is_some());
}

#[tokio::test]
async fn stream_yields_chunks_in_order_that_decode_to_the_whole_speech() {
    let mut stream = client()
        .stream(&request(THREE_SENTENCES, "wav"))
        .await
        .unwrap();
    let rate = stream.info().sample_rate.expect("X-Sample-Rate");
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.next().await {
        chunks.push(chunk.unwrap());
    }
    assert!(
        chunks.len() >= 2,
        "three sentences came as {} chunk(s)",
        chunks.len()
    );
    let ttfa = stream.time_to_first_chunk().expect("first chunk time");
    let total = stream.total_time().expect("stream ended cleanly");
    assert!(ttfa <= total);
    let body: Vec<u8> = chunks.concat();
    assert_eq!(body.len() as u64, stream.bytes_received());
    // In order: the WAV header comes first, and the whole decodes as one file.
    assert_eq!(&body[..4], b"RIFF");
    let pcm = decode(&body, "wav", rate);
    assert_eq!(pcm.sample_rate, rate);
    assert!(rms(&pcm) > 0.01);
    // Same text as one file: the streamed speech has the same length (sentence joins equal).
    let whole = client()
        .synthesize(&request(THREE_SENTENCES, "wav"))
        .await
        .unwrap();
    let whole_secs = whole.info.audio_seconds.unwrap();
    assert!(
        (pcm.duration_secs() - whole_secs).abs() < 0.15 * whole_secs,
        "streamed {} s vs whole {whole_secs} s",
        pcm.duration_secs()
    );
}

#[tokio::test]
async fn streamed_mp3_chunks_decode_as_one_file() {
    let mut stream = client()
        .stream(&request(THREE_SENTENCES, "mp3"))
        .await
        .unwrap();
    let body = stream.collect_bytes().await.unwrap();
    let pcm = decode(&body, "mp3", 0);
    assert!(pcm.duration_secs() > 3.0, "{} s", pcm.duration_secs());
}

#[tokio::test]
async fn unknown_voice_is_a_typed_error_naming_the_field() {
    let bad = SpeechRequest::new("Hello.").voice("no_such_voice");
    for err in [
        client().synthesize(&bad).await.unwrap_err(),
        client().stream(&bad).await.err().expect("stream refused"),
        client().sse(&bad).await.err().expect("sse refused"),
    ] {
        assert_eq!(err.status(), Some(400), "{err}");
        assert_eq!(err.code(), Some("unknown_voice"));
        assert_eq!(err.field(), Some("voice"));
        assert!(!err.is_retryable());
    }
}

#[tokio::test]
async fn invalid_speed_names_the_speed_field() {
    let err = client()
        .synthesize(&request("Hello.", "wav").speed(9.0))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.field(), Some("speed"));
}

#[tokio::test]
async fn sse_deltas_concatenate_to_the_duration_in_done() {
    let mut events = client()
        .sse(&request(THREE_SENTENCES, "wav"))
        .await
        .unwrap();
    let mut audio = Vec::new();
    let mut deltas = 0;
    let done = loop {
        match events
            .next()
            .await
            .expect("stream ended before done")
            .unwrap()
        {
            SseEvent::AudioDelta(bytes) => {
                deltas += 1;
                audio.extend_from_slice(&bytes);
            }
            SseEvent::Done(done) => break done,
        }
    };
    assert!(events.next().await.is_none(), "nothing after done");
    assert!(deltas >= 2);
    assert!(events.time_to_first_audio().is_some());
    assert_eq!(done.format, "wav");
    assert_eq!(done.sentences, 3);
    assert!(done.usage.input_tokens > 0);
    let pcm = decode(&audio, "wav", done.sample_rate);
    assert!(
        (pcm.duration_secs() - done.audio_duration).abs() < 0.05,
        "{} vs {}",
        pcm.duration_secs(),
        done.audio_duration
    );
}

#[tokio::test]
async fn websocket_session_speaks_text_sent_in_pieces() {
    let options = WsOptions {
        voice: Some(VOICE.into()),
        format: Some("pcm".into()),
        ..WsOptions::default()
    };
    let session = client().ws_session(&options).await.unwrap();
    let (mut sender, mut receiver) = session.split();
    // Text arrives in fragments that split words and sentences, as from a language model.
    for piece in [
        "The bus le",
        "aves at six. It is a sh",
        "ort ride to the station.",
    ] {
        sender.send_text(piece).await.unwrap();
    }
    sender.flush().await.unwrap();
    let mut start = None;
    let mut pcm = Vec::new();
    let mut sentences = Vec::new();
    let done = loop {
        match receiver.next().await.expect("session ended early").unwrap() {
            WsEvent::AudioStart(s) => start = Some(s),
            WsEvent::Audio(bytes) => {
                assert!(start.is_some(), "audio before audio_start");
                pcm.extend_from_slice(&bytes);
            }
            WsEvent::SentenceDone(s) => sentences.push(s.text),
            WsEvent::Done(done) => break done,
            WsEvent::Error(err) => panic!("server error {err}"),
        }
    };
    let start = start.unwrap();
    assert_eq!(start.format, "pcm");
    assert_eq!(
        sentences,
        [
            "The bus leaves at six.",
            "It is a short ride to the station."
        ]
    );
    assert_eq!(done.sentences, 2);
    let audio = decode(&pcm, "pcm", start.sample_rate);
    assert!((audio.duration_secs() - done.audio_seconds).abs() < 0.05);
    assert!(rms(&audio) > 0.01);
    sender.close().await.unwrap();
    assert!(receiver.next().await.is_none(), "server closes after close");
}

#[tokio::test]
async fn websocket_bad_message_is_an_error_event_and_the_session_goes_on() {
    let options = WsOptions {
        voice: Some(VOICE.into()),
        ..WsOptions::default()
    };
    let mut session = client().ws_session(&options).await.unwrap();
    session.send_text(&"x".repeat(6000)).await.unwrap();
    match session.next_event().await.unwrap().unwrap() {
        WsEvent::Error(err) => {
            assert_eq!(err.code, "text_too_long");
            assert_eq!(err.field.as_deref(), Some("text"));
        }
        other => panic!("expected an error event, got {other:?}"),
    }
    session.send_text("Still here.").await.unwrap();
    session.flush().await.unwrap();
    let mut got_audio = false;
    loop {
        match session.next_event().await.unwrap().unwrap() {
            WsEvent::Audio(_) => got_audio = true,
            WsEvent::Done(_) => break,
            _ => {}
        }
    }
    assert!(got_audio);
}

#[tokio::test]
async fn websocket_with_unknown_voice_is_refused_before_upgrade() {
    let options = WsOptions {
        voice: Some("no_such_voice".into()),
        ..WsOptions::default()
    };
    let err = client().ws_session(&options).await.err().expect("refused");
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.code(), Some("unknown_voice"));
    assert_eq!(err.field(), Some("voice"));
}

#[tokio::test]
async fn voices_lists_the_loaded_piper_voice() {
    let list = client().voices().await.unwrap();
    let voice = list
        .voices
        .iter()
        .find(|v| v.id == VOICE)
        .expect("piper voice listed");
    assert_eq!(voice.model, "piper");
    assert_eq!(voice.kind, "stock");
    assert_eq!(voice.sample_rate, Some(22_050));
    assert_eq!(list.default_voice, VOICE);
    assert!(client().ready().await.unwrap());
}

#[tokio::test]
async fn deleting_an_unknown_voice_is_a_typed_404() {
    let err = client().delete_voice("no-such-voice").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(!err.is_retryable());
}

/// One long sentence: the queue counts jobs not yet started, and a job starts with its first
/// sentence, so a long first sentence keeps the worker busy while the burst arrives.
const LONG_SENTENCE: &str = "From there the train goes north along the river, past the old mill, \
    the church, the school and the wide fields of barley, until it reaches the city late in the \
    evening, when the lamps along the harbour are already lit.";

/// The real server with one worker and a one-slot queue: without retries some requests are
/// refused with 503 + Retry-After; with retries every request gets its audio.
#[tokio::test]
async fn overloaded_server_refusals_are_retried_until_served() {
    let server = TestServer::start(ServerConfig {
        models_dir: common::piper_only_models_dir(),
        workers: 1,
        queue_capacity: 1,
        retry_after_secs: 1,
        ..ServerConfig::default()
    });
    // Distinct texts: identical ones would share one synthesis (cache coalescing) and never queue.
    let burst = |policy: RetryPolicy, tag: &'static str, count: usize| {
        let client = Client::builder(server.base_url())
            .retry(policy)
            .build()
            .unwrap();
        async move {
            let requests = (0..count).map(|i| {
                let client = client.clone();
                let text = format!("{LONG_SENTENCE} {tag} {i}.");
                async move { client.synthesize(&request(&text, "wav")).await }
            });
            futures_util::future::join_all(requests).await
        }
    };
    let without = burst(RetryPolicy::none(), "First burst", 6).await;
    let refused: Vec<_> = without.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        !refused.is_empty(),
        "six requests on a one-slot queue were all served"
    );
    for err in refused {
        assert_eq!(err.status(), Some(503));
        assert_eq!(err.code(), Some("overloaded"));
        assert_eq!(
            err.server().unwrap().retry_after,
            Some(std::time::Duration::from_secs(1))
        );
    }
    let with = burst(
        RetryPolicy {
            max_retries: 60,
            ..RetryPolicy::default()
        },
        "Second burst",
        4,
    )
    .await;
    for result in with {
        let speech = result.expect("retried until served");
        assert!(!speech.audio.is_empty());
    }
    server.shutdown();
}
