//! Resampling keeps frequency, level and timing for every pair of the six supported rates,
//! and streaming in irregular chunks gives exactly the one-shot result.

mod common;

use common::*;
use tts_audio::{resample, Pcm, StreamResampler, COMMON_RATES};

#[test]
fn resampled_sines_keep_frequency_and_level_for_all_rate_pairs() {
    for &from in &COMMON_RATES {
        for &to in &COMMON_RATES {
            // Below the lowest Nyquist frequency (4 kHz) with room for the anti-alias filter.
            for freq in [440.0, 3000.0] {
                let input = sine(freq, 0.5, 1.0, from);
                let out = resample(&input, to).unwrap();
                assert_eq!(out.sample_rate, to);
                let measured = dominant_frequency(&out);
                assert!(
                    (measured - freq).abs() < freq * 0.002,
                    "{from} -> {to}: {freq} Hz became {measured:.2} Hz"
                );
                // Ignore the edges, where the filter sees the start/end of the signal.
                let edge = to as usize / 50;
                let level = rms(&out.samples[edge..out.samples.len() - edge]);
                let expected = 0.5 / 2f64.sqrt();
                assert!(
                    (20.0 * (level / expected).log10()).abs() < 0.1,
                    "{from} -> {to}: level {level}"
                );
            }
        }
    }
}

#[test]
fn resampled_chirps_match_the_analytic_signal_sample_for_sample_for_all_rate_pairs() {
    for &from in &COMMON_RATES {
        for &to in &COMMON_RATES {
            // Sweep up to 3.2 kHz: inside every pass band, so the ideal output is the chirp
            // evaluated at the new rate, with no delay.
            let input = chirp(100.0, 3200.0, 0.5, 1.0, from);
            let out = resample(&input, to).unwrap();
            let expected = chirp(100.0, 3200.0, 0.5, 1.0, to);
            assert_eq!(out.samples.len(), expected.samples.len(), "{from} -> {to}");
            assert_eq!(
                best_lag(&expected.samples, &out.samples, 50),
                0,
                "{from} -> {to}"
            );
            let edge = to as usize / 50;
            let n = out.samples.len() - edge;
            // Even a half-sample misalignment would drop this to ~15 dB.
            let snr = snr_db(&expected.samples[edge..n], &out.samples[edge..n]);
            assert!(snr > 60.0, "{from} -> {to}: SNR {snr:.1} dB");
        }
    }
}

#[test]
fn streaming_resampler_in_irregular_chunks_matches_one_shot() {
    let speech = speech();
    let cases = [
        (speech.clone(), 24_000),
        (speech.clone(), 16_000),
        (speech, 48_000),
        (chirp(50.0, 3000.0, 0.5, 0.9, 24_000), 8000),
        (chirp(50.0, 3000.0, 0.5, 0.9, 24_000), 22_050),
        (chirp(50.0, 3000.0, 0.5, 0.9, 44_100), 16_000),
    ];
    for (pcm, to) in cases {
        let one_shot = resample(&pcm, to).unwrap();
        let mut r = StreamResampler::new(pcm.sample_rate, to).unwrap();
        let mut streamed = Vec::new();
        let mut pos = 0;
        for size in CHUNKS.iter().cycle() {
            if pos >= pcm.samples.len() {
                break;
            }
            let end = (pos + size).min(pcm.samples.len());
            streamed.extend(r.process(&pcm.samples[pos..end]).unwrap());
            pos = end;
        }
        streamed.extend(r.finish().unwrap());
        assert_eq!(streamed, one_shot.samples, "{} -> {to}", pcm.sample_rate);
    }
}

#[test]
fn tiny_and_empty_inputs_resample_to_the_rounded_length() {
    for n in [0usize, 1, 2, 37] {
        let out = resample(&Pcm::new(vec![0.25; n], 22_050), 24_000).unwrap();
        assert_eq!(
            out.samples.len(),
            (n as f64 * 24_000.0 / 22_050.0).round() as usize
        );
    }
}
