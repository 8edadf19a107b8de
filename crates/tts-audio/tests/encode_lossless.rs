//! WAV, FLAC and raw PCM: streamed chunks decode, with decoders other than our encoders
//! (symphonia, hound, ffmpeg), to exactly the quantised input at the input rate.

mod common;

use common::*;
use tts_audio::{encode, new_encoder, AudioFormat, EncoderOptions, Pcm};

fn inputs() -> Vec<Pcm> {
    vec![speech(), chirp(100.0, 9000.0, 0.6, 1.5, 24_000)]
}

#[test]
fn streamed_wav_has_streaming_header_and_decodes_losslessly() {
    for pcm in inputs() {
        let (bytes, rate) = stream_encode_pcm(&pcm, AudioFormat::Wav);
        assert_eq!(rate, pcm.sample_rate);
        assert_eq!(
            &bytes[4..8],
            &[0xFF; 4],
            "RIFF size must be the streaming marker"
        );
        assert_eq!(
            &bytes[40..44],
            &[0xFF; 4],
            "data size must be the streaming marker"
        );
        assert_eq!(bytes.len(), 44 + 2 * pcm.samples.len());

        let decoded = symphonia_decode(&bytes, "wav");
        assert_eq!(decoded.sample_rate, pcm.sample_rate);
        assert_eq!(to_i16(&decoded.samples), quantize(&pcm.samples));

        let path = temp_file("streamed.wav", &bytes);
        assert_eq!(ffmpeg_decode(&path, &[]), quantize(&pcm.samples));
        assert_eq!(ffprobe_rate(&path, &[]), pcm.sample_rate);
    }
}

#[test]
fn one_shot_wav_has_exact_header_readable_by_hound() {
    for pcm in inputs() {
        let bytes = encode(&pcm, AudioFormat::Wav, None).unwrap();
        let data_len = 2 * pcm.samples.len() as u32;
        assert_eq!(bytes[4..8], (36 + data_len).to_le_bytes());
        assert_eq!(bytes[40..44], data_len.to_le_bytes());
        let mut reader = hound::WavReader::new(std::io::Cursor::new(&bytes)).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, pcm.sample_rate, 16)
        );
        assert_eq!(reader.len() as usize, pcm.samples.len());
        let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(samples, quantize(&pcm.samples));
        // Streamed and one-shot differ only in the header sizes.
        let (streamed, _) = stream_encode_pcm(&pcm, AudioFormat::Wav);
        assert_eq!(streamed[44..], bytes[44..]);
    }
}

#[test]
fn wav_with_known_length_rejects_a_different_sample_count() {
    let mut opts = EncoderOptions::new(AudioFormat::Wav, 16_000);
    opts.total_samples = Some(100);
    let mut enc = new_encoder(&opts).unwrap();
    enc.push(&[0.0; 60]).unwrap();
    assert!(enc.push(&[0.0; 60]).is_err(), "more samples than promised");
    let mut enc = new_encoder(&opts).unwrap();
    enc.push(&[0.0; 60]).unwrap();
    assert!(enc.finish().is_err(), "fewer samples than promised");
}

#[test]
fn empty_wav_stream_is_a_valid_empty_file() {
    let mut enc = new_encoder(&EncoderOptions::new(AudioFormat::Wav, 24_000)).unwrap();
    let bytes = enc.finish().unwrap();
    let reader = hound::WavReader::new(std::io::Cursor::new(&bytes)).unwrap();
    assert_eq!(reader.len(), 0);
    assert_eq!(reader.spec().sample_rate, 24_000);
}

#[test]
fn streamed_flac_decodes_losslessly_with_symphonia_and_ffmpeg() {
    for pcm in inputs() {
        let (bytes, rate) = stream_encode_pcm(&pcm, AudioFormat::Flac);
        assert_eq!(rate, pcm.sample_rate);
        assert_eq!(&bytes[..4], b"fLaC");
        assert!(
            bytes.len() < 2 * pcm.samples.len(),
            "FLAC must compress speech"
        );

        let decoded = symphonia_decode(&bytes, "flac");
        assert_eq!(decoded.sample_rate, pcm.sample_rate);
        assert_eq!(to_i16(&decoded.samples), quantize(&pcm.samples));

        let path = temp_file("streamed.flac", &bytes);
        assert_eq!(ffmpeg_decode(&path, &[]), quantize(&pcm.samples));
        assert_eq!(ffprobe_rate(&path, &[]), pcm.sample_rate);
    }
}

/// STREAMINFO total samples: 36 bits starting 4 bits into byte 13 of the block body.
fn streaminfo_total(bytes: &[u8]) -> u64 {
    let b = &bytes[8..8 + 34];
    ((b[13] as u64 & 0x0F) << 32) | u32::from_be_bytes([b[14], b[15], b[16], b[17]]) as u64
}

#[test]
fn flac_streaminfo_total_is_exact_when_length_is_known_and_zero_when_streamed() {
    let pcm = speech();
    let one = encode(&pcm, AudioFormat::Flac, None).unwrap();
    let (streamed, _) = stream_encode_pcm(&pcm, AudioFormat::Flac);
    assert_eq!(streaminfo_total(&one), pcm.samples.len() as u64);
    assert_eq!(
        streaminfo_total(&streamed),
        0,
        "unknown length is written as 0"
    );
    // Same frames either way.
    assert_eq!(one[42..], streamed[42..]);
    assert_eq!(
        symphonia_decode(&one, "flac").samples,
        symphonia_decode(&streamed, "flac").samples
    );
}

#[test]
fn raw_pcm_is_s16le_of_the_input_per_ffmpeg() {
    for pcm in inputs() {
        let (bytes, rate) = stream_encode_pcm(&pcm, AudioFormat::Pcm);
        assert_eq!(rate, pcm.sample_rate);
        assert_eq!(bytes, encode(&pcm, AudioFormat::Pcm, None).unwrap());
        let rate_arg = pcm.sample_rate.to_string();
        let path = temp_file("streamed.pcm", &bytes);
        let decoded = ffmpeg_decode(&path, &["-f", "s16le", "-ar", &rate_arg, "-ac", "1"]);
        assert_eq!(decoded, quantize(&pcm.samples));
    }
}
