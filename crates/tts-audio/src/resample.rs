//! Sample-rate conversion with `rubato`'s synchronous FFT resampler, for whole clips and streams.
//!
//! One [`StreamResampler`] per stream: chunks go in as they come, the resampler's start-up
//! delay is dropped from the head, and [`StreamResampler::finish`] flushes the tail so that the
//! output has `round(input_len * to / from)` samples, aligned in time with the input.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use crate::{AudioError, Pcm};

/// The rates the server produces or accepts; any pair among them is supported.
pub const COMMON_RATES: [u32; 6] = [8000, 16000, 22050, 24000, 44100, 48000];

/// Desired input chunk; rubato rounds it to a multiple of the rate pair's block size.
const CHUNK_FRAMES: usize = 1024;

/// Largest `rate / gcd(from, to)` accepted: beyond it the FFT blocks (and latency) get huge.
const MAX_BLOCK: u64 = 4096;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Streaming resampler for mono f32 audio with a fixed rate pair.
pub struct StreamResampler {
    from_hz: u32,
    to_hz: u32,
    /// `None` when the rates are equal: samples pass through untouched.
    inner: Option<Box<Fft<f32>>>,
    /// Input not yet processed (less than one chunk between calls).
    pending: Vec<f32>,
    out_scratch: Vec<f32>,
    /// Output frames still to drop from the head (the resampler's delay).
    delay_left: usize,
    consumed: u64,
    produced: u64,
    finished: bool,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from_hz", &self.from_hz)
            .field("to_hz", &self.to_hz)
            .field("consumed", &self.consumed)
            .field("produced", &self.produced)
            .finish()
    }
}

impl StreamResampler {
    /// Creates a resampler from `from_hz` to `to_hz`.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, AudioError> {
        for rate in [from_hz, to_hz] {
            if !(1000..=384_000).contains(&rate) {
                return Err(AudioError::UnsupportedSampleRate(rate));
            }
        }
        let inner = if from_hz == to_hz {
            None
        } else {
            let g = gcd(from_hz as u64, to_hz as u64);
            if from_hz as u64 / g > MAX_BLOCK || to_hz as u64 / g > MAX_BLOCK {
                return Err(AudioError::Resample(format!(
                    "rate pair {from_hz} -> {to_hz} Hz has no small common block"
                )));
            }
            // With an odd FFT length the resampler's true delay is half a sample more than
            // `output_delay()` reports; an even number of minimum blocks keeps both FFT
            // lengths even and the delay trimming exact.
            let min_in = (from_hz as u64 / g) as usize;
            let blocks = CHUNK_FRAMES.div_ceil(min_in).next_multiple_of(2);
            let fft = Fft::<f32>::new(
                from_hz as usize,
                to_hz as usize,
                blocks * min_in,
                1,
                FixedSync::Both,
            )
            .map_err(|e| AudioError::Resample(e.to_string()))?;
            Some(Box::new(fft))
        };
        let (out_len, delay) = inner
            .as_ref()
            .map(|r| (r.output_frames_max(), r.output_delay()))
            .unwrap_or((0, 0));
        Ok(Self {
            from_hz,
            to_hz,
            inner,
            pending: Vec::new(),
            out_scratch: vec![0.0; out_len],
            delay_left: delay,
            consumed: 0,
            produced: 0,
            finished: false,
        })
    }

    /// Input rate in Hz.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// Output rate in Hz.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Output length that `n` input samples map to.
    fn expected_output(&self, n: u64) -> u64 {
        let (from, to) = (self.from_hz as u128, self.to_hz as u128);
        ((n as u128 * to + from / 2) / from) as u64
    }

    /// Feeds samples; returns the output that is ready now (may be empty).
    pub fn process(&mut self, samples: &[f32]) -> Result<Vec<f32>, AudioError> {
        if self.finished {
            return Err(AudioError::Finished);
        }
        self.consumed += samples.len() as u64;
        if self.inner.is_none() {
            self.produced += samples.len() as u64;
            return Ok(samples.to_vec());
        }
        self.pending.extend_from_slice(samples);
        let mut out = Vec::new();
        let mut offset = 0;
        while self.pending.len() - offset >= self.chunk_in() {
            let end = offset + self.chunk_in();
            let chunk = std::mem::take(&mut self.pending);
            let res = self.run_chunk(&chunk[offset..end], None, &mut out);
            self.pending = chunk;
            res?;
            offset = end;
        }
        self.pending.drain(..offset);
        Ok(out)
    }

    /// Flushes the tail; the total output is then `round(input_len * to / from)` samples.
    pub fn finish(&mut self) -> Result<Vec<f32>, AudioError> {
        if self.finished {
            return Err(AudioError::Finished);
        }
        self.finished = true;
        if self.inner.is_none() {
            return Ok(Vec::new());
        }
        let target = self.expected_output(self.consumed);
        let mut out = Vec::new();
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            let idx = Indexing::new().partial_len(pending.len());
            self.run_chunk(&pending, Some(&idx), &mut out)?;
        }
        // Pump silence through until the delayed tail has come out.
        let silence = Indexing::new().partial_len(0);
        let mut guard = 0;
        while self.produced < target {
            self.run_chunk(&[], Some(&silence), &mut out)?;
            guard += 1;
            if guard > 64 {
                return Err(AudioError::Resample("resampler did not drain".into()));
            }
        }
        let excess = (self.produced - target) as usize;
        out.truncate(out.len().saturating_sub(excess));
        self.produced = target;
        Ok(out)
    }

    fn chunk_in(&self) -> usize {
        self.inner
            .as_ref()
            .map(|r| r.input_frames_next())
            .unwrap_or(CHUNK_FRAMES)
    }

    /// Resamples one chunk (full, or partial with `indexing`) and appends it after delay trimming.
    fn run_chunk(
        &mut self,
        input: &[f32],
        indexing: Option<&Indexing>,
        out: &mut Vec<f32>,
    ) -> Result<(), AudioError> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let err = |e: &dyn std::fmt::Display| AudioError::Resample(e.to_string());
        let in_buf = InterleavedSlice::new(input, 1, input.len()).map_err(|e| err(&e))?;
        let out_frames = self.out_scratch.len();
        let mut out_buf =
            InterleavedSlice::new_mut(&mut self.out_scratch, 1, out_frames).map_err(|e| err(&e))?;
        let (_, written) = inner
            .process_into_buffer(&in_buf, &mut out_buf, indexing)
            .map_err(|e| err(&e))?;
        let skip = self.delay_left.min(written);
        self.delay_left -= skip;
        out.extend_from_slice(&self.out_scratch[skip..written]);
        self.produced += (written - skip) as u64;
        Ok(())
    }
}

/// Resamples a whole clip (same code path as streaming, so results match exactly).
pub fn resample(pcm: &Pcm, to_hz: u32) -> Result<Pcm, AudioError> {
    if pcm.sample_rate == to_hz {
        return Ok(pcm.clone());
    }
    let mut r = StreamResampler::new(pcm.sample_rate, to_hz)?;
    let mut out = r.process(&pcm.samples)?;
    out.extend(r.finish()?);
    Ok(Pcm::new(out, to_hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_length_matches_ratio_for_all_common_pairs() {
        for &from in &COMMON_RATES {
            for &to in &COMMON_RATES {
                let n = 12_345usize;
                let pcm = Pcm::new(vec![0.1; n], from);
                let out = resample(&pcm, to).unwrap();
                let expected = (n as f64 * to as f64 / from as f64).round() as usize;
                assert_eq!(out.samples.len(), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn odd_rate_pairs_are_rejected() {
        assert!(StreamResampler::new(44_100, 44_101).is_err());
        assert!(StreamResampler::new(0, 16_000).is_err());
    }

    #[test]
    fn finish_twice_is_an_error() {
        let mut r = StreamResampler::new(24_000, 16_000).unwrap();
        r.finish().unwrap();
        assert!(r.finish().is_err());
        assert!(r.process(&[0.0]).is_err());
    }
}
