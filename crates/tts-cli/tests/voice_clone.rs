//! End-to-end: `tts voice add` / `tts voice rm` against a real server with Kokoro and the
//! speaker encoder loaded (a small fitting budget keeps the upload quick). The sample is real
//! speech: the Piper voice, made with `tts say` on the same server.

mod common;

use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{models_dir, TestServer, VOICE};
use tts_server::ServerConfig;

fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        TestServer::start(ServerConfig {
            models_dir: models_dir(),
            default_voice: Some(VOICE.into()),
            voice_fit_secs: 1.0,
            voice_fit_iterations: 2,
            ..ServerConfig::default()
        })
    })
}

fn tts(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tts"))
        .env_remove("TTS_URL")
        .env_remove("TTS_API_KEY")
        .args(["--url", &server().base_url()])
        .args(args)
        .output()
        .expect("run tts")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn voice_add_lists_and_rm_removes_a_cloned_voice() {
    let dir = std::env::temp_dir().join(format!("tts-cli-clone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sample = dir.join("sample.wav");
    let sample_path = sample.to_str().unwrap();
    let text = "The bus leaves at six. It is a short ride to the station. From there the train \
        goes north along the river, past the old mill and the fields of barley, until it reaches \
        the city late in the evening.";
    let output = tts(&["say", text, "-v", VOICE, "-o", sample_path]);
    assert!(output.status.success(), "{}", stderr(&output));

    // Without consent the server refuses, naming the field; the CLI says so and exits 3.
    let output = tts(&["voice", "add", sample_path, "--name", "Joe clone"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("field consent"),
        "{}",
        stderr(&output)
    );

    // Fitting takes a while on a busy machine: allow ten minutes.
    let started = std::time::Instant::now();
    let output = tts(&[
        "--timeout",
        "600",
        "voice",
        "add",
        sample_path,
        "--name",
        "Joe clone",
        "--consent",
    ]);
    eprintln!("voice add took {:?}", started.elapsed());
    assert!(output.status.success(), "{}", stderr(&output));
    let id = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "id {id:?}"
    );

    let output = tts(&["voices", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let entry = list["voices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id.as_str())
        .expect("uploaded voice listed");
    assert_eq!(entry["kind"], "cloned");

    let output = tts(&["voice", "rm", &id]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = tts(&["voices"]);
    assert!(!String::from_utf8_lossy(&output.stdout).contains(&id));
    // Gone: a second removal is a rejected request.
    let output = tts(&["voice", "rm", &id]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    std::fs::remove_dir_all(&dir).unwrap();
}
