//! Shared helpers of the end-to-end tests: a real server on an ephemeral port with the real
//! weights from `models/`, and decoding of what it returns.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;

use tts_audio::Pcm;
use tts_server::{AppState, ServerConfig};

/// The Piper voice the tests speak with (the fast model).
pub const VOICE: &str = "en_US-joe-medium";
pub const THREE_SENTENCES: &str = "The bus leaves at six. It is a short ride to the station. \
    From there the train goes north along the river, past the old mill and the fields of barley, \
    until it reaches the city late in the evening.";

/// `models/` at the workspace root, or `TTS_MODELS_DIR`.
pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("TTS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let piper = dir.join("piper").join(format!("{VOICE}.onnx"));
    assert!(
        piper.is_file(),
        "model weights missing: {} not found; run scripts/fetch_models.py",
        piper.display()
    );
    dir
}

/// A models directory with only the Piper voice, for tests that need fast start-up.
pub fn piper_only_models_dir() -> PathBuf {
    let source = models_dir().join("piper");
    let dir = std::env::temp_dir().join(format!("tts-e2e-piper-{}", std::process::id()));
    let piper = dir.join("piper");
    std::fs::create_dir_all(&piper).expect("temp models dir");
    for name in [format!("{VOICE}.onnx"), format!("{VOICE}.onnx.json")] {
        let link = piper.join(&name);
        if !link.exists() {
            std::os::unix::fs::symlink(
                source.join(&name).canonicalize().expect("model path"),
                &link,
            )
            .expect("symlink model");
        }
    }
    dir
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on its own runtime thread (so it outlives any one test's runtime).
    pub fn start(mut config: ServerConfig) -> Self {
        config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
        config.storage_dir = fresh_storage_dir();
        Self::start_as_configured(config)
    }

    /// Like `start`, but listens on `config.bind` (port 0: any free one) and keeps
    /// `config.storage_dir`: for auth on non-loopback addresses and state that survives a restart.
    pub fn start_as_configured(config: ServerConfig) -> Self {
        let bind = config.bind;
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let state = tts_server::build_state(config).await.expect("server state");
                let listener = tokio::net::TcpListener::bind(bind).await.expect("bind");
                let mut addr = listener.local_addr().expect("addr");
                // Bound to every interface: clients still connect over loopback.
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                ready_tx
                    .send((addr, state.clone()))
                    .expect("report address");
                tts_server::serve(listener, state, async {
                    let _ = stop_rx.await;
                })
                .await
                .expect("serve");
            });
        });
        let (addr, state) = ready_rx.recv().expect("server failed to start");
        Self {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Sends the shutdown signal and waits until the server has drained and stopped.
    pub fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread");
        }
    }

    /// Sends the shutdown signal without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A new, empty storage directory: servers of one test binary must not share one, since the cache
/// index and `usage.redb` are locked by the server that opened them.
pub fn fresh_storage_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tts-e2e-storage-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

/// Decodes a response body of `format` to PCM; raw formats need their rate.
pub fn decode(bytes: &[u8], format: &str, rate: u32) -> Pcm {
    match format {
        "pcm" => {
            assert_eq!(bytes.len() % 2, 0, "s16le body has an odd length");
            let samples = bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
                .collect();
            Pcm::new(samples, rate)
        }
        "mulaw" => Pcm::new(bytes.iter().map(|&b| mulaw_to_linear(b)).collect(), rate),
        other => tts_audio::decode(bytes, Some(other))
            .unwrap_or_else(|err| panic!("{other} body does not decode: {err}")),
    }
}

/// G.711 mu-law expansion (the test's own reference, independent of the encoder).
fn mulaw_to_linear(byte: u8) -> f32 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0f;
    let magnitude = ((((mantissa as i32) << 3) + 0x84) << exponent) - 0x84;
    let value = if sign != 0 { -magnitude } else { magnitude };
    value as f32 / 32768.0
}

/// RMS of the signal, to check that audio is not silence.
pub fn rms(pcm: &Pcm) -> f32 {
    if pcm.samples.is_empty() {
        return 0.0;
    }
    (pcm.samples.iter().map(|s| s * s).sum::<f32>() / pcm.samples.len() as f32).sqrt()
}

/// The value of a Prometheus counter summed over its label sets.
pub fn metric_sum(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .expect("ascii header")
}

static SHARED: std::sync::OnceLock<TestServer> = std::sync::OnceLock::new();

/// One server per test binary, with every model in `models/` and the default settings.
pub fn shared() -> &'static TestServer {
    SHARED.get_or_init(|| {
        let config = ServerConfig {
            models_dir: models_dir(),
            ..ServerConfig::default()
        };
        TestServer::start(config)
    })
}
