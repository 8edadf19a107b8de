//! Retries against a scripted stub server (a fake server driving the real client logic): 503 and
//! 429 sequences with `Retry-After`, refusals that must not be retried, and streams that break
//! after audio reached the caller. The real server's overload path is covered in `server.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use tts_client::{Client, ClientError, RetryPolicy, SpeechRequest};

/// What the stub answers to its n-th request; the last entry repeats.
#[derive(Clone, Copy)]
enum Reply {
    Refuse {
        status: u16,
        retry_after: Option<u64>,
    },
    Invalid,
    Audio,
    /// One chunk, then the connection breaks.
    BrokenStream,
}

#[derive(Clone)]
struct Stub {
    script: Arc<Vec<Reply>>,
    seen: Arc<Mutex<Vec<(Instant, HeaderMap)>>>,
}

impl Stub {
    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn times(&self) -> Vec<Instant> {
        self.seen.lock().unwrap().iter().map(|(t, _)| *t).collect()
    }
}

async fn answer(
    axum::extract::State(stub): axum::extract::State<Stub>,
    headers: HeaderMap,
) -> Response {
    let n = {
        let mut seen = stub.seen.lock().unwrap();
        seen.push((Instant::now(), headers));
        seen.len() - 1
    };
    let reply = stub.script[n.min(stub.script.len() - 1)];
    match reply {
        Reply::Refuse { status, retry_after } => {
            let mut response = (
                StatusCode::from_u16(status).unwrap(),
                axum::Json(serde_json::json!({"error": {"code": "overloaded", "message": "busy", "field": null}})),
            )
                .into_response();
            if let Some(secs) = retry_after {
                response.headers_mut().insert("retry-after", secs.into());
            }
            response
        }
        Reply::Invalid => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": {"code": "invalid_speed", "message": "speed must be within 0.25..=4", "field": "speed"}})),
        )
            .into_response(),
        Reply::Audio => ([("x-cache", "miss")], "RIFFaudio").into_response(),
        Reply::BrokenStream => {
            let chunks = futures_util::stream::iter([
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"first chunk")),
                Err(std::io::Error::other("synthesis failed")),
            ])
            // The failure comes later, as when a sentence fails mid-stream (the first chunk
            // and the headers are already out).
            .then(|item| async move {
                if item.is_err() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                item
            });
            Body::from_stream(chunks).into_response()
        }
    }
}

async fn start_stub(script: Vec<Reply>) -> (String, Stub) {
    let stub = Stub {
        script: Arc::new(script),
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/v1/tts", post(answer))
        .route("/v1/tts/stream", post(answer))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), stub)
}

fn client(url: &str, policy: RetryPolicy) -> Client {
    Client::builder(url).retry(policy).build().unwrap()
}

fn fast_policy(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..RetryPolicy::default()
    }
}

fn request() -> SpeechRequest {
    SpeechRequest::new("Hello.").format("wav")
}

#[tokio::test]
async fn retries_503_after_waiting_retry_after_each_time() {
    let refuse = Reply::Refuse {
        status: 503,
        retry_after: Some(1),
    };
    let (url, stub) = start_stub(vec![refuse, refuse, Reply::Audio]).await;
    let speech = client(&url, fast_policy(3))
        .synthesize(&request())
        .await
        .unwrap();
    assert_eq!(&speech.audio[..], b"RIFFaudio");
    assert_eq!(speech.info.cache.as_deref(), Some("miss"));
    let times = stub.times();
    assert_eq!(times.len(), 3);
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_secs(1),
            "retried after {gap:?}, before Retry-After"
        );
    }
}

#[tokio::test]
async fn retries_429_honouring_retry_after() {
    let (url, stub) = start_stub(vec![
        Reply::Refuse {
            status: 429,
            retry_after: Some(1),
        },
        Reply::Audio,
    ])
    .await;
    client(&url, fast_policy(3))
        .synthesize(&request())
        .await
        .unwrap();
    let times = stub.times();
    assert_eq!(times.len(), 2);
    assert!(times[1] - times[0] >= Duration::from_secs(1));
}

#[tokio::test]
async fn gives_up_after_max_retries_with_the_servers_error() {
    let (url, stub) = start_stub(vec![Reply::Refuse {
        status: 503,
        retry_after: Some(0),
    }])
    .await;
    let err = client(&url, fast_policy(2))
        .synthesize(&request())
        .await
        .unwrap_err();
    assert_eq!(stub.requests(), 3, "one attempt and two retries");
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.code(), Some("overloaded"));
    assert_eq!(err.server().unwrap().retry_after, Some(Duration::ZERO));
}

#[tokio::test]
async fn without_retry_after_backs_off_and_succeeds() {
    let refuse = Reply::Refuse {
        status: 503,
        retry_after: None,
    };
    let (url, stub) = start_stub(vec![refuse, refuse, Reply::Audio]).await;
    client(&url, fast_policy(5))
        .synthesize(&request())
        .await
        .unwrap();
    assert_eq!(stub.requests(), 3);
}

#[tokio::test]
async fn bad_request_is_not_retried_and_names_the_field() {
    let (url, stub) = start_stub(vec![Reply::Invalid, Reply::Audio]).await;
    let err = client(&url, fast_policy(3))
        .synthesize(&request())
        .await
        .unwrap_err();
    assert_eq!(stub.requests(), 1);
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.code(), Some("invalid_speed"));
    assert_eq!(err.field(), Some("speed"));
}

#[tokio::test]
async fn retry_after_longer_than_the_policy_allows_fails_at_once() {
    let (url, stub) = start_stub(vec![
        Reply::Refuse {
            status: 503,
            retry_after: Some(120),
        },
        Reply::Audio,
    ])
    .await;
    let policy = RetryPolicy {
        max_retry_after: Duration::from_secs(30),
        ..fast_policy(3)
    };
    let started = Instant::now();
    let err = client(&url, policy)
        .synthesize(&request())
        .await
        .unwrap_err();
    assert_eq!(stub.requests(), 1);
    assert_eq!(
        err.server().unwrap().retry_after,
        Some(Duration::from_secs(120))
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn connection_refused_is_retried_until_the_server_is_up() {
    // Reserve a port, free it, and only start listening on it after a while.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let app = Router::new().route("/v1/tts", post(|| async { "late audio" }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        axum::serve(listener, app).await.unwrap();
    });
    let policy = RetryPolicy {
        max_retries: 30,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(300),
        ..RetryPolicy::default()
    };
    let speech = client(&url, policy).synthesize(&request()).await.unwrap();
    assert_eq!(&speech.audio[..], b"late audio");
    late.abort();
}

#[tokio::test]
async fn connection_refused_without_retries_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = client(&format!("http://127.0.0.1:{port}"), RetryPolicy::none())
        .synthesize(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn stream_is_retried_while_refused_before_any_audio() {
    let (url, stub) = start_stub(vec![
        Reply::Refuse {
            status: 503,
            retry_after: Some(0),
        },
        Reply::Audio,
    ])
    .await;
    let mut stream = client(&url, fast_policy(3))
        .stream(&request())
        .await
        .unwrap();
    assert_eq!(stream.collect_bytes().await.unwrap(), b"RIFFaudio");
    assert_eq!(stub.requests(), 2);
    assert!(stream.time_to_first_chunk().is_some());
}

#[tokio::test]
async fn broken_stream_after_audio_is_reported_and_never_retried() {
    let (url, stub) = start_stub(vec![Reply::BrokenStream, Reply::Audio]).await;
    let mut stream = client(&url, fast_policy(3))
        .stream(&request())
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(&first[..], b"first chunk");
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, ClientError::StreamInterrupted { bytes: 11, .. }),
        "{err:?}"
    );
    assert!(
        stream.next().await.is_none(),
        "the stream ends after the error"
    );
    assert_eq!(
        stub.requests(),
        1,
        "a stream that delivered audio is not retried"
    );
}

#[tokio::test]
async fn api_key_is_sent_as_a_bearer_token_on_every_attempt() {
    let (url, stub) = start_stub(vec![
        Reply::Refuse {
            status: 503,
            retry_after: Some(0),
        },
        Reply::Audio,
    ])
    .await;
    let client = Client::builder(&url)
        .api_key("k-123")
        .retry(fast_policy(2))
        .build()
        .unwrap();
    client.synthesize(&request()).await.unwrap();
    let seen = stub.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for (_, headers) in seen.iter() {
        assert_eq!(headers["authorization"], "Bearer k-123");
    }
}
