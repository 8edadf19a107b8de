//! `tts-server serve` (config → state → router → serve with graceful shutdown) and
//! `tts-server synth` (one text to one file).

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use tts_server::cli::{Cli, Command};

fn main() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter);
    // TTS_LOG_FORMAT=json gives one JSON object per line, for log shippers.
    if std::env::var("TTS_LOG_FORMAT").is_ok_and(|f| f == "json") {
        subscriber.json().init();
    } else {
        subscriber.init();
    }

    match Cli::parse().command {
        Command::Serve(args) => {
            let config = args.into_config()?;
            tokio::runtime::Runtime::new()?.block_on(serve(config))
        }
        Command::Synth(args) => {
            let report = tts_server::synth::run(&args)?;
            tracing::info!(
                out = %args.out.display(),
                characters = report.characters,
                sentences = report.sentences,
                audio_seconds = report.audio_seconds,
                wall_seconds = report.wall_seconds,
                rtf = report.rtf,
                x_real_time = if report.rtf > 0.0 { 1.0 / report.rtf } else { 0.0 },
                sample_rate = report.sample_rate,
                "synthesized"
            );
            Ok(())
        }
        Command::Keys(args) => {
            let out = tts_server::auth::run_keys_command(&args).context("keys")?;
            println!("{out}");
            Ok(())
        }
        Command::Pregen(args) => {
            let report = tokio::runtime::Runtime::new()?.block_on(tts_server::pregen::run(args))?;
            anyhow::ensure!(report.failed == 0, "{} phrase(s) failed", report.failed);
            Ok(())
        }
        Command::FetchKokoro(args) => {
            let dir = tts_server::fetch::run(&args)?;
            println!("{}", dir.display());
            Ok(())
        }
    }
}

async fn serve(config: tts_server::ServerConfig) -> anyhow::Result<()> {
    let bind = config.bind;
    let state = tts_server::build_state(config)
        .await
        .context("loading models")?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    tts_server::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
