//! `tts voices`, `tts voice add`, `tts voice rm`.

use std::path::PathBuf;

use anyhow::Context as _;
use tts_client::{Client, VoiceUpload};

#[derive(Debug, clap::Args)]
pub struct VoicesArgs {
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum VoiceCommand {
    /// Upload a sample and clone a voice from it; prints the new voice id on stdout.
    Add {
        /// Recording of the speaker (wav, mp3, flac, ogg).
        sample: PathBuf,
        /// Name of the new voice.
        #[arg(long)]
        name: String,
        /// Confirm that the speaker consented to being cloned.
        #[arg(long)]
        consent: bool,
        /// Language of the sample (e.g. `en`, `ja`).
        #[arg(long)]
        language: Option<String>,
    },
    /// Delete an uploaded voice.
    Rm {
        /// Voice id (as printed by `tts voice add` or listed by `tts voices`).
        id: String,
    },
}

pub async fn list(client: &Client, args: VoicesArgs) -> anyhow::Result<()> {
    let list = client.voices().await.context("listing voices")?;
    if args.json {
        let value = serde_json::json!({
            "voices": list.voices.iter().map(|v| {
                let mut entry = v.extra.clone();
                entry.insert("id".into(), v.id.clone().into());
                entry.insert("model".into(), v.model.clone().into());
                entry.insert("language".into(), v.language.clone().into());
                entry.insert("kind".into(), v.kind.clone().into());
                entry.insert("sample_rate".into(), v.sample_rate.into());
                entry
            }).collect::<Vec<_>>(),
            "default_voice": list.default_voice,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let width = list
        .voices
        .iter()
        .map(|v| v.id.len())
        .max()
        .unwrap_or(2)
        .max(2);
    println!(
        "{:<width$}  {:<8}  {:<8}  {:<7}  RATE",
        "ID", "MODEL", "LANGUAGE", "KIND"
    );
    for voice in &list.voices {
        let default = if voice.id == list.default_voice {
            "  (default)"
        } else {
            ""
        };
        // Uploaded voices list the models that can speak them instead of one `model`.
        let model = if voice.model.is_empty() {
            voice
                .extra
                .get("models")
                .and_then(|m| m.as_array())
                .map_or(String::new(), |m| {
                    m.iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
        } else {
            voice.model.clone()
        };
        println!(
            "{:<width$}  {:<8}  {:<8}  {:<7}  {}{default}",
            voice.id,
            model,
            voice.language,
            voice.kind,
            voice.sample_rate.map_or("-".into(), |r| r.to_string()),
        );
    }
    Ok(())
}

pub async fn run(client: &Client, command: VoiceCommand, quiet: bool) -> anyhow::Result<()> {
    match command {
        VoiceCommand::Add {
            sample,
            name,
            consent,
            language,
        } => {
            let audio = tokio::fs::read(&sample)
                .await
                .with_context(|| format!("reading {}", sample.display()))?;
            let file_name = sample
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sample.wav".into());
            let upload = VoiceUpload {
                name,
                audio: audio.into(),
                file_name,
                consent,
                language,
            };
            let voice = client
                .upload_voice(&upload)
                .await
                .context("uploading the voice")?;
            println!("{}", voice.id);
            Ok(())
        }
        VoiceCommand::Rm { id } => {
            client
                .delete_voice(&id)
                .await
                .with_context(|| format!("deleting voice {id}"))?;
            if !quiet {
                eprintln!("deleted {id}");
            }
            Ok(())
        }
    }
}
