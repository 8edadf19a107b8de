//! Streaming Opus in Ogg (RFC 7845) with libopus (`audiopus`) and the `ogg` crate.
//!
//! Layout: page 0 holds only `OpusHead`, page 1 only `OpusTags`, then audio pages of
//! [`PACKETS_PER_PAGE`] 20 ms packets so a listener gets audio every ~60 ms. Granule positions
//! count 48 kHz samples including the pre-skip (encoder look-ahead); the final page's granule
//! is `pre_skip + real samples`, which tells decoders to drop the padding of the last frame.
//! libopus only runs at 8/12/16/24/48 kHz: 22.05 kHz goes to 24 kHz and 44.1 kHz to 48 kHz.

use audiopus::coder::Encoder;
use audiopus::{Application, Bitrate, Channels, SampleRate, Signal};
use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use super::{ensure_open, StreamEncoder};
use crate::{AudioError, StreamResampler};

/// Default bitrate: transparent enough for mono speech, small enough for streaming.
pub const OPUS_DEFAULT_KBPS: u32 = 32;

/// Packets per Ogg page; each packet is 20 ms.
pub const PACKETS_PER_PAGE: u64 = 3;

const FRAME_MS: u32 = 20;

/// RFC 6716 recommends 4000 bytes as the largest useful packet buffer.
const MAX_PACKET: usize = 4000;

/// Ogg stream serial. A file carries one logical stream, so a fixed value is valid, and it
/// keeps streamed and one-shot output byte-identical.
const SERIAL: u32 = 0x5454_5331;

/// Encoder rate for an input rate: the rate itself if libopus supports it, else the next one up.
pub fn opus_rate_for(input_rate: u32) -> u32 {
    match input_rate {
        8000 | 12000 | 16000 | 24000 | 48000 => input_rate,
        r if r <= 24000 => 24000,
        _ => 48000,
    }
}

fn encode_err(message: impl ToString) -> AudioError {
    AudioError::Encode {
        format: "opus",
        message: message.to_string(),
    }
}

/// Streaming Ogg Opus encoder.
pub struct OpusStreamEncoder {
    encoder: Encoder,
    resampler: Option<StreamResampler>,
    writer: PacketWriter<'static, Vec<u8>>,
    rate: u32,
    frame: usize,
    /// 48 kHz samples per encoder-rate sample (exact for all Opus rates).
    scale: u64,
    lookahead: usize,
    pre_skip: u64,
    /// Encoder-rate samples waiting for a full frame.
    buffer: Vec<f32>,
    /// Real (unpadded) encoder-rate samples received.
    real_samples: u64,
    /// Encoder-rate samples put into packets so far.
    encoded_samples: u64,
    /// Packets written to the Ogg writer (excluding headers).
    packets_written: u64,
    /// The newest packet and its granule, held back so the last one can carry end-of-stream.
    held: Option<(Vec<u8>, u64)>,
    packet_buf: Vec<u8>,
    finished: bool,
}

impl OpusStreamEncoder {
    /// Creates an encoder for mono input at `input_rate`.
    pub fn new(input_rate: u32, bitrate_kbps: Option<u32>) -> Result<Self, AudioError> {
        let rate = opus_rate_for(input_rate);
        let resampler = if rate == input_rate {
            None
        } else {
            Some(StreamResampler::new(input_rate, rate)?)
        };
        let sample_rate = SampleRate::try_from(rate as i32).map_err(encode_err)?;
        let mut encoder =
            Encoder::new(sample_rate, Channels::Mono, Application::Audio).map_err(encode_err)?;
        let kbps = bitrate_kbps.unwrap_or(OPUS_DEFAULT_KBPS);
        if !(6..=256).contains(&kbps) {
            return Err(AudioError::InvalidArgument(format!(
                "Opus bitrate {kbps} kbps outside 6..=256"
            )));
        }
        encoder
            .set_bitrate(Bitrate::BitsPerSecond(kbps as i32 * 1000))
            .map_err(encode_err)?;
        encoder.set_signal(Signal::Voice).map_err(encode_err)?;
        let lookahead = encoder.lookahead().map_err(encode_err)? as usize;
        let scale = (48_000 / rate) as u64;
        let pre_skip = lookahead as u64 * scale;
        let pre_skip_u16 = u16::try_from(pre_skip).map_err(encode_err)?;

        let mut writer = PacketWriter::new(Vec::new());
        writer
            .write_packet(
                opus_head(pre_skip_u16, rate),
                SERIAL,
                PacketWriteEndInfo::EndPage,
                0,
            )
            .map_err(encode_err)?;
        writer
            .write_packet(opus_tags(), SERIAL, PacketWriteEndInfo::EndPage, 0)
            .map_err(encode_err)?;
        Ok(Self {
            encoder,
            resampler,
            writer,
            rate,
            frame: (rate * FRAME_MS / 1000) as usize,
            scale,
            lookahead,
            pre_skip,
            buffer: Vec::new(),
            real_samples: 0,
            encoded_samples: 0,
            packets_written: 0,
            held: None,
            packet_buf: vec![0; MAX_PACKET],
            finished: false,
        })
    }

    /// Pre-skip in 48 kHz samples, as written in `OpusHead`.
    pub fn pre_skip(&self) -> u64 {
        self.pre_skip
    }

    /// Encodes all complete frames in the buffer.
    fn encode_frames(&mut self) -> Result<(), AudioError> {
        let mut offset = 0;
        while self.buffer.len() - offset >= self.frame {
            let len = self
                .encoder
                .encode_float(
                    &self.buffer[offset..offset + self.frame],
                    &mut self.packet_buf,
                )
                .map_err(encode_err)?;
            offset += self.frame;
            self.encoded_samples += self.frame as u64;
            let packet = self.packet_buf[..len].to_vec();
            let granule = self.encoded_samples * self.scale;
            if let Some((prev, prev_granule)) = self.held.replace((packet, granule)) {
                self.write_audio_packet(prev, prev_granule, false)?;
            }
        }
        self.buffer.drain(..offset);
        Ok(())
    }

    fn write_audio_packet(
        &mut self,
        packet: Vec<u8>,
        granule: u64,
        last: bool,
    ) -> Result<(), AudioError> {
        self.packets_written += 1;
        let info = if last {
            PacketWriteEndInfo::EndStream
        } else if self.packets_written % PACKETS_PER_PAGE == 0 {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        self.writer
            .write_packet(packet, SERIAL, info, granule)
            .map_err(encode_err)
    }

    fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.inner_mut())
    }
}

/// `OpusHead` (RFC 7845 §5.1): version 1, mono, pre-skip, input rate, 0 dB gain, mapping 0.
fn opus_head(pre_skip: u16, input_rate: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1);
    h.push(1);
    h.extend_from_slice(&pre_skip.to_le_bytes());
    h.extend_from_slice(&input_rate.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

/// `OpusTags` (RFC 7845 §5.2): vendor string and no user comments.
fn opus_tags() -> Vec<u8> {
    let vendor = concat!("tts-audio ", env!("CARGO_PKG_VERSION"));
    let mut t = Vec::with_capacity(16 + vendor.len());
    t.extend_from_slice(b"OpusTags");
    t.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    t.extend_from_slice(vendor.as_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

impl StreamEncoder for OpusStreamEncoder {
    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, AudioError> {
        ensure_open(self.finished)?;
        let resampled;
        let input = match self.resampler.as_mut() {
            Some(r) => {
                resampled = r.process(samples)?;
                &resampled[..]
            }
            None => samples,
        };
        self.real_samples += input.len() as u64;
        self.buffer.extend_from_slice(input);
        self.encode_frames()?;
        Ok(self.take_bytes())
    }

    fn finish(&mut self) -> Result<Vec<u8>, AudioError> {
        ensure_open(self.finished)?;
        self.finished = true;
        if let Some(r) = self.resampler.as_mut() {
            let tail = r.finish()?;
            self.real_samples += tail.len() as u64;
            self.buffer.extend_from_slice(&tail);
        }
        // Feed the look-ahead's worth of silence so the last real samples leave the encoder,
        // then pad to a whole frame; the final granule trims all of it again.
        let padded = self.buffer.len() + self.lookahead;
        let frames = padded.div_ceil(self.frame).max(1);
        self.buffer.resize(frames * self.frame, 0.0);
        self.encode_frames()?;
        if let Some((packet, _)) = self.held.take() {
            let end_granule = self.pre_skip + self.real_samples * self.scale;
            self.write_audio_packet(packet, end_granule, true)?;
        }
        Ok(self.take_bytes())
    }

    fn output_sample_rate(&self) -> u32 {
        self.rate
    }
}
