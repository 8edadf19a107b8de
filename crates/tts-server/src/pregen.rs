//! Pre-generation: synthesize known phrases into the cache ahead of traffic, either from a file
//! (`tts-server pregen phrases.txt --voice V --format F`, with a progress bar) or from the config's
//! `pregen = [...]` list at start-up (in the background; the server is ready meanwhile).

use std::path::PathBuf;

use anyhow::Context;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::batch::synthesize_item;
use crate::cli::ServeArgs;
use crate::routes::tts::TtsRequest;
use crate::speech::RequestContext;
use crate::state::AppState;

/// One entry of the config's `pregen` list: a bare string (default voice and format) or a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PregenPhrase {
    Text(String),
    Item {
        text: String,
        #[serde(default)]
        voice: Option<String>,
        #[serde(default)]
        format: Option<String>,
        #[serde(default)]
        speed: Option<f32>,
    },
}

impl PregenPhrase {
    fn into_item(self) -> TtsRequest {
        match self {
            Self::Text(text) => TtsRequest {
                text,
                ..TtsRequest::default()
            },
            Self::Item {
                text,
                voice,
                format,
                speed,
            } => TtsRequest {
                text,
                voice,
                format,
                speed,
                ..TtsRequest::default()
            },
        }
    }
}

/// `tts-server pregen`
#[derive(Debug, clap::Args)]
pub struct PregenArgs {
    /// Text file, one phrase per line (blank lines and lines starting with `#` are skipped).
    pub phrases: PathBuf,
    /// Voice of every phrase; default: the server's default voice.
    #[arg(long)]
    pub voice: Option<String>,
    /// Format to cache (the one clients will ask for) [default: mp3].
    #[arg(long)]
    pub format: Option<String>,
    #[arg(long)]
    pub speed: Option<f32>,
    /// Phrases synthesized at the same time [default: the config's batch_concurrency].
    #[arg(long)]
    pub concurrency: Option<usize>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// What a run did, printed as its summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PregenReport {
    pub total: usize,
    pub synthesized: usize,
    pub already_cached: usize,
    pub failed: usize,
}

impl std::fmt::Display for PregenReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pregen: {} phrases: {} synthesized, {} already cached, {} failed",
            self.total, self.synthesized, self.already_cached, self.failed
        )
    }
}

/// Phrases of a pregen file: one per non-blank line, `#` comments skipped.
pub fn parse_phrases(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Synthesizes every item through the cache, `concurrency` at a time, ticking `progress`.
pub async fn pregenerate(
    state: &AppState,
    items: Vec<TtsRequest>,
    concurrency: usize,
    progress: &ProgressBar,
) -> PregenReport {
    let total = items.len();
    let outcomes: Vec<Result<bool, String>> = futures_util::stream::iter(items)
        .map(|item| {
            let state = state.clone();
            async move {
                let outcome = pregenerate_one(&state, &item).await;
                if let Err(err) = &outcome {
                    progress.println(format!("failed: {:?}: {err}", item.text));
                }
                progress.inc(1);
                outcome
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut report = PregenReport {
        total,
        ..PregenReport::default()
    };
    for outcome in outcomes {
        match outcome {
            Ok(true) => report.already_cached += 1,
            Ok(false) => report.synthesized += 1,
            Err(_) => report.failed += 1,
        }
    }
    report
}

/// `Ok(true)` when the cache already had it.
async fn pregenerate_one(state: &AppState, item: &TtsRequest) -> Result<bool, String> {
    let params = state
        .validate(item.input(state.config.max_text_chars))
        .map_err(|err| err.to_string())?;
    let ctx = RequestContext::new("pregen");
    let done = synthesize_item(state, &params, &ctx)
        .await
        .map_err(|err| err.to_string())?;
    Ok(done.was_cached())
}

/// Starts warming the config's `pregen` list in the background, if it has any phrase.
pub fn warm_on_start(state: &AppState) {
    if state.config.pregen.is_empty() {
        return;
    }
    let items: Vec<TtsRequest> = state
        .config
        .pregen
        .iter()
        .cloned()
        .map(PregenPhrase::into_item)
        .collect();
    let state = state.clone();
    tokio::spawn(async move {
        let concurrency = state.config.batch_concurrency;
        let report = pregenerate(&state, items, concurrency, &ProgressBar::hidden()).await;
        tracing::info!(
            total = report.total,
            synthesized = report.synthesized,
            already_cached = report.already_cached,
            failed = report.failed,
            "start-up pre-generation done"
        );
    });
}

/// `tts-server pregen`: loads the models and the cache, synthesizes the file's phrases and prints
/// the summary. Run it while no server uses the same storage directory (its files are locked).
pub async fn run(args: PregenArgs) -> anyhow::Result<PregenReport> {
    let text = tokio::fs::read_to_string(&args.phrases)
        .await
        .with_context(|| format!("reading {}", args.phrases.display()))?;
    let phrases = parse_phrases(&text);
    anyhow::ensure!(
        !phrases.is_empty(),
        "{} has no phrases",
        args.phrases.display()
    );
    let mut config = args.serve.into_config()?;
    // Nobody calls this process over HTTP: no keys needed whatever the bind address says.
    config.auth = crate::auth::AuthMode::Off;
    // The config's own list would be warmed by a server, not by this run.
    config.pregen.clear();
    let concurrency = args.concurrency.unwrap_or(config.batch_concurrency);
    let state = crate::build_state(config).await.context("loading models")?;
    let items: Vec<TtsRequest> = phrases
        .into_iter()
        .map(|text| TtsRequest {
            text,
            voice: args.voice.clone(),
            format: args.format.clone(),
            speed: args.speed,
            ..TtsRequest::default()
        })
        .collect();

    let progress = ProgressBar::new(items.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} phrases  {elapsed_precise}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = pregenerate(&state, items, concurrency, &progress).await;
    progress.finish_and_clear();
    println!("{report}");
    let engine = state.speech.engine().clone();
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .ok();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrase_file_skips_blank_lines_and_comments() {
        let phrases = parse_phrases("# greetings\nHello there.\n\n   \n  Good night.  \n#x\n");
        assert_eq!(phrases, vec!["Hello there.", "Good night."]);
    }

    #[test]
    fn config_list_takes_strings_and_tables() {
        #[derive(Deserialize)]
        struct Wrapper {
            pregen: Vec<PregenPhrase>,
        }
        let parsed: Wrapper = toml::from_str(
            "pregen = [\"Welcome.\", { text = \"Please hold.\", voice = \"jf_alpha\", format = \"wav\" }]",
        )
        .unwrap();
        assert_eq!(parsed.pregen[0], PregenPhrase::Text("Welcome.".into()));
        let item = parsed.pregen[1].clone().into_item();
        assert_eq!(item.voice.as_deref(), Some("jf_alpha"));
        assert_eq!(item.format.as_deref(), Some("wav"));
    }

    #[test]
    fn summary_line_names_all_three_outcomes() {
        let report = PregenReport {
            total: 5,
            synthesized: 3,
            already_cached: 1,
            failed: 1,
        };
        assert_eq!(
            report.to_string(),
            "pregen: 5 phrases: 3 synthesized, 1 already cached, 1 failed"
        );
    }
}
