//! Streaming MP3 (LAME via `mp3lame-encoder`), mono CBR at the input rate.
//!
//! LAME buffers about one frame plus its look-ahead, so early pushes may return no bytes.
//! No Xing/LAME info tag is written: it would have to be patched into the first frame at the
//! end, which a stream cannot do. Decoders therefore see LAME's encoder delay
//! ([`MP3_ENCODER_DELAY`] samples) as leading silence.

use mp3lame_encoder::{
    max_required_buffer_size, Bitrate, Builder, Encoder, FlushGap, Mode, MonoPcm, Quality,
};

use super::{ensure_open, StreamEncoder};
use crate::AudioError;

/// Default bitrate; capped to what the rate's MPEG version allows.
pub const MP3_DEFAULT_KBPS: u32 = 128;

/// LAME 3.100's encoder delay in samples (576 + 528 + 1), seen as leading silence.
pub const MP3_ENCODER_DELAY: usize = 1105;

/// Bytes LAME may write on flush (documented minimum 7200).
const FLUSH_BUFFER: usize = 7200;

const ALL_BITRATES: [(u32, Bitrate); 16] = [
    (8, Bitrate::Kbps8),
    (16, Bitrate::Kbps16),
    (24, Bitrate::Kbps24),
    (32, Bitrate::Kbps32),
    (40, Bitrate::Kbps40),
    (48, Bitrate::Kbps48),
    (64, Bitrate::Kbps64),
    (80, Bitrate::Kbps80),
    (96, Bitrate::Kbps96),
    (112, Bitrate::Kbps112),
    (128, Bitrate::Kbps128),
    (160, Bitrate::Kbps160),
    (192, Bitrate::Kbps192),
    (224, Bitrate::Kbps224),
    (256, Bitrate::Kbps256),
    (320, Bitrate::Kbps320),
];

/// Highest CBR bitrate of the MPEG version that carries `rate`
/// (MPEG-1: 32-48 kHz, MPEG-2: 16-24 kHz, MPEG-2.5: 8-12 kHz).
fn max_kbps(rate: u32) -> Result<u32, AudioError> {
    match rate {
        32000 | 44100 | 48000 => Ok(320),
        16000 | 22050 | 24000 => Ok(160),
        8000 | 11025 | 12000 => Ok(64),
        _ => Err(AudioError::UnsupportedSampleRate(rate)),
    }
}

fn encode_err(message: impl ToString) -> AudioError {
    AudioError::Encode {
        format: "mp3",
        message: message.to_string(),
    }
}

/// Streaming MP3 encoder.
pub struct Mp3StreamEncoder {
    encoder: Encoder,
    sample_rate: u32,
    scratch: Vec<f32>,
    finished: bool,
}

impl Mp3StreamEncoder {
    /// Creates an encoder; `bitrate_kbps` must be a standard MP3 bitrate allowed at this rate.
    pub fn new(sample_rate: u32, bitrate_kbps: Option<u32>) -> Result<Self, AudioError> {
        let max = max_kbps(sample_rate)?;
        let kbps = bitrate_kbps.unwrap_or(MP3_DEFAULT_KBPS.min(max));
        let bitrate = ALL_BITRATES
            .iter()
            .find(|(k, _)| *k == kbps && kbps <= max)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                AudioError::InvalidArgument(format!(
                    "MP3 bitrate {kbps} kbps is not valid at {sample_rate} Hz (max {max})"
                ))
            })?;
        let mut builder = Builder::new().ok_or_else(|| encode_err("lame_init failed"))?;
        builder.set_num_channels(1).map_err(encode_err)?;
        builder.set_sample_rate(sample_rate).map_err(encode_err)?;
        builder.set_brate(bitrate).map_err(encode_err)?;
        builder.set_mode(Mode::Mono).map_err(encode_err)?;
        builder.set_quality(Quality::Good).map_err(encode_err)?;
        builder.set_to_write_vbr_tag(false).map_err(encode_err)?;
        let encoder = builder.build().map_err(encode_err)?;
        // LAME may pick a different output rate if not told; speech must keep the input rate.
        if encoder.sample_rate() != sample_rate {
            return Err(encode_err(format!(
                "LAME resampled {sample_rate} Hz to {} Hz",
                encoder.sample_rate()
            )));
        }
        Ok(Self {
            encoder,
            sample_rate,
            scratch: Vec::new(),
            finished: false,
        })
    }
}

impl StreamEncoder for Mp3StreamEncoder {
    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, AudioError> {
        ensure_open(self.finished)?;
        // LAME's float input expects [-1, 1]; clip so that hot synthesis does not wrap.
        self.scratch.clear();
        self.scratch.extend(samples.iter().map(|s| {
            if s.is_finite() {
                s.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        }));
        let mut out = Vec::with_capacity(max_required_buffer_size(samples.len()));
        self.encoder
            .encode_to_vec(MonoPcm(self.scratch.as_slice()), &mut out)
            .map_err(encode_err)?;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, AudioError> {
        ensure_open(self.finished)?;
        self.finished = true;
        let mut out: Vec<u8> = Vec::with_capacity(FLUSH_BUFFER);
        self.encoder
            .flush_to_vec::<FlushGap>(&mut out)
            .map_err(encode_err)?;
        Ok(out)
    }

    fn output_sample_rate(&self) -> u32 {
        self.sample_rate
    }
}
