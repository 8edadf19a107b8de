//! `tts say`: one text to one file (or stdout), whole or streamed as it is synthesized.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tts_client::{Client, SpeechRequest};

use crate::output::{audio_seconds, resolve_format, write_atomic};
use crate::UsageError;

#[derive(Debug, clap::Args)]
pub struct SayArgs {
    /// Text to speak; `-` reads it from stdin.
    pub text: String,
    /// Voice id (see `tts voices`); default: the server's.
    #[arg(short = 'v', long)]
    pub voice: Option<String>,
    /// Model id (`piper`, `kokoro`); usually implied by the voice.
    #[arg(short, long)]
    pub model: Option<String>,
    /// wav, mp3, opus, flac, pcm or mulaw; default: from the output file's extension, else mp3.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Output file; `-` or absent writes to stdout (refused when stdout is a terminal).
    #[arg(short, long, alias = "out")]
    pub output: Option<PathBuf>,
    /// Speaking rate, 0.25 to 4.
    #[arg(long)]
    pub speed: Option<f32>,
    /// Output sample rate in Hz.
    #[arg(long)]
    pub sample_rate: Option<u32>,
    /// Bitrate in kbps (mp3, opus).
    #[arg(long)]
    pub bitrate: Option<u32>,
    /// Normalise loudness to -20 LUFS.
    #[arg(long)]
    pub normalize: bool,
    /// Write audio chunks as they arrive (`/v1/tts/stream`) instead of the finished file.
    #[arg(long)]
    pub stream: bool,
    /// Print time to first audio, audio seconds and real-time factor to stderr
    /// (`-v` is the voice here, so this flag is long only).
    #[arg(long, alias = "stats")]
    pub verbose: bool,
}

enum Sink {
    Stdout(tokio::io::Stdout),
    File(PathBuf),
}

pub async fn run(client: &Client, args: SayArgs, quiet: bool) -> anyhow::Result<()> {
    let text = if args.text == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading text from stdin")?;
        text
    } else {
        args.text.clone()
    };
    if text.trim().is_empty() {
        return Err(UsageError("the text is empty".into()).into());
    }
    let path = args.output.clone().filter(|p| p.as_os_str() != "-");
    let format = resolve_format(args.format.as_deref(), path.as_deref())?;
    let sink = match path {
        Some(path) => Sink::File(path),
        None if std::io::stdout().is_terminal() => {
            return Err(UsageError(
                "refusing to write audio to a terminal; use -o FILE or a pipe".into(),
            )
            .into())
        }
        None => Sink::Stdout(tokio::io::stdout()),
    };
    let request = SpeechRequest {
        text,
        voice: args.voice.clone(),
        model: args.model.clone(),
        format: Some(format.as_str().to_string()),
        sample_rate: args.sample_rate,
        speed: args.speed,
        bitrate: args.bitrate,
        normalize_loudness: args.normalize.then_some(true),
    };
    let started = Instant::now();
    let (audio, ttfa, sample_rate, cache) = if args.stream {
        stream_to(client, &request, sink).await?
    } else {
        let speech = client.synthesize(&request).await.context("synthesizing")?;
        let ttfa = started.elapsed();
        match sink {
            Sink::File(path) => write_atomic(&path, &speech.audio).await?,
            Sink::Stdout(mut out) => {
                out.write_all(&speech.audio)
                    .await
                    .context("writing to stdout")?;
                out.flush().await.context("writing to stdout")?;
            }
        }
        (
            speech.audio.to_vec(),
            ttfa,
            speech.info.sample_rate,
            speech.info.cache,
        )
    };
    let wall = started.elapsed();
    if args.verbose && !quiet {
        let seconds = audio_seconds(&audio, format, sample_rate);
        let rtf = seconds.filter(|s| *s > 0.0).map(|s| wall.as_secs_f64() / s);
        // One key=value line: easy to read and to grep.
        eprintln!(
            "ttfa_ms={:.0} total_ms={:.0} audio_s={} rtf={} bytes={} format={} cache={}",
            ttfa.as_secs_f64() * 1000.0,
            wall.as_secs_f64() * 1000.0,
            seconds.map_or("?".into(), |s| format!("{s:.3}")),
            rtf.map_or("?".into(), |r| format!("{r:.3}")),
            audio.len(),
            format,
            cache.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}

/// Streams into the sink, flushing each chunk. A file is written in place (so a player can
/// follow it) and removed if the stream breaks.
async fn stream_to(
    client: &Client,
    request: &SpeechRequest,
    sink: Sink,
) -> anyhow::Result<(Vec<u8>, std::time::Duration, Option<u32>, Option<String>)> {
    let mut stream = client
        .stream(request)
        .await
        .context("starting the stream")?;
    let mut writer: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &sink {
        Sink::Stdout(_) => Box::new(tokio::io::stdout()),
        Sink::File(path) => Box::new(
            tokio::fs::File::create(path)
                .await
                .with_context(|| format!("creating {}", path.display()))?,
        ),
    };
    let mut audio = Vec::new();
    let result: anyhow::Result<()> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("receiving audio")?;
            writer.write_all(&chunk).await.context("writing audio")?;
            writer.flush().await.context("writing audio")?;
            audio.extend_from_slice(&chunk);
        }
        Ok(())
    }
    .await;
    drop(writer);
    if let Err(err) = result {
        if let Sink::File(path) = &sink {
            let _ = tokio::fs::remove_file(path).await;
        }
        return Err(err);
    }
    let ttfa = stream.time_to_first_chunk().unwrap_or_default();
    let info = stream.info();
    Ok((audio, ttfa, info.sample_rate, info.cache.clone()))
}
