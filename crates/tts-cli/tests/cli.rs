//! End-to-end: the `tts` binary against a real in-process tts-server (Piper weights): each
//! subcommand, its outputs, and the exit codes scripts rely on.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{decode, rms, shared, VOICE};

/// `tts` pointed at the shared server, with no TTS_* settings inherited from the environment.
fn tts() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tts"));
    command
        .env_remove("TTS_URL")
        .env_remove("TTS_API_KEY")
        .args(["--url", &shared().base_url()]);
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run tts")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tts-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn say_writes_a_file_in_the_format_of_its_extension() {
    let dir = temp_dir("say");
    let out = dir.join("hello.wav");
    let output = run(tts()
        .args(["say", "Hello there, how are you?", "-v", VOICE, "-o"])
        .arg(&out));
    assert!(output.status.success(), "{}", stderr(&output));
    let pcm = decode(&std::fs::read(&out).unwrap(), "wav", 0);
    assert!(pcm.duration_secs() > 0.5);
    assert!(rms(&pcm) > 0.01);
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary file left behind");
}

#[test]
fn say_reads_stdin_and_streams_mp3_to_stdout() {
    let mut child = tts()
        .args(["say", "-", "-v", VOICE, "-f", "mp3", "--stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"The bus leaves at six. It is a short ride.")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let pcm = decode(&output.stdout, "mp3", 0);
    assert!(pcm.duration_secs() > 1.0, "{} s", pcm.duration_secs());
}

#[test]
fn say_verbose_reports_ttfa_audio_seconds_and_rtf() {
    let dir = temp_dir("verbose");
    let out = dir.join("v.pcm");
    let output = run(tts()
        .args([
            "say",
            "One sentence. And a second one.",
            "-v",
            VOICE,
            "--stream",
            "--verbose",
            "-o",
        ])
        .arg(&out));
    assert!(output.status.success(), "{}", stderr(&output));
    let report = stderr(&output);
    let field = |name: &str| -> f64 {
        report
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} missing in {report:?}"))
            .parse()
            .unwrap_or_else(|_| panic!("{name} is not a number in {report:?}"))
    };
    let bytes = std::fs::metadata(&out).unwrap().len() as f64;
    // Raw s16le at Piper's 22.05 kHz: the reported seconds follow from the size.
    assert!((field("audio_s") - bytes / 2.0 / 22_050.0).abs() < 0.01);
    assert!(field("ttfa_ms") <= field("total_ms"));
    assert!(field("rtf") > 0.0);
}

#[test]
fn say_with_an_unknown_voice_exits_3_naming_code_and_field() {
    let dir = temp_dir("badvoice");
    let out = dir.join("x.wav");
    let output = run(tts()
        .args(["say", "Hello.", "-v", "no_such_voice", "-o"])
        .arg(&out));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.starts_with("tts: error:"), "{message}");
    assert!(
        message.contains("unknown_voice") && message.contains("field voice"),
        "{message}"
    );
    assert!(!out.exists(), "no file on failure");
}

#[test]
fn unreachable_server_exits_5() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = run(Command::new(env!("CARGO_BIN_EXE_tts"))
        .env("TTS_URL", format!("http://127.0.0.1:{port}"))
        .args(["--retries", "0", "voices"]));
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot connect"));
}

#[test]
fn usage_errors_exit_2() {
    let output = run(tts().args(["say"]));
    assert_eq!(output.status.code(), Some(2));
    let output = run(tts().args(["say", "Hi.", "-f", "aiff", "-o", "/dev/null"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = run(tts().args(["frobnicate"]));
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn url_is_taken_from_the_environment() {
    let output = run(Command::new(env!("CARGO_BIN_EXE_tts"))
        .env("TTS_URL", shared().base_url())
        .args(["voices"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains(VOICE));
}

#[test]
fn voices_lists_as_table_and_json() {
    let output = run(tts().args(["voices"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(table.starts_with("ID"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with(VOICE))
        .expect("voice row");
    assert!(
        row.contains("piper") && row.contains("stock") && row.contains("(default)"),
        "{row}"
    );

    let output = run(tts().args(["voices", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["default_voice"], VOICE);
    assert!(json["voices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["id"] == VOICE));
}

#[test]
fn voice_rm_of_an_unknown_id_exits_3() {
    let output = run(tts().args(["voice", "rm", "no-such-voice"]));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn batch_writes_one_file_per_line_and_resumes() {
    let dir = temp_dir("batch");
    let lines = dir.join("lines.txt");
    std::fs::write(
        &lines,
        "First line.\nSecond line.\n\nFourth line, after a blank.\n",
    )
    .unwrap();
    let out = dir.join("out");
    let batch = || {
        let mut command = tts();
        command
            .args(["batch"])
            .arg(&lines)
            .args(["--out"])
            .arg(&out)
            .args(["-j", "2", "-v", VOICE, "-f", "wav"]);
        run(&mut command)
    };
    let output = batch();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "written 3 skipped 0 failed 0");
    assert_eq!(files(&out), ["0001.wav", "0002.wav", "0004.wav"]);
    for name in files(&out) {
        let pcm = decode(&std::fs::read(out.join(&name)).unwrap(), "wav", 0);
        assert!(pcm.duration_secs() > 0.3, "{name}");
    }

    // An interrupted run: one file missing. The rerun writes only that one.
    let kept = std::fs::read(out.join("0001.wav")).unwrap();
    let kept_mtime = std::fs::metadata(out.join("0001.wav"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::remove_file(out.join("0002.wav")).unwrap();
    let output = batch();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "written 1 skipped 2 failed 0");
    assert_eq!(files(&out), ["0001.wav", "0002.wav", "0004.wav"]);
    assert_eq!(std::fs::read(out.join("0001.wav")).unwrap(), kept);
    assert_eq!(
        std::fs::metadata(out.join("0001.wav"))
            .unwrap()
            .modified()
            .unwrap(),
        kept_mtime
    );
}

#[test]
fn batch_with_a_bad_voice_reports_failures_and_exits_3() {
    let dir = temp_dir("batchfail");
    let lines = dir.join("lines.txt");
    std::fs::write(&lines, "One.\nTwo.\n").unwrap();
    let out = dir.join("out");
    let output = run(tts()
        .args(["batch"])
        .arg(&lines)
        .args(["--out"])
        .arg(&out)
        .args(["-v", "no_such_voice"]));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "written 0 skipped 0 failed 2");
    assert!(files(&out).is_empty());
}

#[test]
fn bench_reports_percentiles_throughput_and_cache_share() {
    let dir = temp_dir("bench");
    let texts = dir.join("texts.txt");
    std::fs::write(&texts, "Short one.\nA somewhat longer sentence to speak.\n").unwrap();
    let output = run(tts()
        .args(["bench", "--text-file"])
        .arg(&texts)
        .args(["-c", "2", "-n", "4", "-v", VOICE, "--json"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], 4);
    assert_eq!(report["failed"], 0);
    let ttfa = report["ttfa_ms"]["p50"].as_f64().unwrap();
    let latency = report["latency_ms"]["p50"].as_f64().unwrap();
    assert!(
        ttfa > 0.0 && ttfa <= latency,
        "ttfa {ttfa} latency {latency}"
    );
    assert!(report["latency_ms"]["p99"].as_f64().unwrap() >= latency);
    assert!(report["audio_s"].as_f64().unwrap() > 1.0);
    assert!(report["requests_per_s"].as_f64().unwrap() > 0.0);
    // Present (a share) once the server sends X-Cache, null before.
    let share = &report["cache_hit_share"];
    assert!(share.is_null() || (0.0..=1.0).contains(&share.as_f64().unwrap()));

    let output = run(tts()
        .args(["bench", "--text-file"])
        .arg(&texts)
        .args(["-c", "1", "-n", "1", "-v", VOICE]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("ttfa") && text.contains("p95") && text.contains("req/s"),
        "{text}"
    );
}
