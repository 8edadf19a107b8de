//! The web playground at `/`: served as same-origin HTML, and driven in headless Chromium
//! (`tests/web/playground.test.mjs` with playwright-core) against a real server, where it must
//! stream and actually play audio. Node, Chromium and `tests/web/node_modules` are required: the
//! test fails naming the install step when one is missing (CI installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::TestServer;
use tts_server::routes::playground::{is_same_origin, referenced_urls};
use tts_server::ServerConfig;

const NODE_TIMEOUT: Duration = Duration::from_secs(300);

/// One Piper-only server for both tests (fast start-up).
fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        TestServer::start(ServerConfig {
            models_dir: common::piper_only_models_dir(),
            ..ServerConfig::default()
        })
    })
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `<target>/test-artifacts/playground.png` (respects `CARGO_TARGET_DIR`).
fn screenshot_path() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .unwrap_or(tmp)
        .join("test-artifacts")
        .join("playground.png")
}

#[tokio::test]
async fn root_serves_the_playground_with_only_same_origin_resources() {
    let server = server();
    let client = common::client();
    let response = client.get(server.url("/")).send().await.expect("GET /");
    assert_eq!(response.status(), 200);
    assert!(
        common::header(&response, "content-type").starts_with("text/html"),
        "GET / is not HTML"
    );
    let csp = common::header(&response, "content-security-policy").to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    let page = response.text().await.expect("page body");
    assert!(page.contains("<label for=\"text\"") && page.contains("aria-live"));

    let urls = referenced_urls(&page);
    assert!(!urls.is_empty(), "the page references no script or style");
    for url in urls {
        assert!(
            is_same_origin(&url),
            "the page loads {url} from another origin"
        );
        if !url.starts_with('/') {
            continue; // data: favicon, fragments
        }
        let asset = client.get(server.url(&url)).send().await.expect("asset");
        assert_eq!(asset.status(), 200, "{url}");
        let content_type = common::header(&asset, "content-type").to_string();
        let expected = if url.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(content_type.starts_with(expected), "{url}: {content_type}");
        let body = asset.text().await.expect("asset body");
        for inner in referenced_urls(&body) {
            assert!(is_same_origin(&inner), "{url} refers to {inner}");
        }
    }
}

/// Fails (never skips) with the install step when a browser-test prerequisite is missing.
fn require_browser_tooling(web_dir: &Path) -> PathBuf {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.map(|o| o.status.success()).unwrap_or(false),
        "node not found: the playground browser test needs Node.js >= 20 with npm (playwright-core requires it)"
    );
    let chromium = std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "{} not found: the playground browser test needs Chromium (Debian: apt-get install -y chromium, or set CHROMIUM_PATH)",
        chromium.display()
    );
    assert!(
        web_dir
            .join("node_modules/playwright-core/package.json")
            .is_file(),
        "{} has no node_modules/playwright-core: run `npm ci --prefix tests/web`",
        web_dir.display()
    );
    chromium
}

#[test]
fn playground_streams_and_plays_audio_in_headless_chromium() {
    let web_dir = workspace_root().join("tests/web");
    let chromium = require_browser_tooling(&web_dir);
    let server = server();
    let screenshot = screenshot_path();
    let _ = std::fs::remove_file(&screenshot);

    let mut child = Command::new("node")
        .arg(web_dir.join("playground.test.mjs"))
        .arg(server.url(""))
        .arg(&screenshot)
        .env("CHROMIUM_PATH", &chromium)
        .current_dir(&web_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let deadline = Instant::now() + NODE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = child.wait_with_output().expect("node output");
    let log = format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let status = status.unwrap_or_else(|| panic!("browser test ran past {NODE_TIMEOUT:?}\n{log}"));
    assert!(status.success(), "browser test failed ({status})\n{log}");
    assert!(
        log.contains("all checks passed"),
        "browser test did not finish\n{log}"
    );
    // Shown with `--nocapture`: the measured runs (TTFA, RTF, played seconds) per format.
    println!("{log}");

    let png = std::fs::read(&screenshot)
        .unwrap_or_else(|err| panic!("no screenshot at {}: {err}\n{log}", screenshot.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "screenshot is not a real PNG ({} bytes)",
        png.len()
    );
}
