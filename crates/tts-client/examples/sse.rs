//! Server-Sent Events: base64 audio deltas decoded to bytes, then the summary.
//!
//! `cargo run -p tts-client --example sse -- http://127.0.0.1:8080 "Hello there."`

use futures_util::StreamExt;
use tts_client::{Client, SpeechRequest, SseEvent};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let text = args
        .next()
        .unwrap_or_else(|| "Hello there. How are you?".into());

    let client = Client::new(url)?;
    let mut events = client.sse(&SpeechRequest::new(text).format("mp3")).await?;
    let mut audio = Vec::new();
    while let Some(event) = events.next().await {
        match event? {
            SseEvent::AudioDelta(bytes) => audio.extend_from_slice(&bytes),
            SseEvent::Done(done) => println!(
                "{} bytes of {}, {:.2} s of audio in {} sentences, RTF {:.3}",
                audio.len(),
                done.format,
                done.audio_duration,
                done.sentences,
                done.rtf
            ),
        }
    }
    Ok(())
}
