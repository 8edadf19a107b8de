//! `tts-server fetch-kokoro`: downloads the official Kokoro release (`hexgrad/Kokoro-82M`) from the
//! Hugging Face hub into a directory that the server then loads like any other Kokoro directory
//! (`serve --models-dir models/hub` reads `models/hub/kokoro`). Needs the `hub` feature.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct FetchKokoroArgs {
    /// Hub repository of the release.
    #[arg(long, default_value = tts_models::kokoro::hub::DEFAULT_REPO)]
    pub repo: String,
    /// Branch, tag or commit [default: main].
    #[arg(long)]
    pub revision: Option<String>,
    /// Comma-separated voice names (af_heart,bf_emma) or `all`.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub voices: Vec<String>,
    /// Kokoro directory to fill (`<models-dir>/kokoro` for `serve --models-dir <models-dir>`).
    #[arg(long, default_value = "models/hub/kokoro")]
    pub dest: PathBuf,
}

/// Runs the download; returns the filled directory.
#[cfg(feature = "hub")]
pub fn run(args: &FetchKokoroArgs) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    tts_models::kokoro::hub::download_kokoro(
        &args.repo,
        args.revision.as_deref(),
        &args.voices,
        &args.dest,
    )
    .with_context(|| format!("fetch-kokoro {} into {}", args.repo, args.dest.display()))
}

/// Without the `hub` feature there is no HTTP client in the binary: say how to get one.
#[cfg(not(feature = "hub"))]
pub fn run(args: &FetchKokoroArgs) -> anyhow::Result<PathBuf> {
    anyhow::bail!(
        "fetch-kokoro {}: this tts-server was built without hub support; rebuild with \
         `cargo build --release -p tts-server --features hub`, or place kokoro-v1_0.pth, \
         config.json and voices/*.pt in {} by hand",
        args.repo,
        args.dest.display()
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    #[test]
    fn fetch_kokoro_defaults_to_the_official_repo_and_all_voices() {
        let cli = Cli::try_parse_from(["tts-server", "fetch-kokoro"]).unwrap();
        let Command::FetchKokoro(args) = cli.command else {
            panic!("expected fetch-kokoro");
        };
        assert_eq!(args.repo, "hexgrad/Kokoro-82M");
        assert_eq!(args.voices, vec!["all"]);
        assert_eq!(args.revision, None);
        assert_eq!(args.dest, std::path::PathBuf::from("models/hub/kokoro"));
    }

    #[test]
    fn fetch_kokoro_splits_the_voice_list() {
        let cli = Cli::try_parse_from([
            "tts-server",
            "fetch-kokoro",
            "--voices",
            "af_heart,bf_emma",
            "--revision",
            "v1.0",
            "--dest",
            "/tmp/k",
        ])
        .unwrap();
        let Command::FetchKokoro(args) = cli.command else {
            panic!("expected fetch-kokoro");
        };
        assert_eq!(args.voices, vec!["af_heart", "bf_emma"]);
        assert_eq!(args.revision.as_deref(), Some("v1.0"));
    }

    #[cfg(not(feature = "hub"))]
    #[test]
    fn fetch_kokoro_without_hub_feature_says_how_to_rebuild() {
        let cli = Cli::try_parse_from(["tts-server", "fetch-kokoro"]).unwrap();
        let Command::FetchKokoro(args) = cli.command else {
            panic!("expected fetch-kokoro");
        };
        let err = super::run(&args).unwrap_err().to_string();
        assert!(err.contains("--features hub"), "{err}");
    }
}
