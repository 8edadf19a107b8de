//! Shared helpers of the end-to-end tests: the in-process server and model lookup come from
//! `tts-testkit`; here are the HTTP client, decoding of what the server returns, and metrics.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use tts_audio::Pcm;
use tts_server::ServerConfig;

pub use tts_testkit::{fresh_storage_dir, models_dir, piper_only_models_dir, TestServer, VOICE};
pub const THREE_SENTENCES: &str = "The bus leaves at six. It is a short ride to the station. \
    From there the train goes north along the river, past the old mill and the fields of barley, \
    until it reaches the city late in the evening.";

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

/// Sends `request` and parses its body as JSON, whatever the status.
pub async fn json_of(request: reqwest::RequestBuilder) -> serde_json::Value {
    request
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON body")
}

/// Sentences the server's engine has synthesized so far (cache hits add none).
pub fn sentences_synthesized(server: &TestServer) -> u64 {
    server
        .state
        .speech
        .engine()
        .stats()
        .sentences_synthesized
        .load(std::sync::atomic::Ordering::Relaxed)
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
