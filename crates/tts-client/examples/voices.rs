//! List voices; with a sample path and a name, upload a cloned voice and delete it again.
//!
//! `cargo run -p tts-client --example voices -- http://127.0.0.1:8080 [sample.wav NAME]`

use tts_client::{Client, VoiceUpload};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let client = Client::builder(url)
        .api_key(std::env::var("TTS_API_KEY").unwrap_or_default())
        .build()?;

    for voice in client.voices().await?.voices {
        println!(
            "{:<24} {:<7} {:<6} {}",
            voice.id, voice.model, voice.language, voice.kind
        );
    }
    if let (Some(sample), Some(name)) = (args.next(), args.next()) {
        let upload = VoiceUpload {
            name,
            audio: std::fs::read(&sample)?.into(),
            file_name: std::path::Path::new(&sample)
                .file_name()
                .map_or_else(|| "sample.wav".into(), |n| n.to_string_lossy().into_owned()),
            consent: true,
            language: None,
        };
        match client.upload_voice(&upload).await {
            Ok(voice) => {
                println!("uploaded {}", voice.id);
                client.delete_voice(&voice.id).await?;
                println!("deleted {}", voice.id);
            }
            // Typed errors: the server's code and the field it blames.
            Err(err) => eprintln!(
                "refused: code {:?}, field {:?}: {err}",
                err.code(),
                err.field()
            ),
        }
    }
    Ok(())
}
