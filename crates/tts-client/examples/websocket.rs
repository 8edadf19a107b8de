//! A conversational session: text is sent word by word (as a language model would produce it)
//! while audio is received on another task.
//!
//! `cargo run -p tts-client --example websocket -- http://127.0.0.1:8080 out.pcm`

use futures_util::StreamExt;
use tts_client::{Client, WsEvent, WsOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let out = args.next().unwrap_or_else(|| "session.pcm".into());

    let client = Client::new(url)?;
    let session = client
        .ws_session(&WsOptions {
            format: Some("pcm".into()),
            ..WsOptions::default()
        })
        .await?;
    let (mut sender, mut receiver) = session.split();

    let writer = tokio::spawn(async move {
        let mut pcm = Vec::new();
        while let Some(event) = receiver.next().await {
            match event? {
                WsEvent::AudioStart(start) => println!("audio at {} Hz", start.sample_rate),
                WsEvent::Audio(bytes) => pcm.extend_from_slice(&bytes),
                WsEvent::SentenceDone(s) => {
                    println!("spoke {:?} ({:.2} s)", s.text, s.audio_seconds)
                }
                WsEvent::Done(done) => println!(
                    "utterance done: {:.2} s, RTF {:.3}",
                    done.audio_seconds, done.rtf
                ),
                WsEvent::Error(err) => eprintln!("server error: {err}"),
            }
        }
        Ok::<_, tts_client::ClientError>(pcm)
    });

    let reply = "Sure. The next train leaves at six, and the ride takes about twenty minutes.";
    for word in reply.split_inclusive(' ') {
        sender.send_text(word).await?;
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    sender.close().await?;
    let pcm = writer.await??;
    std::fs::write(&out, &pcm)?;
    println!("{out}: {} bytes of s16le", pcm.len());
    Ok(())
}
