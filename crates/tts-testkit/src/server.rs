//! A real `tts-server` started in-process on a free loopback port with the real weights and a
//! fresh storage directory, on its own runtime thread so it outlives any one test's runtime.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;

use tts_server::{AppState, ServerConfig};

/// A running in-process server; `shutdown` drains and stops it. Dropping it stops it too and
/// removes the storage directory it created.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The storage directory `start` made for this server alone.
    owned_storage: Option<PathBuf>,
}

impl TestServer {
    /// Starts `config` on 127.0.0.1 (any free port) with a fresh storage directory, removed when
    /// the server is dropped.
    pub fn start(mut config: ServerConfig) -> Self {
        config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
        config.storage_dir = fresh_storage_dir();
        let storage = config.storage_dir.clone();
        let mut server = Self::start_as_configured(config);
        server.owned_storage = Some(storage);
        server
    }

    /// Like `start`, from the default settings with the Piper-only models directory, after `tweak`
    /// has adjusted them.
    pub fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = ServerConfig {
            models_dir: crate::piper_only_models_dir(),
            ..ServerConfig::default()
        };
        tweak(&mut config);
        Self::start(config)
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
            owned_storage: None,
        }
    }

    /// `http://<addr>`, for clients that take a base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Sends the shutdown signal and waits until the server has drained and stopped.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
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

impl Drop for TestServer {
    fn drop(&mut self) {
        // A server whose test panicked is still stopped; a second panic here would abort.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Bounded wait: a test may drop its server with requests still draining; its directory
        // is then left for the next run's sweep rather than pulled from under it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let stopped = match self.thread.take() {
            Some(thread) => {
                while !thread.is_finished() && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                thread.is_finished() && thread.join().is_ok()
            }
            None => true,
        };
        if let Some(dir) = self.owned_storage.take().filter(|_| stopped) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

const STORAGE_PREFIX: &str = "tts-e2e-storage-";

/// A new, empty storage directory: servers of one test binary must not share one, since the cache
/// index and `usage.redb` are locked by the server that opened them. The first call of a process
/// also removes the directories of test processes that have exited (servers kept for a whole
/// binary, and restart tests' directories, are never dropped).
pub fn fresh_storage_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(remove_dead_processes_storage);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{STORAGE_PREFIX}{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn remove_dead_processes_storage() {
    // Liveness is read from /proc; elsewhere nothing is swept.
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(STORAGE_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = std::path::Path::new("/proc").join(pid.to_string()).exists();
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
