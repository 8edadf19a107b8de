//! End-to-end: API keys from `--api-key` or `TTS_API_KEY` against a real server with auth on,
//! and `tts usage`.

mod common;

use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{piper_only_models_dir, TestServer, VOICE};
use tts_server::auth::AuthMode;
use tts_server::ServerConfig;

const USER_KEY: &str = "tts_cli_test_user_key_0001";

fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tts-cli-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let keys_file = dir.join("keys.toml");
        std::fs::write(
            &keys_file,
            format!(
                "[[keys]]\nid = \"cli\"\nrole = \"user\"\nsha256 = \"{}\"\n",
                tts_accounts::hash_key(USER_KEY)
            ),
        )
        .unwrap();
        TestServer::start(ServerConfig {
            models_dir: piper_only_models_dir(),
            auth: AuthMode::On,
            keys_file,
            ..ServerConfig::default()
        })
    })
}

fn tts() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tts"));
    command
        .env_remove("TTS_API_KEY")
        .env("TTS_URL", server().base_url());
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run tts")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn missing_api_key_exits_3_with_the_servers_code() {
    let output = run(tts().args(["voices"]));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("HTTP 401"), "{}", stderr(&output));
}

#[test]
fn api_key_from_flag_or_environment_is_accepted() {
    let output = run(tts().args(["--api-key", USER_KEY, "voices"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(tts().env("TTS_API_KEY", USER_KEY).args(["voices"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains(VOICE));
}

#[test]
fn usage_prints_the_keys_report_as_json() {
    let dir = std::env::temp_dir().join(format!("tts-cli-auth-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("hello.wav");
    let output = run(tts()
        .env("TTS_API_KEY", USER_KEY)
        .args(["say", "Hello there.", "-o"])
        .arg(&out));
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(tts().env("TTS_API_KEY", USER_KEY).args(["usage"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["total"].is_object(), "{report}");
    assert!(report["rows"].is_array(), "{report}");
}
