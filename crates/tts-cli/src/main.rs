//! `tts`: the command-line client of tts-server.
//!
//! Exit codes (stable, for scripts): 0 success; 1 other failure (local files, unexpected
//! answers); 2 usage error; 3 the server rejected the request (4xx: bad text, unknown voice,
//! missing key); 4 the server is unavailable, overloaded or failed (429, 5xx, timeout, broken
//! stream); 5 no connection to the server. Errors go to stderr as one line starting `tts: error:`.

mod batch;
mod bench;
mod output;
mod say;
mod voices;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tts_client::{Client, ClientError, RetryPolicy};

/// Command-line client of tts-server.
#[derive(Debug, Parser)]
#[command(name = "tts", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Server base URL.
    #[arg(
        long,
        env = "TTS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// API key, sent as `Authorization: Bearer <key>`.
    #[arg(long, env = "TTS_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
    /// Seconds allowed for one whole request (0: no limit).
    #[arg(long, default_value_t = 300.0, global = true)]
    timeout: f64,
    /// Seconds allowed to connect.
    #[arg(long, default_value_t = 10.0, global = true)]
    connect_timeout: f64,
    /// Retries on connection errors, 429 and 503 (honouring Retry-After).
    #[arg(long, default_value_t = 3, global = true)]
    retries: u32,
    /// No progress bar or informational messages on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str =
    "Exit codes: 0 ok, 1 other failure, 2 usage, 3 server rejected the request, \
4 server unavailable/overloaded/failed, 5 cannot connect.";

#[derive(Debug, Subcommand)]
enum Command {
    /// Synthesize text to a file or stdout.
    Say(say::SayArgs),
    /// List the server's voices.
    Voices(voices::VoicesArgs),
    /// Add or remove a cloned voice.
    #[command(subcommand)]
    Voice(voices::VoiceCommand),
    /// Synthesize every line of a text file into a directory (resumable).
    Batch(batch::BatchArgs),
    /// Measure time to first audio, latency, throughput and cache hits.
    Bench(bench::BenchArgs),
    /// Show this key's usage (`GET /v1/usage`) as JSON.
    Usage,
}

/// The exit codes documented above.
mod exit {
    pub const OTHER: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const REJECTED: u8 = 3;
    pub const UNAVAILABLE: u8 = 4;
    pub const CONNECT: u8 = 5;
}

/// A usage error found after argument parsing (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code of a client error.
pub fn client_exit_code(err: &ClientError) -> u8 {
    match err {
        ClientError::Connect { .. } => exit::CONNECT,
        ClientError::Server(server) => match server.status {
            Some(429) | None => exit::UNAVAILABLE,
            Some(status) if (400..500).contains(&status) => exit::REJECTED,
            Some(_) => exit::UNAVAILABLE,
        },
        ClientError::Timeout { .. } | ClientError::StreamInterrupted { .. } => exit::UNAVAILABLE,
        ClientError::InvalidUrl { .. } | ClientError::InvalidRequest(_) => exit::USAGE,
        ClientError::Http(_) | ClientError::WebSocket(_) | ClientError::Protocol(_) => exit::OTHER,
    }
}

pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            return client_exit_code(client);
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return exit::USAGE;
        }
    }
    exit::OTHER
}

impl Cli {
    fn client(&self) -> anyhow::Result<Client> {
        let mut builder = Client::builder(self.url.clone())
            .connect_timeout(secs(self.connect_timeout))
            .timeout((self.timeout > 0.0).then(|| secs(self.timeout)))
            // One bound for the command line: a voice upload is silent for as long as its fit runs.
            .read_timeout((self.timeout > 0.0).then(|| secs(self.timeout)))
            .retry(RetryPolicy {
                max_retries: self.retries,
                ..RetryPolicy::default()
            })
            .user_agent(format!("tts-cli/{}", env!("CARGO_PKG_VERSION")));
        if let Some(key) = &self.api_key {
            builder = builder.api_key(key.clone());
        }
        builder.build().context("--url")
    }
}

fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value.clamp(0.001, 1e9))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = cli.client()?;
    match cli.command {
        Command::Say(args) => say::run(&client, args, cli.quiet).await,
        Command::Voices(args) => voices::list(&client, args).await,
        Command::Voice(command) => voices::run(&client, command, cli.quiet).await,
        Command::Batch(args) => batch::run(&client, args, cli.quiet).await,
        Command::Bench(args) => bench::run(&client, args, cli.quiet).await,
        Command::Usage => {
            let usage = client.usage().await.context("reading usage")?;
            println!("{}", serde_json::to_string_pretty(&usage)?);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tts: error: starting the async runtime: {err}");
            return ExitCode::from(exit::OTHER);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tts: error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn say_takes_v_as_voice_and_verbose_as_long_flag() {
        let cli = Cli::try_parse_from(["tts", "say", "hi", "-v", "jf_alpha", "--verbose"]).unwrap();
        match cli.command {
            Command::Say(args) => {
                assert_eq!(args.voice.as_deref(), Some("jf_alpha"));
                assert!(args.verbose);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejected_input_and_overload_have_distinct_exit_codes() {
        let rejected = ClientError::Server(tts_client::ServerError {
            status: Some(400),
            code: "unknown_voice".into(),
            message: "m".into(),
            field: Some("voice".into()),
            retry_after: None,
        });
        let overloaded = ClientError::Server(tts_client::ServerError {
            status: Some(503),
            code: "overloaded".into(),
            message: "m".into(),
            field: None,
            retry_after: None,
        });
        assert_eq!(client_exit_code(&rejected), exit::REJECTED);
        assert_eq!(client_exit_code(&overloaded), exit::UNAVAILABLE);
        let wrapped = anyhow::Error::new(rejected).context("synthesizing");
        assert_eq!(exit_code(&wrapped), exit::REJECTED);
    }
}
