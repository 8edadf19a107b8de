//! Ogg Opus container layout per RFC 7845, checked by parsing the pages by hand and by
//! `opusinfo` (opus-tools).

mod common;

use std::process::Command;

use common::*;
use tts_audio::{decode, AudioFormat, PACKETS_PER_PAGE};

/// One parsed Ogg page.
struct Page {
    header_type: u8,
    granule: u64,
    sequence: u32,
    /// Packets that end on this page (lacing value < 255).
    packets: Vec<Vec<u8>>,
    /// True if the page's last segment continues on the next page.
    continued: bool,
}

fn parse_pages(bytes: &[u8]) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        assert_eq!(&bytes[pos..pos + 4], b"OggS", "page sync at {pos}");
        assert_eq!(bytes[pos + 4], 0, "stream structure version");
        let header_type = bytes[pos + 5];
        let granule = u64::from_le_bytes(bytes[pos + 6..pos + 14].try_into().unwrap());
        let sequence = u32::from_le_bytes(bytes[pos + 18..pos + 22].try_into().unwrap());
        let nseg = bytes[pos + 26] as usize;
        let lacing = &bytes[pos + 27..pos + 27 + nseg];
        let mut body = pos + 27 + nseg;
        let mut packets = Vec::new();
        let mut current = Vec::new();
        for &l in lacing {
            current.extend_from_slice(&bytes[body..body + l as usize]);
            body += l as usize;
            if l < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        pages.push(Page {
            header_type,
            granule,
            sequence,
            packets,
            continued: !current.is_empty(),
        });
        pos = body;
    }
    pages
}

#[test]
fn ogg_opus_pages_follow_rfc7845() {
    let pcm = speech();
    let (bytes, rate) = stream_encode_pcm(&pcm, AudioFormat::Opus);
    assert_eq!(rate, 24_000);
    let pages = parse_pages(&bytes);

    // Page 0: OpusHead alone, beginning of stream, granule 0.
    let head = &pages[0];
    assert_eq!(head.header_type & 0x02, 0x02, "BOS flag");
    assert_eq!(head.granule, 0);
    assert_eq!(head.packets.len(), 1);
    let h = &head.packets[0];
    assert_eq!(&h[..8], b"OpusHead");
    assert_eq!(h.len(), 19);
    assert_eq!(
        (h[8], h[9], h[18]),
        (1, 1, 0),
        "version 1, mono, mapping family 0"
    );
    let pre_skip = u16::from_le_bytes([h[10], h[11]]) as u64;
    assert_eq!(u32::from_le_bytes(h[12..16].try_into().unwrap()), 24_000);
    // libopus' look-ahead at 24 kHz is 2.5 ms + 4 ms = 156 samples = 312 at 48 kHz.
    assert_eq!(pre_skip, 312);

    // Page 1: OpusTags alone, granule 0.
    let tags = &pages[1];
    assert_eq!(tags.granule, 0);
    assert_eq!(tags.packets.len(), 1);
    assert_eq!(&tags.packets[0][..8], b"OpusTags");
    assert!(!tags.continued);

    // Audio pages: few packets each (low latency), strictly increasing granules in 48 kHz
    // units counting every decoded sample, sequence numbers without gaps.
    let audio = &pages[2..];
    assert!(audio.len() > 5);
    let mut packets = 0u64;
    let mut prev_granule = 0;
    for (i, page) in audio.iter().enumerate() {
        assert_eq!(page.sequence as usize, i + 2);
        assert!(!page.continued);
        assert!(page.packets.len() as u64 <= PACKETS_PER_PAGE);
        packets += page.packets.len() as u64;
        assert!(page.granule > prev_granule);
        prev_granule = page.granule;
        let last = i + 1 == audio.len();
        assert_eq!(
            page.header_type & 0x04 != 0,
            last,
            "EOS only on the last page"
        );
        if !last {
            // 20 ms packets = 960 samples at 48 kHz.
            assert_eq!(page.granule, packets * 960);
        }
    }
    // Last granule = pre-skip + real samples (48 kHz), trimming the padding of the last frame.
    let n_24k = (pcm.samples.len() as f64 * 24_000.0 / 22_050.0).round() as u64;
    assert_eq!(prev_granule, pre_skip + 2 * n_24k);
    assert!(
        packets * 960 >= prev_granule,
        "padding must cover the trimmed end"
    );
    assert!(packets * 960 - prev_granule < 960 + pre_skip);
    // And the decoder's output agrees with the granule arithmetic.
    let decoded = decode(&bytes, None).unwrap();
    assert_eq!(decoded.samples.len() as u64, (prev_granule - pre_skip) / 2);
}

#[test]
fn first_push_returns_the_header_pages_for_early_flushing() {
    let mut enc =
        tts_audio::new_encoder(&tts_audio::EncoderOptions::new(AudioFormat::Opus, 24_000)).unwrap();
    let first = enc.push(&[0.0; 10]).unwrap();
    let pages = parse_pages(&first);
    assert_eq!(
        pages.len(),
        2,
        "OpusHead and OpusTags pages go out immediately"
    );
    // One page of audio is out after PACKETS_PER_PAGE + 1 frames (one is held back for EOS).
    let more = enc
        .push(&vec![0.1; 480 * (PACKETS_PER_PAGE as usize + 1)])
        .unwrap();
    assert_eq!(parse_pages(&more).len(), 1);
}

#[test]
fn opusinfo_validates_the_streamed_file() {
    let pcm = speech();
    let (bytes, _) = stream_encode_pcm(&pcm, AudioFormat::Opus);
    let path = temp_file("validate.opus", &bytes);
    let out = Command::new("opusinfo")
        .arg(&*path)
        .output()
        .expect("opusinfo must be installed (Debian package opus-tools)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("WARNING"), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
    assert!(text.contains("Pre-skip: 312"), "{text}");
    assert!(text.contains("Channels: 1"), "{text}");
    // opusinfo prints the playback length as e.g. "Playback length: 0m:02.298s" (truncated).
    let length = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Playback length: 0m:"))
        .and_then(|s| s.trim_end_matches('s').parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no playback length in {text}"));
    assert!(
        (length - pcm.duration_secs()).abs() < 0.002,
        "{length} s in {text}"
    );
}
