//! `POST /v1/tts/sse` as typed events: `speech.audio.delta` (decoded from base64),
//! `speech.audio.done` (the summary), and the server's `error` event as a [`ClientError::Server`].
//! Parsing of the event-stream format is `eventsource-stream`'s.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use crate::error::{ClientError, ErrorDetail};
use crate::request::AudioInfo;
use crate::stream::error_chain;

/// One event of a speech SSE stream.
#[derive(Debug, Clone)]
pub enum SseEvent {
    /// The next piece of audio; the pieces concatenate into one valid file.
    AudioDelta(Bytes),
    /// The end of the stream, with totals.
    Done(SseDone),
}

/// `speech.audio.done`.
#[derive(Debug, Clone, Deserialize)]
pub struct SseDone {
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub sample_rate: u32,
    /// Seconds of audio.
    #[serde(default)]
    pub audio_duration: f64,
    #[serde(default)]
    pub rtf: f64,
    #[serde(default)]
    pub sentences: usize,
    #[serde(default)]
    pub latency_ms: f64,
    #[serde(default)]
    pub usage: SseUsage,
}

/// OpenAI's usage block; this server counts characters as tokens.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SseUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

#[derive(Deserialize)]
struct Delta {
    audio: String,
}

#[derive(Deserialize)]
struct ErrorEvent {
    error: ErrorDetail,
}

pub struct SseStream {
    info: AudioInfo,
    events: BoxStream<'static, Result<Event, EventStreamError<reqwest::Error>>>,
    started: Instant,
    first_audio: Option<Duration>,
    audio_bytes: u64,
    ended: bool,
}

impl SseStream {
    pub(crate) fn new(response: reqwest::Response, started: Instant) -> Self {
        Self {
            info: AudioInfo::from_headers(response.headers()),
            events: response.bytes_stream().eventsource().boxed(),
            started,
            first_audio: None,
            audio_bytes: 0,
            ended: false,
        }
    }

    pub fn info(&self) -> &AudioInfo {
        &self.info
    }

    /// Time from the call to the first audio delta.
    pub fn time_to_first_audio(&self) -> Option<Duration> {
        self.first_audio
    }

    fn parse(&mut self, event: &Event) -> Option<Result<SseEvent, ClientError>> {
        let bad = |what: &str, err: &dyn std::fmt::Display| {
            Some(Err(ClientError::Protocol(format!("SSE {what}: {err}"))))
        };
        match event.event.as_str() {
            "speech.audio.delta" => {
                let delta: Delta = match serde_json::from_str(&event.data) {
                    Ok(delta) => delta,
                    Err(err) => return bad("delta", &err),
                };
                let audio = match base64::engine::general_purpose::STANDARD.decode(delta.audio) {
                    Ok(audio) => audio,
                    Err(err) => return bad("delta audio", &err),
                };
                if !audio.is_empty() && self.first_audio.is_none() {
                    self.first_audio = Some(self.started.elapsed());
                }
                self.audio_bytes += audio.len() as u64;
                Some(Ok(SseEvent::AudioDelta(audio.into())))
            }
            "speech.audio.done" => {
                self.ended = true;
                match serde_json::from_str(&event.data) {
                    Ok(done) => Some(Ok(SseEvent::Done(done))),
                    Err(err) => bad("done", &err),
                }
            }
            "error" => {
                self.ended = true;
                match serde_json::from_str::<ErrorEvent>(&event.data) {
                    Ok(e) => Some(Err(ClientError::Server(
                        e.error.into_server_error(None, None),
                    ))),
                    Err(err) => bad("error event", &err),
                }
            }
            // Keep-alive comments never get here; unknown events are newer server features.
            _ => None,
        }
    }
}

impl Stream for SseStream {
    type Item = Result<SseEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            let event = match self.events.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(ClientError::StreamInterrupted {
                        bytes: self.audio_bytes,
                        reason: "event stream ended without speech.audio.done".into(),
                    })));
                }
                Poll::Ready(Some(Err(err))) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(ClientError::StreamInterrupted {
                        bytes: self.audio_bytes,
                        reason: error_chain(&err),
                    })));
                }
                Poll::Ready(Some(Ok(event))) => event,
            };
            if let Some(item) = self.parse(&event) {
                return Poll::Ready(Some(item));
            }
        }
    }
}
