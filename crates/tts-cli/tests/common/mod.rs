//! Shared helpers of the CLI's end-to-end tests: a real tts-server in-process (from
//! `tts-testkit`) with the real Piper weights, and decoding of what it returns.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

pub use tts_testkit::{models_dir, piper_only_models_dir, TestServer, VOICE};

pub const THREE_SENTENCES: &str = "The bus leaves at six. It is a short ride to the station. \
    From there the train goes north along the river, past the old mill and the fields of barley.";

static SHARED: std::sync::OnceLock<TestServer> = std::sync::OnceLock::new();

/// One Piper-only server per test binary, default settings.
pub fn shared() -> &'static TestServer {
    SHARED.get_or_init(|| TestServer::start_with(|_| {}))
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
