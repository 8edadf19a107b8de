//! A chunked audio answer as an async `Stream` of byte chunks, measuring the time to the first
//! chunk. Once a chunk has reached the caller nothing is retried: a broken transfer ends the
//! stream with [`ClientError::StreamInterrupted`].

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};

use crate::error::ClientError;
use crate::request::AudioInfo;

/// Audio chunks in order; their concatenation is one valid file of the requested format.
pub struct AudioStream {
    info: AudioInfo,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    started: Instant,
    first_chunk: Option<Duration>,
    finished: Option<Duration>,
    bytes: u64,
    chunks: usize,
    failed: bool,
}

impl AudioStream {
    pub(crate) fn new(response: reqwest::Response, started: Instant) -> Self {
        Self {
            info: AudioInfo::from_headers(response.headers()),
            body: response.bytes_stream().boxed(),
            started,
            first_chunk: None,
            finished: None,
            bytes: 0,
            chunks: 0,
            failed: false,
        }
    }

    /// Response headers (content type, sample rate, request id, `X-Cache`).
    pub fn info(&self) -> &AudioInfo {
        &self.info
    }

    /// Time from the call (retries included) to the first non-empty chunk.
    pub fn time_to_first_chunk(&self) -> Option<Duration> {
        self.first_chunk
    }

    /// Time from the call to the end of the stream, once it ended cleanly.
    pub fn total_time(&self) -> Option<Duration> {
        self.finished
    }

    pub fn bytes_received(&self) -> u64 {
        self.bytes
    }

    pub fn chunks_received(&self) -> usize {
        self.chunks
    }

    /// Reads the rest of the stream into one buffer.
    pub async fn collect_bytes(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.next().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(all)
    }
}

impl Stream for AudioStream {
    type Item = Result<Bytes, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed || self.finished.is_some() {
            return Poll::Ready(None);
        }
        match self.body.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                if !chunk.is_empty() && self.first_chunk.is_none() {
                    self.first_chunk = Some(self.started.elapsed());
                }
                self.bytes += chunk.len() as u64;
                self.chunks += 1;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(err))) => {
                self.failed = true;
                // The server aborts the body when synthesis fails midway; say so rather than
                // letting a short file pass as complete.
                Poll::Ready(Some(Err(ClientError::StreamInterrupted {
                    bytes: self.bytes,
                    reason: error_chain(&err),
                })))
            }
            Poll::Ready(None) => {
                self.finished = Some(self.started.elapsed());
                Poll::Ready(None)
            }
        }
    }
}

/// An error and its sources on one line (reqwest's own message is often just "error decoding body").
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
