//! Crash safety of the voice library with the real `tts-server` binary: a server killed with
//! SIGKILL in the middle of an upload (body half sent) and of a fit leaves, after a restart on the
//! same storage, no half voice and no temp files, while a finished voice survives and still speaks.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{client, decode, json_of, rms, THREE_SENTENCES, VOICE};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

/// A `tts-server serve` child process; killed when dropped.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    /// Starts the binary on a free port with `settings` (TOML) and waits until `/ready` answers.
    /// Config and log files go next to `storage`, in the test's own temp dir.
    async fn start(storage: &Path, settings: &str) -> Self {
        let config = storage.with_extension(format!("{}.toml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&config, settings).expect("write config");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(storage.with_extension(format!("{port}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tts-server"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--bind")
            .arg(addr.to_string())
            .arg("--models-dir")
            .arg(common::models_dir())
            .arg("--storage-dir")
            .arg(storage)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tts-server");
        let mut server = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("tts-server exited during start-up: {status}");
            }
            let ready = client()
                .get(server.url("/ready"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return server;
            }
            assert!(Instant::now() < deadline, "tts-server not ready in time");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// SIGKILL: no shutdown code runs.
    fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const QUICK_FIT: &str = "voice_fit_secs = 1.0\nvoice_fit_iterations = 2\n";
/// A fit that runs far longer than the test waits, so the kill lands inside it.
const SLOW_FIT: &str = "voice_fit_secs = 600.0\nvoice_fit_iterations = 1000000\n";

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn upload_form(wav: Vec<u8>, name: &str) -> Form {
    Form::new()
        .part("file", Part::bytes(wav).file_name("sample.wav"))
        .text("name", name.to_string())
        .text("consent", "true")
}

async fn cloned_ids(server: &ServerProcess) -> Vec<String> {
    let list: Value = json_of(client().get(server.url("/v1/voices"))).await;
    list["voices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == "cloned")
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

/// Sends the headers and half of a multipart upload, and leaves the connection open.
fn half_sent_upload(addr: SocketAddr, wav: &[u8]) -> TcpStream {
    let boundary = "crashtestboundary";
    let mut body = Vec::new();
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nHalf\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"consent\"\r\n\r\ntrue\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\
         Content-Type: audio/wav\r\n\r\n"
    )
    .unwrap();
    body.extend_from_slice(wav);
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "POST /v1/voices HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    stream.flush().unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_mid_upload_and_mid_fit_leaves_no_half_voice_and_finished_voices_survive() {
    let root: PathBuf = std::env::temp_dir().join(format!(
        "tts-voice-crash-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let storage = root.join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    let voices = storage.join("voices");

    // 1. A finished voice.
    let first = ServerProcess::start(&storage, QUICK_FIT).await;
    let response = client()
        .post(first.url("/v1/tts"))
        .json(&json!({"text": THREE_SENTENCES, "voice": VOICE, "format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let wav = response.bytes().await.unwrap().to_vec();
    let response = client()
        .post(first.url("/v1/voices"))
        .multipart(upload_form(wav.clone(), "Survivor"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    let survivor = body["id"].as_str().unwrap().to_string();
    drop(first);

    // 2. A server killed with one upload half sent and another inside its fit.
    let mut crashing = ServerProcess::start(&storage, SLOW_FIT).await;
    let _half = half_sent_upload(crashing.addr, &wav);
    let url = crashing.url("/v1/voices");
    let form = upload_form(wav.clone(), "Doomed");
    let in_fit = tokio::spawn(async move { client().post(url).multipart(form).send().await });
    let deadline = Instant::now() + Duration::from_secs(120);
    while !entries(&voices).iter().any(|n| n.starts_with(".tmp-")) {
        assert!(
            Instant::now() < deadline,
            "the upload never reached its fit: {:?}",
            entries(&voices)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the fit get going, then pull the plug.
    tokio::time::sleep(Duration::from_millis(500)).await;
    crashing.kill9();
    assert!(
        in_fit.await.unwrap().is_err(),
        "the killed upload got an answer"
    );
    assert!(
        entries(&voices).iter().any(|n| n.starts_with(".tmp-")),
        "the crash left the unfinished voice's temp dir"
    );

    // 3. Restart on the same storage: the temp dir is swept, the finished voice is back.
    let restarted = ServerProcess::start(&storage, QUICK_FIT).await;
    assert_eq!(entries(&voices), vec![survivor.clone()]);
    assert_eq!(cloned_ids(&restarted).await, vec![survivor.clone()]);
    let response = client()
        .post(restarted.url("/v1/tts"))
        .json(&json!({"text": "Still here after a crash.", "voice": survivor, "format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let pcm = decode(&response.bytes().await.unwrap(), "wav", 0);
    assert_eq!(pcm.sample_rate, 24_000);
    assert!(rms(&pcm) > 0.01, "restored voice is silent");
    drop(restarted);
    std::fs::remove_dir_all(&root).ok();
}
