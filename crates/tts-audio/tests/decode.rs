//! Decoding uploads: third-party files (espeak-ng, ffmpeg) decode to mono at their rate;
//! empty, corrupt and truncated inputs give errors and never panic.

mod common;

use std::process::Command;

use common::*;
use tts_audio::{decode, encode, AudioError, AudioFormat, Pcm};

#[test]
fn espeak_wav_fixture_decodes_to_the_same_samples_as_hound() {
    let bytes = std::fs::read(fixture("speech_22050.wav")).unwrap();
    let decoded = decode(&bytes, Some("wav")).unwrap();
    let reference = speech();
    assert_eq!(decoded.sample_rate, 22_050);
    assert_eq!(decoded.samples, reference.samples);
}

#[test]
fn stereo_input_is_downmixed_to_the_channel_average() {
    let left = sine(440.0, 0.6, 0.5, 16_000);
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = std::io::Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for &s in &left.samples {
            w.write_sample((s * 32767.0).round() as i16).unwrap();
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
    }
    let decoded = decode(cursor.get_ref(), None).unwrap();
    assert_eq!(decoded.samples.len(), left.samples.len());
    for (d, s) in decoded.samples.iter().zip(&left.samples) {
        assert!((d - s / 2.0).abs() < 1e-4);
    }
}

/// Encodes the speech fixture with ffmpeg, e.g. `["-c:a", "libvorbis"]` to `name`.
fn ffmpeg_encode(name: &str, args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join(name);
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(fixture("speech_22050.wav"))
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg must be installed (Debian package ffmpeg)");
    assert!(status.success(), "ffmpeg {args:?}");
    std::fs::read(&out).unwrap()
}

#[test]
fn files_written_by_ffmpeg_decode_to_the_source_duration() {
    let reference = speech();
    let cases: [(&str, &[&str], u32, f64); 6] = [
        ("a.wav", &["-ac", "2", "-ar", "44100"], 44_100, 0.001),
        ("a.flac", &["-ar", "48000"], 48_000, 0.001),
        (
            "a.mp3",
            &["-c:a", "libmp3lame", "-b:a", "64k"],
            22_050,
            0.08,
        ),
        ("a.ogg", &["-c:a", "libvorbis", "-ac", "2"], 22_050, 0.03),
        (
            "a.opus",
            &["-c:a", "libopus", "-ar", "24000"],
            24_000,
            0.001,
        ),
        (
            "b.opus",
            &["-c:a", "libopus", "-ac", "2", "-ar", "48000"],
            48_000,
            0.001,
        ),
    ];
    for (name, args, rate, tolerance) in cases {
        let bytes = ffmpeg_encode(name, args);
        let ext = name.rsplit('.').next();
        let decoded = decode(&bytes, ext).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded.sample_rate, rate, "{name}");
        let diff = decoded.duration_secs() - reference.duration_secs();
        assert!(diff.abs() <= tolerance, "{name}: {diff:+.4} s");
        // Still the same speech: loud where the source is loud.
        assert!(
            rms(&decoded.samples) > 0.3 * rms(&reference.samples),
            "{name}"
        );
    }
}

fn is_decode_error(r: Result<Pcm, AudioError>) -> bool {
    matches!(r, Err(AudioError::Decode(_)))
}

/// Our own encodings of the speech fixture in every decodable format (streamed and one-shot).
fn samples_of_each_format() -> Vec<(String, Vec<u8>)> {
    let pcm = speech();
    let mut out = Vec::new();
    for format in [
        AudioFormat::Wav,
        AudioFormat::Mp3,
        AudioFormat::Opus,
        AudioFormat::Flac,
    ] {
        let ext = format.extension().to_string();
        out.push((ext.clone(), encode(&pcm, format, None).unwrap()));
        out.push((ext, stream_encode_pcm(&pcm, format).0));
    }
    out.push(("ogg".into(), ffmpeg_encode("v.ogg", &["-c:a", "libvorbis"])));
    out
}

#[test]
fn empty_and_garbage_inputs_are_errors() {
    assert!(is_decode_error(decode(&[], None)));
    assert!(is_decode_error(decode(&[], Some("wav"))));
    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for ext in [
        None,
        Some("wav"),
        Some("mp3"),
        Some("flac"),
        Some("opus"),
        Some("ogg"),
    ] {
        assert!(is_decode_error(decode(&garbage, ext)), "{ext:?}");
    }
    assert!(is_decode_error(decode(
        b"RIFF\0\0\0\0WAVEfmt ",
        Some("wav")
    )));
    assert!(is_decode_error(decode(b"OggS", None)));
}

#[test]
fn truncated_inputs_are_errors_for_every_format() {
    for (ext, bytes) in samples_of_each_format() {
        for fraction in [0.01, 0.3, 0.5, 0.77, 0.999] {
            let mut cut = (bytes.len() as f64 * fraction) as usize;
            // A streamed WAV has no length: only a cut inside a sample can be noticed.
            if ext == "wav" && bytes[40..44] == [0xFF; 4] {
                cut |= 1;
            }
            let r = decode(&bytes[..cut], Some(&ext));
            assert!(is_decode_error(r), "{ext} cut at {cut} of {}", bytes.len());
        }
    }
}

#[test]
fn corrupted_checksummed_streams_are_errors() {
    // FLAC frames carry CRCs and Ogg pages CRC32s; flipping bytes inside must be noticed.
    for (ext, bytes) in samples_of_each_format() {
        if ext != "flac" && ext != "opus" && ext != "ogg" {
            continue;
        }
        for at in [0.3, 0.6, 0.9] {
            let mut c = bytes.clone();
            let mid = (c.len() as f64 * at) as usize;
            for b in &mut c[mid..mid + 16] {
                *b ^= 0xA5;
            }
            assert!(
                is_decode_error(decode(&c, Some(&ext))),
                "{ext} flipped at {mid}"
            );
        }
    }
}

#[test]
fn corrupted_headers_are_errors() {
    for (ext, bytes) in samples_of_each_format() {
        let mut c = bytes.clone();
        for b in &mut c[4..40] {
            *b ^= 0x5A;
        }
        assert!(is_decode_error(decode(&c, Some(&ext))), "{ext}");
    }
    // A valid Ogg page whose OpusHead asks for an unsupported 6-channel layout.
    let mut opus = encode(&speech(), AudioFormat::Opus, None).unwrap();
    let head = 28 + 8; // page header (27) + 1 lacing byte + "OpusHead"
    opus[head + 1] = 6;
    opus[head + 10] = 1;
    // Page CRC (bytes 22..26) must be fixed for the change to reach the Opus parser.
    let page_len = 28 + 19;
    opus[22..26].fill(0);
    let crc = ogg_crc(&opus[..page_len]);
    opus[22..26].copy_from_slice(&crc.to_le_bytes());
    let err = decode(&opus, None).unwrap_err().to_string();
    assert!(err.contains("channel"), "{err}");
}

/// Ogg's CRC-32 (polynomial 0x04C11DB7, no reflection, zero init).
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &byte in data {
        crc ^= (byte as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[test]
fn no_truncation_or_byte_flip_panics_the_decoder() {
    // Decoding must return, Ok or Err, for every mutation: a panic fails the test.
    for (ext, bytes) in samples_of_each_format() {
        let step = (bytes.len() / 41).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let _ = decode(&bytes[..cut], Some(&ext));
        }
        for pos in (0..bytes.len().min(2048)).step_by(13) {
            let mut c = bytes.clone();
            c[pos] = c[pos].wrapping_add(0x41);
            let _ = decode(&c, Some(&ext));
            let _ = decode(&c, None);
        }
    }
}
