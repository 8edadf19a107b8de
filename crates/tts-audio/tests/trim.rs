//! Silence trimming on real speech padded with near-silent noise.

mod common;

use common::*;
use tts_audio::{trim_silence, Pcm};

#[test]
fn padded_speech_trims_back_to_the_speech_with_a_small_margin() {
    let speech = trim_silence(&speech(), -50.0);
    let rate = speech.sample_rate as usize;
    // Half a second of -70 dBFS noise either side: below the -50 dBFS threshold.
    let noise = |n: usize, seed: u32| -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                let x = (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 8) as f32;
                (x / (1u32 << 24) as f32 - 0.5) * 2.0 * 3.16e-4
            })
            .collect()
    };
    let mut padded = noise(rate / 2, 1);
    padded.extend_from_slice(&speech.samples);
    padded.extend(noise(rate / 2, 7));
    let trimmed = trim_silence(&Pcm::new(padded, speech.sample_rate), -50.0);
    // The speech itself is kept whole; at most the 10 ms margins of noise come along.
    let margin = rate / 100;
    assert!(trimmed.samples.len() >= speech.samples.len());
    assert!(trimmed.samples.len() <= speech.samples.len() + 2 * margin);
    assert!(trimmed
        .samples
        .windows(speech.samples.len())
        .any(|w| w == speech.samples.as_slice()));
}

#[test]
fn espeak_output_has_silence_that_trimming_removes() {
    let raw = speech();
    let trimmed = trim_silence(&raw, -50.0);
    assert!(trimmed.samples.len() < raw.samples.len());
    assert!(trimmed.duration_secs() > 1.0, "{}", trimmed.duration_secs());
}
