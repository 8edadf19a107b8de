//! Where the tests find the real weights: `models/` at the workspace root or `TTS_MODELS_DIR`.

use std::path::PathBuf;

/// The Piper voice the tests speak with (the fast model).
pub const VOICE: &str = "en_US-joe-medium";

/// `models/` at the workspace root, or `TTS_MODELS_DIR`; panics naming `scripts/fetch_models.py`
/// when the weights are missing, so a missing download fails the test instead of skipping it.
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

/// A models directory with only the Piper voice (symlinked), for servers that must start fast.
pub fn piper_only_models_dir() -> PathBuf {
    let source = models_dir().join("piper");
    let dir = std::env::temp_dir().join(format!("tts-testkit-piper-{}", std::process::id()));
    let piper = dir.join("piper");
    std::fs::create_dir_all(&piper).expect("temp models dir");
    for name in [format!("{VOICE}.onnx"), format!("{VOICE}.onnx.json")] {
        let link = piper.join(&name);
        let target = source.join(&name).canonicalize().expect("model path");
        match std::os::unix::fs::symlink(target, &link) {
            Ok(()) => {}
            // Tests of one binary run in parallel and race to create the same links.
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => panic!("symlink model {}: {err}", link.display()),
        }
    }
    dir
}
