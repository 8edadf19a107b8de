//! Synthesize one sentence to a WAV file.
//!
//! `cargo run -p tts-client --example say -- http://127.0.0.1:8080 "Hello there." hello.wav`

use tts_client::{Client, SpeechRequest};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let text = args.next().unwrap_or_else(|| "Hello there.".into());
    let out = args.next().unwrap_or_else(|| "hello.wav".into());

    let client = Client::new(url)?;
    let speech = client
        .synthesize(&SpeechRequest::new(text).format("wav"))
        .await?;
    std::fs::write(&out, &speech.audio)?;
    println!(
        "{out}: {} bytes, {:.2} s of audio, server RTF {:.3}, cache {}",
        speech.audio.len(),
        speech.info.audio_seconds.unwrap_or_default(),
        speech.info.rtf.unwrap_or_default(),
        speech.info.cache.as_deref().unwrap_or("-"),
    );
    Ok(())
}
