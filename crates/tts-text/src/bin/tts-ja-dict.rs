//! Compiles the Japanese dictionary (IPADIC sources fetched by `scripts/fetch_models.py --only ja`)
//! into `models/ja/system.dic` once, so that servers and tests load it in about a second.
//!
//! Usage: `tts-ja-dict [MODELS_JA_DIR] [--force]` (default: `$TTS_MODELS_DIR/ja` or `models/ja`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use tts_text::japanese::dictionary;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let force = args.iter().any(|a| a == "--force");
    let dir = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(tts_text::japanese::dictionary_dir);
    let target = dir.join(dictionary::COMPILED);
    if target.exists() && !force {
        // Check that the cached file still reads; otherwise rebuild it.
        let started = Instant::now();
        if dictionary::read_compiled(&target).is_ok() {
            println!(
                "{}: ok (already present, reads in {:.2} s)",
                target.display(),
                started.elapsed().as_secs_f32()
            );
            return Ok(());
        }
    }
    let started = Instant::now();
    let dict = dictionary::build_from_sources(&dir)
        .with_context(|| format!("compiling the IPADIC sources in {}", dir.display()))?;
    let built = started.elapsed().as_secs_f32();
    dictionary::write_atomic(&dict, &target).context("writing the compiled dictionary")?;
    println!(
        "{}: compiled in {built:.1} s, written in {:.1} s",
        target.display(),
        started.elapsed().as_secs_f32() - built
    );
    Ok(())
}
