//! Decoding of uploaded audio to mono [`Pcm`]: WAV, MP3, FLAC and Ogg Vorbis through
//! `symphonia`, Ogg Opus through libopus (`audiopus`) with the `ogg` demuxer.
//!
//! Uploads are untrusted: empty, corrupt or truncated input gives [`AudioError::Decode`],
//! never a panic, and a stream that ends before its container says it should is an error
//! rather than a silently shortened clip. Checks beyond symphonia's own: WAV/FLAC sample
//! totals, an incomplete final MP3/FLAC frame, FLAC frame-number gaps (a CRC-failed frame
//! that the demuxer skipped) and Ogg page CRCs. Not detectable by design: a length-less
//! (streamed) WAV or a tag-less MP3 cut exactly at a sample/frame boundary, and bit errors
//! inside PCM or MP3 payloads, which carry no checksum.

use std::io::Cursor;

use audiopus::coder::Decoder as OpusDecoder;
use audiopus::packet::Packet as OpusPacket;
use audiopus::{Channels, MutSignals, SampleRate};
use ogg::reading::PacketReader;
use symphonia::core::codecs::audio::well_known::{CODEC_ID_FLAC, CODEC_ID_MP3};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use crate::{AudioError, Pcm};

fn decode_err(message: impl ToString) -> AudioError {
    AudioError::Decode(message.to_string())
}

/// Decodes a complete file to mono PCM at its own rate (channels are averaged).
/// `extension_hint` (e.g. `"mp3"`) helps the probe; the content decides.
pub fn decode(bytes: &[u8], extension_hint: Option<&str>) -> Result<Pcm, AudioError> {
    if bytes.is_empty() {
        return Err(decode_err("empty input"));
    }
    if is_ogg_opus(bytes) {
        return decode_ogg_opus(bytes);
    }
    if bytes.starts_with(b"OggS") {
        check_ogg_pages(bytes)?;
    }
    decode_symphonia(bytes, extension_hint)
}

/// Symphonia's Ogg demuxer skips pages with a bad CRC and carries on; the `ogg` crate's
/// reader rejects them, so damaged Vorbis uploads are refused instead of losing audio.
fn check_ogg_pages(bytes: &[u8]) -> Result<(), AudioError> {
    let mut reader = PacketReader::new(Cursor::new(bytes));
    while reader
        .read_packet()
        .map_err(|e| decode_err(format!("ogg: {e}")))?
        .is_some()
    {}
    Ok(())
}

/// True when the first Ogg page carries an `OpusHead` packet.
fn is_ogg_opus(bytes: &[u8]) -> bool {
    // Page header is 27 bytes + segment table; the first packet follows it.
    if bytes.len() < 28 || &bytes[..4] != b"OggS" {
        return false;
    }
    let segments = bytes[26] as usize;
    bytes
        .get(27 + segments..27 + segments + 8)
        .is_some_and(|magic| magic == b"OpusHead")
}

fn decode_symphonia(bytes: &[u8], extension_hint: Option<&str>) -> Result<Pcm, AudioError> {
    let mut hint = Hint::new();
    if let Some(ext) = extension_hint {
        hint.with_extension(ext.trim_start_matches('.'));
    }
    let owned = patch_streaming_wav(bytes)?.unwrap_or_else(|| bytes.to_vec());
    let mss = MediaSourceStream::new(
        Box::new(Cursor::new(owned)),
        MediaSourceStreamOptions::default(),
    );
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| decode_err(format!("unrecognised audio: {e}")))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| decode_err("no audio track"))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| decode_err("no audio codec parameters"))?;
    let expected_frames = track.num_frames;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| decode_err(format!("unsupported codec: {e}")))?;

    let mut samples: Vec<f32> = Vec::new();
    let mut sample_rate = params.sample_rate;
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let codec = params.codec;
    let mut next_pts = None;
    let mut last_packet: Option<Box<[u8]>> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => return Err(decode_err(format!("demuxing failed: {e}"))),
        };
        if packet.track_id != track_id {
            continue;
        }
        // FLAC frames are numbered; the demuxer silently resyncs past a corrupt frame, which
        // shows up as a jump in timestamps.
        if codec == CODEC_ID_FLAC && next_pts.is_some_and(|pts| pts != packet.pts) {
            return Err(decode_err("corrupt FLAC frame skipped (timestamp gap)"));
        }
        next_pts = packet.pts.checked_add(packet.dur);
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            Err(SymphoniaError::DecodeError(e)) => {
                return Err(decode_err(format!("corrupt packet: {e}")))
            }
            Err(e) => return Err(decode_err(e)),
        };
        let rate = buf.spec().rate();
        if *sample_rate.get_or_insert(rate) != rate {
            return Err(decode_err("sample rate changes mid-stream"));
        }
        buf.copy_to_vecs_planar::<f32>(&mut planes);
        downmix_into(&planes, buf.frames(), &mut samples);
        last_packet = Some(packet.data);
    }
    if codec == CODEC_ID_MP3 || codec == CODEC_ID_FLAC {
        if let Some(last) = last_packet.as_deref() {
            check_no_partial_frame(bytes, last, codec == CODEC_ID_FLAC)?;
        }
    }
    let sample_rate = sample_rate
        .filter(|&r| r > 0)
        .ok_or_else(|| decode_err("unknown sample rate"))?;
    if samples.is_empty() {
        return Err(decode_err("no audio decoded"));
    }
    // A container that declared its length (WAV data size, FLAC STREAMINFO) but ran short is
    // truncated. Lossy formats may differ by a frame of delay/padding, so only exact-length
    // containers are checked.
    if let Some(n) = expected_frames {
        let lossless = matches!(
            extension_hint.map(|e| e.trim_start_matches('.').to_ascii_lowercase()),
            Some(ref e) if e == "wav" || e == "flac"
        ) || bytes.starts_with(b"RIFF")
            || bytes.starts_with(b"fLaC");
        if lossless && (samples.len() as u64) < n {
            return Err(decode_err(format!(
                "truncated: {} of {n} samples",
                samples.len()
            )));
        }
    }
    Ok(Pcm::new(samples, sample_rate))
}

/// MPEG and FLAC demuxers end the stream quietly at a frame cut short by EOF. Finds the last
/// decoded frame near the end of the file and rejects input whose remaining bytes start with
/// another frame sync, i.e. an incomplete final frame. Trailing tags (ID3v1, APE) are fine.
fn check_no_partial_frame(bytes: &[u8], last_frame: &[u8], flac: bool) -> Result<(), AudioError> {
    // Only the end of the file is searched: the last frame is at most a few KiB before it.
    const SEARCH: usize = 64 * 1024;
    if last_frame.len() < 4 {
        return Ok(());
    }
    let from = bytes.len().saturating_sub(SEARCH + last_frame.len());
    let tail = &bytes[from..];
    let Some(pos) = tail
        .windows(last_frame.len())
        .rposition(|w| w[..4] == last_frame[..4] && w == last_frame)
    else {
        return Ok(());
    };
    let rest = &tail[pos + last_frame.len()..];
    let is_sync = match rest {
        [0xFF, b, ..] if flac => b & 0xFE == 0xF8,
        [0xFF, b, ..] => b & 0xE0 == 0xE0,
        _ => false,
    };
    if is_sync {
        return Err(decode_err(format!(
            "truncated: incomplete final frame ({} bytes)",
            rest.len()
        )));
    }
    Ok(())
}

fn read_u32_le(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// A streamed WAV (ours, ffmpeg's, sox's) declares `0xFFFFFFFF` sizes because its length was
/// unknown when the header went out; symphonia would read past the end and fail. Returns a
/// copy whose RIFF and data sizes are the actual ones, or `None` if no patch is needed.
/// Data ending mid-sample is the only truncation a length-less WAV can show: an error.
fn patch_streaming_wav(bytes: &[u8]) -> Result<Option<Vec<u8>>, AudioError> {
    if bytes.get(..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Ok(None);
    }
    find_streaming_data_chunk(bytes)
        .map(|(size_at, body, block_align)| {
            let available = bytes.len() - body;
            if available % block_align != 0 {
                return Err(decode_err("truncated: streamed WAV ends mid-sample"));
            }
            let data_len = u32::try_from(available)
                .map_err(|_| decode_err("streamed WAV data exceeds 4 GiB"))?;
            // `body - 8` bytes of RIFF content precede the data.
            let riff_len = data_len.saturating_add((body - 8) as u32);
            let mut patched = bytes.to_vec();
            patched[4..8].copy_from_slice(&riff_len.to_le_bytes());
            patched[size_at..size_at + 4].copy_from_slice(&data_len.to_le_bytes());
            Ok(patched)
        })
        .transpose()
}

/// Locates a `data` chunk with the `0xFFFFFFFF` size: (offset of its size field, offset of its
/// body, block align from `fmt `).
fn find_streaming_data_chunk(bytes: &[u8]) -> Option<(usize, usize, usize)> {
    let mut block_align = 1usize;
    let mut pos = 12usize;
    while pos.checked_add(8)? <= bytes.len() {
        let id = bytes.get(pos..pos + 4)?;
        let size = read_u32_le(bytes, pos + 4)?;
        let body = pos + 8;
        if id == b"fmt " {
            let align = bytes.get(body + 12..body + 14)?;
            block_align = u16::from_le_bytes([align[0], align[1]]).max(1) as usize;
        }
        if id == b"data" {
            return (size == u32::MAX).then_some((pos + 4, body, block_align));
        }
        // Chunks are padded to an even length.
        pos = body
            .checked_add(size as usize)?
            .checked_add(size as usize % 2)?;
    }
    None
}

/// Appends the average of the first `frames` samples of every plane.
fn downmix_into(planes: &[Vec<f32>], frames: usize, out: &mut Vec<f32>) {
    match planes {
        [] => {}
        [mono] => out.extend_from_slice(&mono[..frames.min(mono.len())]),
        _ => {
            let scale = 1.0 / planes.len() as f32;
            out.extend((0..frames).map(|i| {
                planes
                    .iter()
                    .map(|p| p.get(i).copied().unwrap_or(0.0))
                    .sum::<f32>()
                    * scale
            }));
        }
    }
}

/// Fields of `OpusHead` (RFC 7845 §5.1) that decoding needs.
struct OpusHead {
    channels: u8,
    pre_skip: u64,
    input_rate: u32,
    gain_db: f32,
}

fn parse_opus_head(packet: &[u8]) -> Result<OpusHead, AudioError> {
    if packet.len() < 19 || &packet[..8] != b"OpusHead" {
        return Err(decode_err("missing OpusHead"));
    }
    // Major version 0 is the only one defined; minor versions must stay compatible.
    if packet[8] >> 4 != 0 {
        return Err(decode_err(format!(
            "unsupported Opus version {}",
            packet[8]
        )));
    }
    let channels = packet[9];
    let mapping_family = packet[18];
    if channels == 0 || channels > 2 || mapping_family != 0 {
        return Err(decode_err(format!(
            "unsupported Opus channel layout ({channels} channels, family {mapping_family})"
        )));
    }
    Ok(OpusHead {
        channels,
        pre_skip: u16::from_le_bytes([packet[10], packet[11]]) as u64,
        input_rate: u32::from_le_bytes([packet[12], packet[13], packet[14], packet[15]]),
        gain_db: i16::from_le_bytes([packet[16], packet[17]]) as f32 / 256.0,
    })
}

/// Largest Opus packet duration: 120 ms at 48 kHz.
const MAX_OPUS_FRAME_48K: usize = 5760;

fn decode_ogg_opus(bytes: &[u8]) -> Result<Pcm, AudioError> {
    let mut reader = PacketReader::new(Cursor::new(bytes));
    let mut next = || -> Result<Option<ogg::Packet>, AudioError> {
        reader
            .read_packet()
            .map_err(|e| decode_err(format!("ogg: {e}")))
    };
    let head_packet = next()?.ok_or_else(|| decode_err("empty Ogg stream"))?;
    let head = parse_opus_head(&head_packet.data)?;
    let serial = head_packet.stream_serial();
    let tags = next()?.ok_or_else(|| decode_err("missing OpusTags"))?;
    if tags.data.len() < 8 || &tags.data[..8] != b"OpusTags" {
        return Err(decode_err("missing OpusTags"));
    }
    // Decode at the original rate when libopus supports it, else at 48 kHz.
    let rate = match head.input_rate {
        8000 | 12000 | 16000 | 24000 | 48000 => head.input_rate,
        _ => 48000,
    };
    let scale = 48_000 / rate as u64;
    let channels = if head.channels == 2 {
        Channels::Stereo
    } else {
        Channels::Mono
    };
    let sample_rate = SampleRate::try_from(rate as i32).map_err(decode_err)?;
    let mut decoder = OpusDecoder::new(sample_rate, channels).map_err(decode_err)?;
    let nch = head.channels as usize;
    let mut frame = vec![0f32; MAX_OPUS_FRAME_48K * nch];
    let mut samples: Vec<f32> = Vec::new();
    let mut planes: Vec<Vec<f32>> = vec![Vec::new(); nch];
    let mut end_granule = None;
    while let Some(packet) = next()? {
        if packet.stream_serial() != serial {
            continue;
        }
        let opus_packet = OpusPacket::try_from(packet.data.as_slice()).map_err(decode_err)?;
        let signals = MutSignals::try_from(frame.as_mut_slice()).map_err(decode_err)?;
        let n = decoder
            .decode_float(Some(opus_packet), signals, false)
            .map_err(|e| decode_err(format!("corrupt Opus packet: {e}")))?;
        for (ch, plane) in planes.iter_mut().enumerate() {
            plane.clear();
            plane.extend((0..n).map(|i| frame[i * nch + ch]));
        }
        downmix_into(&planes, n, &mut samples);
        if packet.last_in_stream() {
            end_granule = Some(packet.absgp_page());
            break;
        }
    }
    let end_granule =
        end_granule.ok_or_else(|| decode_err("truncated Ogg Opus stream (no end of stream)"))?;
    let skip = (head.pre_skip / scale) as usize;
    let total = end_granule
        .checked_sub(head.pre_skip)
        .ok_or_else(|| decode_err("final granule position precedes pre-skip"))?
        / scale;
    let total = total as usize;
    if skip.saturating_add(total) > samples.len() {
        return Err(decode_err(format!(
            "granule position claims {total} samples, stream holds {}",
            samples.len().saturating_sub(skip)
        )));
    }
    let mut out = samples[skip..skip + total].to_vec();
    if head.gain_db != 0.0 {
        let g = 10f32.powf(head.gain_db / 20.0);
        out.iter_mut().for_each(|s| *s *= g);
    }
    Ok(Pcm::new(out, rate))
}
