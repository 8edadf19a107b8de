//! WebSocket sessions on `/v1/tts/ws`: send text as it arrives (`text`), end an utterance
//! (`flush`) or the session (`close`); receive binary audio and JSON events. Split a session
//! into a [`WsSender`] and a [`WsReceiver`] to send and receive from different tasks.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::Client;
use crate::error::{server_error, ClientError, ServerError};
use crate::retry::parse_retry_after;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Session settings, sent as query parameters of the upgrade request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WsOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `pcm` (the server's default here: s16le), `wav`, `mp3`, `opus`, `flac`, `mulaw`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u32>,
}

/// What the server sends during a session.
#[derive(Debug, Clone)]
pub enum WsEvent {
    /// A new utterance begins; its audio follows.
    AudioStart(AudioStart),
    /// Audio of the current utterance; one utterance's frames concatenate into one file.
    Audio(Bytes),
    SentenceDone(SentenceDone),
    /// The utterance ended (after a `flush`).
    Done(UtteranceDone),
    /// The server refused a message or a sentence failed; the session stays open.
    Error(ServerError),
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioStart {
    pub utterance: usize,
    pub format: String,
    #[serde(default)]
    pub content_type: String,
    pub sample_rate: u32,
    #[serde(default)]
    pub voice: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SentenceDone {
    pub utterance: usize,
    pub index: usize,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub audio_seconds: f64,
    #[serde(default)]
    pub queue_ms: f64,
    #[serde(default)]
    pub synth_ms: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UtteranceDone {
    pub utterance: usize,
    #[serde(default)]
    pub sentences: usize,
    #[serde(default)]
    pub characters: usize,
    #[serde(default)]
    pub audio_seconds: f64,
    #[serde(default)]
    pub rtf: f64,
}

#[derive(Deserialize)]
struct ErrorMessage {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    field: Option<String>,
}

/// An open session.
pub struct WsSession {
    sender: WsSender,
    receiver: WsReceiver,
}

impl WsSession {
    pub(crate) async fn connect(client: &Client, options: &WsOptions) -> Result<Self, ClientError> {
        let mut url = client.url("v1/tts/ws")?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| ClientError::InvalidRequest("cannot build the WebSocket URL".into()))?;
        let query = serde_json::to_value(options)
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        if let Some(fields) = query.as_object().filter(|f| !f.is_empty()) {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in fields {
                let value = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                pairs.append_pair(key, &value);
            }
        }
        let policy = client.retry_policy().clone();
        let mut retry = 0;
        loop {
            let err = match Self::try_connect(client, url.as_str()).await {
                Ok(socket) => {
                    let (sink, stream) = socket.split();
                    return Ok(Self {
                        sender: WsSender { sink },
                        receiver: WsReceiver { stream },
                    });
                }
                Err(err) => err,
            };
            let retry_after = err.server().and_then(|e| e.retry_after);
            let wait = (err.is_retryable() && retry < policy.max_retries)
                .then(|| policy.delay(retry, retry_after))
                .flatten();
            let Some(wait) = wait else {
                return Err(err);
            };
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    async fn try_connect(client: &Client, url: &str) -> Result<Socket, ClientError> {
        let mut request = url.into_client_request()?;
        if let Some(key) = client.api_key() {
            let value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ClientError::InvalidRequest("API key is not a valid header".into()))?;
            request.headers_mut().insert("authorization", value);
        }
        let connect = tokio_tungstenite::connect_async(request);
        let result = tokio::time::timeout(client.connect_timeout(), connect)
            .await
            .map_err(|_| ClientError::Timeout {
                url: url.to_string(),
            })?;
        match result {
            Ok((socket, _response)) => Ok(socket),
            // The server refused the upgrade with its usual JSON error (bad voice, overloaded).
            Err(tungstenite::Error::Http(response)) => {
                let retry_after = parse_retry_after(response.headers());
                let body = response.body().clone().unwrap_or_default();
                Err(server_error(response.status().as_u16(), retry_after, &body))
            }
            Err(tungstenite::Error::Io(err)) => Err(ClientError::Connect {
                url: url.to_string(),
                source: Box::new(err),
            }),
            Err(err) => Err(err.into()),
        }
    }

    /// Sends text; the server speaks each sentence as soon as it is complete.
    pub async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.sender.send_text(text).await
    }

    /// Speaks what is pending and ends the current utterance.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.sender.flush().await
    }

    /// Flushes, then asks the server to end the session; read events until `None`.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        self.sender.close().await
    }

    /// The next event, or `None` once the server closed the session.
    pub async fn next_event(&mut self) -> Option<Result<WsEvent, ClientError>> {
        self.receiver.next().await
    }

    /// Separate halves, to send text from one task while another plays audio.
    pub fn split(self) -> (WsSender, WsReceiver) {
        (self.sender, self.receiver)
    }
}

/// The sending half of a session.
pub struct WsSender {
    sink: SplitSink<Socket, Message>,
}

impl WsSender {
    pub async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.send(json!({"type": "text", "text": text})).await
    }

    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.send(json!({"type": "flush"})).await
    }

    pub async fn close(&mut self) -> Result<(), ClientError> {
        self.send(json!({"type": "close"})).await
    }

    async fn send(&mut self, value: serde_json::Value) -> Result<(), ClientError> {
        self.sink
            .send(Message::Text(value.to_string().into()))
            .await
            .map_err(ClientError::from)
    }
}

/// The receiving half of a session: a `Stream` of [`WsEvent`]s.
pub struct WsReceiver {
    stream: SplitStream<Socket>,
}

impl Stream for WsReceiver {
    type Item = Result<WsEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let message = match self.stream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(tungstenite::Error::ConnectionClosed))) => {
                    return Poll::Ready(None)
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(Some(Ok(message))) => message,
            };
            match message {
                Message::Binary(bytes) => return Poll::Ready(Some(Ok(WsEvent::Audio(bytes)))),
                Message::Text(text) => {
                    if let Some(event) = parse_event(text.as_str()) {
                        return Poll::Ready(Some(event));
                    }
                }
                Message::Close(_) => return Poll::Ready(None),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }
}

/// A JSON event; `None` for event types this client does not know (newer servers).
fn parse_event(text: &str) -> Option<Result<WsEvent, ClientError>> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => {
            return Some(Err(ClientError::Protocol(format!(
                "WebSocket event: {err}"
            ))))
        }
    };
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_string();
    fn typed<T: serde::de::DeserializeOwned>(
        value: serde_json::Value,
        wrap: fn(T) -> WsEvent,
    ) -> Option<Result<WsEvent, ClientError>> {
        Some(
            serde_json::from_value(value)
                .map(wrap)
                .map_err(|e| ClientError::Protocol(format!("WebSocket event: {e}"))),
        )
    }
    match kind.as_str() {
        "audio_start" => typed(value, WsEvent::AudioStart),
        "sentence_done" => typed(value, WsEvent::SentenceDone),
        "done" => typed(value, WsEvent::Done),
        "error" => typed(value, |e: ErrorMessage| {
            WsEvent::Error(ServerError {
                status: None,
                code: e.code,
                message: e.message,
                field: e.field,
                retry_after: None,
            })
        }),
        _ => None,
    }
}

impl Client {
    /// Opens a WebSocket session (`GET /v1/tts/ws`). Bad settings fail here, with the server's
    /// error naming the field.
    pub async fn ws_session(&self, options: &WsOptions) -> Result<WsSession, ClientError> {
        WsSession::connect(self, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_event_becomes_a_server_error_with_its_field() {
        let event =
            parse_event(r#"{"type":"error","code":"text_too_long","message":"m","field":"text"}"#)
                .unwrap()
                .unwrap();
        match event {
            WsEvent::Error(err) => {
                assert_eq!(err.code, "text_too_long");
                assert_eq!(err.field.as_deref(), Some("text"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_event_types_are_skipped() {
        assert!(parse_event(r#"{"type":"cache","status":"hit"}"#).is_none());
    }
}
