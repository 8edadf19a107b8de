//! MP3, Ogg Opus and mu-law: streamed chunks decode (symphonia / libopus / ffmpeg) to the
//! input duration within a codec frame, at the expected rate, in time with the input, and
//! identically to the one-shot encoding.

mod common;

use common::*;
use tts_audio::{
    decode, encode, new_encoder, resample, AudioFormat, EncoderOptions, Pcm, MP3_ENCODER_DELAY,
};

/// MPEG Layer III samples per frame: 1152 for MPEG-1 (32-48 kHz), 576 below.
fn mp3_frame(rate: u32) -> usize {
    if rate >= 32_000 {
        1152
    } else {
        576
    }
}

#[test]
fn streamed_mp3_decodes_to_input_duration_plus_lame_delay() {
    for pcm in [
        speech(),
        chirp(200.0, 6000.0, 0.5, 1.2, 48_000),
        sine(440.0, 0.5, 1.0, 24_000),
    ] {
        let (bytes, rate) = stream_encode_pcm(&pcm, AudioFormat::Mp3);
        assert_eq!(rate, pcm.sample_rate);
        let decoded = symphonia_decode(&bytes, "mp3");
        assert_eq!(decoded.sample_rate, pcm.sample_rate);
        // No info tag can be patched into a stream, so decoders keep LAME's fixed delay
        // in front and the flush padding (under two frames) behind.
        let frame = mp3_frame(pcm.sample_rate);
        let extra = decoded.samples.len() as i64 - (pcm.samples.len() + MP3_ENCODER_DELAY) as i64;
        assert!(
            (0..2 * frame as i64).contains(&extra),
            "extra {extra} samples"
        );
        let lag = best_lag(&pcm.samples, &decoded.samples, 1500);
        if pcm.sample_rate == 22_050 || pcm.sample_rate == 48_000 {
            // Aperiodic signals (speech, chirp) pin the delay down exactly.
            assert!((lag - MP3_ENCODER_DELAY as i64).abs() <= 1, "lag {lag}");
        }
        let path = temp_file("streamed.mp3", &bytes);
        assert_eq!(ffprobe_rate(&path, &[]), pcm.sample_rate);
        let ff = ffmpeg_decode(&path, &[]);
        assert!(
            (ff.len() as i64 - decoded.samples.len() as i64).abs() <= frame as i64,
            "ffmpeg {} vs symphonia {}",
            ff.len(),
            decoded.samples.len()
        );
    }
}

#[test]
fn mp3_keeps_a_sine_recognisable() {
    let pcm = sine(1000.0, 0.5, 1.0, 24_000);
    let decoded = symphonia_decode(&encode(&pcm, AudioFormat::Mp3, None).unwrap(), "mp3");
    let aligned = &decoded.samples[MP3_ENCODER_DELAY..MP3_ENCODER_DELAY + pcm.samples.len()];
    assert!(
        snr_db(&pcm.samples, aligned) > 15.0,
        "{}",
        snr_db(&pcm.samples, aligned)
    );
    let f = dominant_frequency(&Pcm::new(aligned.to_vec(), 24_000));
    assert!((f - 1000.0).abs() < 2.0, "{f}");
}

#[test]
fn streamed_and_one_shot_mp3_decode_to_the_same_samples() {
    let pcm = speech();
    let (streamed, _) = stream_encode_pcm(&pcm, AudioFormat::Mp3);
    let one = encode(&pcm, AudioFormat::Mp3, None).unwrap();
    assert_eq!(
        symphonia_decode(&streamed, "mp3").samples,
        symphonia_decode(&one, "mp3").samples
    );
}

#[test]
fn mp3_bitrate_is_configurable_and_validated() {
    let pcm = speech();
    let low = encode(&pcm, AudioFormat::Mp3, Some(32)).unwrap();
    let high = encode(&pcm, AudioFormat::Mp3, Some(128)).unwrap();
    let ratio = high.len() as f64 / low.len() as f64;
    assert!(
        (3.5..4.5).contains(&ratio),
        "CBR sizes should scale with bitrate: {ratio}"
    );
    // 22.05 kHz is MPEG-2: 160 kbps at most; 100 is not a standard bitrate.
    assert!(encode(&pcm, AudioFormat::Mp3, Some(320)).is_err());
    assert!(encode(&pcm, AudioFormat::Mp3, Some(100)).is_err());
    // 8 kHz (MPEG-2.5) defaults to its maximum of 64 kbps instead of failing.
    assert!(encode(&Pcm::new(vec![0.1; 8000], 8000), AudioFormat::Mp3, None).is_ok());
}

/// Rate libopus runs at for an input rate, and the expected decoded length there.
fn opus_expectation(pcm: &Pcm) -> (u32, usize) {
    let rate = tts_audio::opus_rate_for(pcm.sample_rate);
    let n = (pcm.samples.len() as f64 * rate as f64 / pcm.sample_rate as f64).round() as usize;
    (rate, n)
}

#[test]
fn streamed_opus_decodes_to_exact_length_in_time_with_libopus_and_ffmpeg() {
    let inputs = [
        speech(),
        chirp(150.0, 4000.0, 0.5, 1.3, 24_000),
        chirp(150.0, 3500.0, 0.5, 0.77, 16_000),
        chirp(150.0, 4000.0, 0.5, 1.01, 48_000),
        chirp(150.0, 4000.0, 0.5, 1.0, 44_100),
    ];
    for pcm in inputs {
        let (bytes, rate) = stream_encode_pcm(&pcm, AudioFormat::Opus);
        let (expected_rate, expected_len) = opus_expectation(&pcm);
        assert_eq!(rate, expected_rate);
        // Our decode path for Ogg Opus is libopus + the ogg demuxer, not our encoder.
        let decoded = decode(&bytes, Some("opus")).unwrap();
        assert_eq!(decoded.sample_rate, expected_rate);
        assert_eq!(
            decoded.samples.len(),
            expected_len,
            "{} Hz input",
            pcm.sample_rate
        );
        let reference = resample(&pcm, expected_rate).unwrap();
        let lag = best_lag(&reference.samples, &decoded.samples, 400);
        assert!(lag.abs() <= 2, "pre-skip misaligned by {lag} samples");
        // libopus' output sits up to ~40 us early even with the exact pre-skip; compare
        // waveforms after that shift.
        let snr = aligned_snr_db(&reference.samples, &decoded.samples, lag);
        assert!(snr > 8.0, "{} Hz: SNR {snr:.1} dB", pcm.sample_rate);

        // ffmpeg decodes Opus at 48 kHz and applies pre-skip and end trimming itself.
        let path = temp_file("streamed.opus", &bytes);
        let ff = ffmpeg_decode(&path, &[]);
        let expected_48k = expected_len * (48_000 / expected_rate as usize);
        assert_eq!(ff.len(), expected_48k, "{} Hz input", pcm.sample_rate);
    }
}

#[test]
fn streamed_and_one_shot_opus_decode_to_the_same_samples() {
    let pcm = speech();
    let (streamed, _) = stream_encode_pcm(&pcm, AudioFormat::Opus);
    let one = encode(&pcm, AudioFormat::Opus, None).unwrap();
    assert_eq!(
        decode(&streamed, None).unwrap().samples,
        decode(&one, None).unwrap().samples
    );
}

#[test]
fn opus_bitrate_is_configurable_and_validated() {
    let pcm = speech();
    let low = encode(&pcm, AudioFormat::Opus, Some(12)).unwrap();
    let high = encode(&pcm, AudioFormat::Opus, Some(64)).unwrap();
    assert!(
        high.len() > 2 * low.len(),
        "{} vs {}",
        high.len(),
        low.len()
    );
    assert!(encode(&pcm, AudioFormat::Opus, Some(1)).is_err());
}

#[test]
fn mulaw_decodes_with_ffmpeg_to_8k_and_the_input_duration() {
    for pcm in [
        speech(),
        sine(697.0, 0.5, 1.0, 24_000),
        sine(1209.0, 0.5, 0.5, 8000),
    ] {
        let (bytes, rate) = stream_encode_pcm(&pcm, AudioFormat::Mulaw);
        assert_eq!(rate, 8000);
        assert_eq!(bytes, encode(&pcm, AudioFormat::Mulaw, None).unwrap());
        let expected = (pcm.samples.len() as f64 * 8000.0 / pcm.sample_rate as f64).round();
        assert_eq!(bytes.len(), expected as usize);

        let path = temp_file("streamed.ulaw", &bytes);
        let args = ["-f", "mulaw", "-ar", "8000", "-ac", "1"];
        let decoded: Vec<f32> = ffmpeg_decode(&path, &args)
            .iter()
            .map(|&s| s as f32 / 32768.0)
            .collect();
        assert_eq!(decoded.len(), bytes.len());
        let reference = resample(&pcm, 8000).unwrap();
        let snr = snr_db(&reference.samples, &decoded);
        // G.711 gives ~38 dB on loud signals; speech has quiet parts.
        assert!(snr > 25.0, "SNR {snr:.1} dB");
    }
}

#[test]
fn every_encoder_rejects_use_after_finish_and_handles_empty_streams() {
    for format in AudioFormat::ALL {
        let mut enc = new_encoder(&EncoderOptions::new(format, 22_050)).unwrap();
        let _ = enc.finish().unwrap();
        assert!(enc.push(&[0.0; 10]).is_err(), "{format}");
        assert!(enc.finish().is_err(), "{format}");
    }
    let mut enc = new_encoder(&EncoderOptions::new(AudioFormat::Opus, 24_000)).unwrap();
    let bytes = enc.finish().unwrap();
    assert_eq!(decode(&bytes, None).unwrap().samples.len(), 0);
}

#[test]
fn zero_sample_rate_is_rejected() {
    for format in AudioFormat::ALL {
        assert!(
            new_encoder(&EncoderOptions::new(format, 0)).is_err(),
            "{format}"
        );
    }
}
