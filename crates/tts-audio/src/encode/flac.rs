//! Streaming FLAC (16-bit mono) with `flacenc`, one fixed-size frame at a time.
//!
//! FLAC's STREAMINFO block comes first but describes the whole stream (total samples, MD5,
//! min/max frame size). The spec lets each of those be 0 = "unknown", so instead of buffering
//! the whole clip we write STREAMINFO up front with the block size, the total when the caller
//! knows it ([`EncoderOptions::total_samples`](super::EncoderOptions)), and zero for MD5 and
//! frame sizes; then each [`BLOCK_SIZE`]-sample frame is sent as soon as it is full.
//! Decoders (symphonia, ffmpeg, `flac -d`) handle this; only `flac -t`'s MD5 check is skipped.

use flacenc::bitsink::ByteSink;
use flacenc::component::{BitRepr, Stream, StreamInfo};
use flacenc::config;
use flacenc::error::{Verified, Verify};
use flacenc::source::{Fill, FrameBuf};

use super::{ensure_open, StreamEncoder};
use crate::pcm::f32_to_i16;
use crate::AudioError;

/// Samples per FLAC frame: ~85 ms at 24 kHz, small enough for streaming latency and well
/// inside the streamable subset (<= 4608 at <= 48 kHz).
pub const BLOCK_SIZE: usize = 2048;

const BITS_PER_SAMPLE: usize = 16;

fn encode_err(message: impl std::fmt::Debug) -> AudioError {
    AudioError::Encode {
        format: "flac",
        message: format!("{message:?}"),
    }
}

/// Streaming FLAC encoder.
pub struct FlacStreamEncoder {
    config: Verified<config::Encoder>,
    stream_info: StreamInfo,
    sample_rate: u32,
    total_samples: Option<u64>,
    framebuf: FrameBuf,
    pending: Vec<i32>,
    frame_number: usize,
    samples_in: u64,
    header: Option<Vec<u8>>,
    finished: bool,
}

impl FlacStreamEncoder {
    /// Creates an encoder; `total_samples` is written into STREAMINFO when known.
    pub fn new(sample_rate: u32, total_samples: Option<u64>) -> Result<Self, AudioError> {
        if sample_rate == 0 || sample_rate > 655_350 {
            return Err(AudioError::UnsupportedSampleRate(sample_rate));
        }
        let config = config::Encoder::default()
            .into_verified()
            .map_err(|(_, e)| encode_err(e))?;
        let mut stream_info =
            StreamInfo::new(sample_rate as usize, 1, BITS_PER_SAMPLE).map_err(encode_err)?;
        stream_info
            .set_block_sizes(BLOCK_SIZE, BLOCK_SIZE)
            .map_err(encode_err)?;
        stream_info.set_frame_sizes(0, 0).map_err(encode_err)?;
        if let Some(n) = total_samples {
            // STREAMINFO's total is 36 bits.
            if n >= 1 << 36 {
                return Err(AudioError::InvalidArgument(format!(
                    "{n} samples do not fit FLAC's STREAMINFO"
                )));
            }
            stream_info.set_total_samples(n as usize);
        }
        let mut sink = ByteSink::new();
        Stream::with_stream_info(stream_info.clone())
            .write(&mut sink)
            .map_err(encode_err)?;
        Ok(Self {
            config,
            stream_info,
            sample_rate,
            total_samples,
            framebuf: FrameBuf::with_size(1, BLOCK_SIZE).map_err(encode_err)?,
            pending: Vec::with_capacity(BLOCK_SIZE),
            frame_number: 0,
            samples_in: 0,
            header: Some(sink.into_inner()),
            finished: false,
        })
    }

    /// Encodes the pending samples (at most one block) as one frame and appends its bytes.
    fn flush_frame(&mut self, out: &mut Vec<u8>) -> Result<(), AudioError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.framebuf
            .fill_interleaved(&self.pending)
            .map_err(encode_err)?;
        let frame = flacenc::encode_fixed_size_frame(
            &self.config,
            &self.framebuf,
            self.frame_number,
            &self.stream_info,
        )
        .map_err(encode_err)?;
        let mut sink = ByteSink::new();
        frame.write(&mut sink).map_err(encode_err)?;
        out.extend_from_slice(sink.as_slice());
        self.frame_number += 1;
        self.pending.clear();
        Ok(())
    }
}

impl StreamEncoder for FlacStreamEncoder {
    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, AudioError> {
        ensure_open(self.finished)?;
        self.samples_in += samples.len() as u64;
        if let Some(total) = self.total_samples {
            if self.samples_in > total {
                return Err(AudioError::InvalidArgument(format!(
                    "FLAC header promised {total} samples, got at least {}",
                    self.samples_in
                )));
            }
        }
        let mut out = self.header.take().unwrap_or_default();
        for &s in samples {
            self.pending.push(f32_to_i16(s) as i32);
            if self.pending.len() == BLOCK_SIZE {
                self.flush_frame(&mut out)?;
            }
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, AudioError> {
        ensure_open(self.finished)?;
        self.finished = true;
        if let Some(total) = self.total_samples {
            if self.samples_in != total {
                return Err(AudioError::InvalidArgument(format!(
                    "FLAC header promised {total} samples, got {}",
                    self.samples_in
                )));
            }
        }
        let mut out = self.header.take().unwrap_or_default();
        self.flush_frame(&mut out)?;
        Ok(out)
    }

    fn output_sample_rate(&self) -> u32 {
        self.sample_rate
    }
}
