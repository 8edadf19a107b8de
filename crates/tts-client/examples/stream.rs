//! Stream speech to a file as it is synthesized, reporting the time to the first chunk.
//!
//! `cargo run -p tts-client --example stream -- http://127.0.0.1:8080 "First. Second." out.mp3`

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tts_client::{Client, SpeechRequest};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let text = args
        .next()
        .unwrap_or_else(|| "The first sentence plays at once. The second follows.".into());
    let out = args.next().unwrap_or_else(|| "stream.mp3".into());

    let client = Client::new(url)?;
    let mut stream = client
        .stream(&SpeechRequest::new(text).format("mp3"))
        .await?;
    let mut file = tokio::fs::File::create(&out).await?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        file.write_all(&chunk).await?;
        println!("chunk of {} bytes", chunk.len());
    }
    file.sync_all().await?;
    println!(
        "first chunk after {:?}, {} bytes in {} chunks",
        stream.time_to_first_chunk().unwrap_or_default(),
        stream.bytes_received(),
        stream.chunks_received()
    );
    Ok(())
}
