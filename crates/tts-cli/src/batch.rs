//! `tts batch`: every non-empty line of a text file to `DIR/<line number>.<ext>`, several at a
//! time. Resumable: a file that already exists is skipped, and each file appears only complete
//! (temp file + rename), so an interrupted run is finished by running it again.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tts_client::{Client, SpeechRequest};

use crate::output::{resolve_format, write_atomic};

#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    /// Text file, one utterance per line (empty lines are skipped).
    pub lines: PathBuf,
    /// Output directory (created if missing).
    #[arg(long, alias = "output")]
    pub out: PathBuf,
    /// Requests in flight at once.
    #[arg(short = 'j', long, default_value_t = 4)]
    pub jobs: usize,
    #[arg(short = 'v', long)]
    pub voice: Option<String>,
    #[arg(short, long)]
    pub model: Option<String>,
    /// wav, mp3 (default), opus, flac, pcm or mulaw.
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(long)]
    pub speed: Option<f32>,
    #[arg(long)]
    pub sample_rate: Option<u32>,
}

struct Job {
    line: usize,
    text: String,
    path: PathBuf,
}

/// File name of a line: zero-padded so files sort in line order.
fn file_name(line: usize, width: usize, extension: &str) -> String {
    format!("{line:0width$}.{extension}")
}

pub async fn run(client: &Client, args: BatchArgs, quiet: bool) -> anyhow::Result<()> {
    let format = resolve_format(args.format.as_deref(), None)?;
    let content = tokio::fs::read_to_string(&args.lines)
        .await
        .with_context(|| format!("reading {}", args.lines.display()))?;
    tokio::fs::create_dir_all(&args.out)
        .await
        .with_context(|| format!("creating {}", args.out.display()))?;
    let total_lines = content.lines().count();
    let width = total_lines.to_string().len().max(4);
    let (todo, skipped): (Vec<Job>, Vec<Job>) = content
        .lines()
        .enumerate()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(i, text)| Job {
            line: i + 1,
            text: text.trim().to_string(),
            path: args.out.join(file_name(i + 1, width, format.extension())),
        })
        .partition(|job| !is_done(&job.path));

    let bar = ProgressBar::new((todo.len() + skipped.len()) as u64);
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} lines  {per_sec}  eta {eta}  {msg}")
            .context("progress bar template")?,
    );
    bar.inc(skipped.len() as u64);

    let template = SpeechRequest {
        voice: args.voice.clone(),
        model: args.model.clone(),
        format: Some(format.as_str().to_string()),
        speed: args.speed,
        sample_rate: args.sample_rate,
        ..SpeechRequest::default()
    };
    let mut results = futures_util::stream::iter(todo)
        .map(|job| {
            let request = SpeechRequest {
                text: job.text.clone(),
                ..template.clone()
            };
            async move {
                let outcome = async {
                    let speech = client.synthesize(&request).await?;
                    write_atomic(&job.path, &speech.audio).await
                }
                .await;
                (job, outcome)
            }
        })
        .buffer_unordered(args.jobs.max(1));

    let mut written = 0usize;
    let mut first_error: Option<anyhow::Error> = None;
    let mut failed = 0usize;
    while let Some((job, outcome)) = results.next().await {
        bar.inc(1);
        match outcome {
            Ok(()) => written += 1,
            Err(err) => {
                failed += 1;
                bar.suspend(|| eprintln!("tts: error: line {}: {err:#}", job.line));
                first_error.get_or_insert(err.context(format!("line {}", job.line)));
            }
        }
    }
    bar.finish_and_clear();
    // The summary goes to stdout, one stable line for scripts.
    println!(
        "written {written} skipped {} failed {failed}",
        skipped.len()
    );
    match first_error {
        Some(err) => Err(err.context(format!(
            "{failed} of the lines failed; run again to retry them"
        ))),
        None => Ok(()),
    }
}

/// A non-empty file is a finished one: files only appear by rename once complete.
fn is_done(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_zero_padded_line_numbers() {
        assert_eq!(file_name(7, 4, "mp3"), "0007.mp3");
        assert_eq!(file_name(12345, 5, "wav"), "12345.wav");
    }
}
