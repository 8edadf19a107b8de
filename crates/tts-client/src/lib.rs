//! `tts-client`: an async Rust client for `tts-server`.
//!
//! One [`Client`] holds one pooled HTTP connection set; clone it freely. It synthesizes whole
//! files ([`Client::synthesize`]), streams chunked audio ([`Client::stream`], measuring the time
//! to the first chunk), reads Server-Sent Events ([`Client::sse`]), runs WebSocket sessions
//! ([`Client::ws_session`]), and lists, uploads and deletes voices. Connection errors, 429 and
//! 503 are retried with exponential backoff and jitter, honouring `Retry-After`; nothing is
//! retried once audio has reached the caller. Errors carry the server's code, message and field.
//!
//! ```no_run
//! # async fn run() -> Result<(), tts_client::ClientError> {
//! let client = tts_client::Client::new("http://127.0.0.1:8080")?;
//! let speech = client
//!     .synthesize(&tts_client::SpeechRequest::new("Hello there.").format("wav"))
//!     .await?;
//! std::fs::write("hello.wav", &speech.audio).expect("write");
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod request;
mod retry;
mod sse;
mod stream;
mod voices;
mod ws;

pub use client::{Client, ClientBuilder};
pub use error::{ClientError, ServerError};
pub use request::{AudioInfo, SpeechRequest, Synthesis};
pub use retry::{parse_retry_after, RetryPolicy};
pub use sse::{SseDone, SseEvent, SseStream, SseUsage};
pub use stream::AudioStream;
pub use voices::{Voice, VoiceList, VoiceUpload};
pub use ws::{
    AudioStart, SentenceDone, UtteranceDone, WsEvent, WsOptions, WsReceiver, WsSender, WsSession,
};
