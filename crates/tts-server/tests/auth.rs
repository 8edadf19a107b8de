//! API keys end to end: 401 without a known key, both header forms, roles (403 for users on admin
//! routes), per-key rate limit (429 + Retry-After), `auth = auto` on a non-loopback bind, and the
//! `tts-server keys add` command.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{client, piper_only_models_dir, TestServer, VOICE};
use tts_server::auth::AuthMode;
use tts_server::ServerConfig;

const ADMIN_KEY: &str = "tts_admin_test_key_0001";
const USER_KEY: &str = "tts_user_test_key_0002";
const LIMITED_KEY: &str = "tts_limited_test_key_0003";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tts-auth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A keys file with an admin, a user and a user limited to a burst of 2 then 1 a minute.
fn write_keys(dir: &Path) -> PathBuf {
    let entry = |id: &str, role: &str, key: &str, extra: &str| {
        format!(
            "[[keys]]\nid = \"{id}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n{extra}\n",
            tts_accounts::hash_key(key)
        )
    };
    let text = [
        entry("ops", "admin", ADMIN_KEY, ""),
        entry("app", "user", USER_KEY, ""),
        entry(
            "slow",
            "user",
            LIMITED_KEY,
            "rate_per_minute = 1\nburst = 2",
        ),
    ]
    .concat();
    let path = dir.join("keys.toml");
    std::fs::write(&path, text).expect("keys file");
    path
}

fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let keys_file = write_keys(&temp_dir("shared"));
        TestServer::start(ServerConfig {
            models_dir: piper_only_models_dir(),
            auth: AuthMode::On,
            keys_file,
            ..ServerConfig::default()
        })
    })
}

async fn error_code(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_string()
}

#[tokio::test]
async fn missing_or_unknown_key_is_401_json() {
    let server = server();
    let response = client().get(server.url("/v1/voices")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(common::header(&response, "www-authenticate"), "Bearer");
    assert_eq!(error_code(response).await, "unauthorized");

    let response = client()
        .post(server.url("/v1/tts"))
        .bearer_auth("tts_not_a_key")
        .json(&serde_json::json!({"text": "Hello."}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "unauthorized");
}

#[tokio::test]
async fn bearer_and_x_api_key_headers_are_both_accepted() {
    let server = server();
    let bearer = client()
        .get(server.url("/v1/voices"))
        .bearer_auth(USER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let header = client()
        .get(server.url("/v1/models"))
        .header("X-API-Key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(header.status(), 200);
}

#[tokio::test]
async fn probes_and_metrics_stay_open() {
    let server = server();
    for path in ["/health", "/ready", "/metrics"] {
        let response = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn user_key_gets_403_on_admin_routes_and_admin_passes() {
    let server = server();
    let user = client()
        .delete(server.url("/v1/cache"))
        .bearer_auth(USER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 403);
    assert_eq!(error_code(user).await, "forbidden");

    let admin = client()
        .delete(server.url("/v1/cache"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);

    // Uploading a voice: the user is stopped by its role before the upload is even read.
    let form = reqwest::multipart::Form::new().text("name", "x");
    let user_upload = client()
        .post(server.url("/v1/voices"))
        .bearer_auth(USER_KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(user_upload.status(), 403);
    // The admin passes the role check; this form lacks the recording, so it is a 400, not a 403.
    let form = reqwest::multipart::Form::new().text("name", "x");
    let admin_upload = client()
        .post(server.url("/v1/voices"))
        .bearer_auth(ADMIN_KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(admin_upload.status(), 400);
}

#[tokio::test]
async fn rate_limited_key_gets_429_with_retry_after() {
    let server = server();
    let get = || {
        client()
            .get(server.url("/v1/voices"))
            .bearer_auth(LIMITED_KEY)
            .send()
    };
    // The burst of 2 passes.
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(get().await.unwrap().status(), 200);
    let refused = get().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = common::header(&refused, "retry-after")
        .parse()
        .expect("Retry-After in seconds");
    // One request a minute: the next token is up to a minute away.
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(error_code(refused).await, "rate_limited");

    // Other keys have their own buckets.
    let other = client()
        .get(server.url("/v1/voices"))
        .bearer_auth(USER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn auth_auto_requires_keys_on_a_non_loopback_bind() {
    let dir = temp_dir("auto");
    let server = TestServer::start_as_configured(ServerConfig {
        bind: "0.0.0.0:0".parse().unwrap(),
        models_dir: piper_only_models_dir(),
        storage_dir: dir.join("storage"),
        keys_file: write_keys(&dir),
        ..ServerConfig::default()
    });
    assert_eq!(ServerConfig::default().auth, AuthMode::Auto);
    let anonymous = client().get(server.url("/v1/voices")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let keyed = client()
        .get(server.url("/v1/voices"))
        .bearer_auth(USER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);
    server.shutdown();
}

#[tokio::test]
async fn auth_auto_on_loopback_lets_everyone_in_as_admin() {
    let dir = temp_dir("loopback");
    let server = TestServer::start_as_configured(ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        models_dir: piper_only_models_dir(),
        storage_dir: dir.join("storage"),
        // No keys file at all: auth is off, so none is read.
        keys_file: dir.join("missing.toml"),
        ..ServerConfig::default()
    });
    let response = client()
        .delete(server.url("/v1/cache"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.shutdown();
}

#[tokio::test]
async fn auth_on_without_a_keys_file_refuses_to_start() {
    let dir = temp_dir("nokeys");
    let config = ServerConfig {
        models_dir: piper_only_models_dir(),
        storage_dir: dir.join("storage"),
        auth: AuthMode::On,
        keys_file: dir.join("missing.toml"),
        ..ServerConfig::default()
    };
    let err = match tts_server::build_state(config).await {
        Ok(_) => panic!("a server with auth on and no keys must not start"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("missing.toml"), "{err}");
}

#[tokio::test]
async fn keys_add_prints_a_working_key_and_stores_only_its_hash() {
    let dir = temp_dir("cli");
    let keys_file = dir.join("keys.toml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tts-server"))
        .args([
            "keys",
            "add",
            "--name",
            "ci",
            "--role",
            "admin",
            "--keys-file",
        ])
        .arg(&keys_file)
        .output()
        .expect("run tts-server keys add");
    assert!(output.status.success(), "{output:?}");
    let key = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("tts_"), "{key}");
    let stored = std::fs::read_to_string(&keys_file).unwrap();
    assert!(!stored.contains(&key), "the key itself must not be stored");
    assert!(stored.contains(&tts_accounts::hash_key(&key)));

    // Adding the same name again fails and leaves the file as it was.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_tts-server"))
        .args(["keys", "add", "--name", "ci", "--keys-file"])
        .arg(&keys_file)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&keys_file).unwrap(), stored);

    let server = TestServer::start(ServerConfig {
        models_dir: piper_only_models_dir(),
        auth: AuthMode::On,
        keys_file,
        ..ServerConfig::default()
    });
    let response = client()
        .post(server.url("/v1/tts"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"text": "Key works.", "voice": VOICE, "format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.shutdown();
}
