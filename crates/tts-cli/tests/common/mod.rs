//! Shared helpers of the client's end-to-end tests: a real tts-server on an ephemeral port with
//! the real Piper weights from `models/`, started in-process (pattern of tts-server's tests).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;

use tts_server::{AppState, ServerConfig};

/// The Piper voice the tests speak with (the fast model).
pub const VOICE: &str = "en_US-joe-medium";
pub const THREE_SENTENCES: &str = "The bus leaves at six. It is a short ride to the station. \
    From there the train goes north along the river, past the old mill and the fields of barley.";

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

/// A models directory with only the Piper voice, so the server starts fast.
pub fn piper_only_models_dir() -> PathBuf {
    let source = models_dir().join("piper");
    let dir = std::env::temp_dir().join(format!("tts-cli-e2e-piper-{}", std::process::id()));
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
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
        config.storage_dir =
            std::env::temp_dir().join(format!("tts-cli-e2e-storage-{}-{n}", std::process::id()));
        // A fresh one: the cache index and usage database are locked by the server that opened them.
        let _ = std::fs::remove_dir_all(&config.storage_dir);
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let state = tts_server::build_state(config).await.expect("server state");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("addr");
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

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
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
}

static SHARED: std::sync::OnceLock<TestServer> = std::sync::OnceLock::new();

/// One Piper-only server per test binary, default settings.
pub fn shared() -> &'static TestServer {
    SHARED.get_or_init(|| {
        TestServer::start(ServerConfig {
            models_dir: piper_only_models_dir(),
            ..ServerConfig::default()
        })
    })
}

/// Decodes a body of `format`; raw s16le needs its rate.
pub fn decode(bytes: &[u8], format: &str, rate: u32) -> tts_audio::Pcm {
    if format == "pcm" {
        assert_eq!(bytes.len() % 2, 0, "s16le body has an odd length");
        let samples = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
            .collect();
        return tts_audio::Pcm::new(samples, rate);
    }
    tts_audio::decode(bytes, Some(format))
        .unwrap_or_else(|err| panic!("{format} body does not decode: {err}"))
}

/// RMS of the signal, to check that audio is not silence.
pub fn rms(pcm: &tts_audio::Pcm) -> f32 {
    if pcm.samples.is_empty() {
        return 0.0;
    }
    (pcm.samples.iter().map(|s| s * s).sum::<f32>() / pcm.samples.len() as f32).sqrt()
}
