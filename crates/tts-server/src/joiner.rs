//! Joins per-sentence PCM into one continuous signal without clicks: each sentence gets a short
//! raised-cosine fade at both edges (models do not end exactly at zero) and a fixed pause before it.
//! Used the same way by the whole-file and the streaming paths, so both give identical audio.

/// Stateful: it knows whether a sentence is the first (no pause before it).
#[derive(Debug, Clone)]
pub struct SentenceJoiner {
    fade: usize,
    pause: usize,
    started: bool,
}

impl SentenceJoiner {
    pub fn new(sample_rate: u32, fade_ms: f32, pause_ms: f32) -> Self {
        let samples = |ms: f32| (ms.max(0.0) / 1000.0 * sample_rate as f32).round() as usize;
        Self {
            fade: samples(fade_ms),
            pause: samples(pause_ms),
            started: false,
        }
    }

    /// The samples to append for the next sentence: the pause (except before the first sentence),
    /// then the sentence with faded edges.
    pub fn next(&mut self, mut sentence: Vec<f32>) -> Vec<f32> {
        let fade = self.fade.min(sentence.len() / 2);
        for i in 0..fade {
            // Raised cosine from 0 to 1: smooth at both ends, unlike a linear ramp.
            let gain = 0.5 - 0.5 * (std::f32::consts::PI * i as f32 / fade as f32).cos();
            sentence[i] *= gain;
            let end = sentence.len() - 1 - i;
            sentence[end] *= gain;
        }
        if !self.started {
            self.started = true;
            return sentence;
        }
        let mut out = vec![0.0; self.pause];
        out.extend_from_slice(&sentence);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_silent_and_middle_is_untouched() {
        let mut joiner = SentenceJoiner::new(1_000, 10.0, 0.0);
        let out = joiner.next(vec![1.0; 100]);
        assert_eq!(out.len(), 100);
        assert_eq!(out[0], 0.0);
        assert!(out[99].abs() < 0.05);
        assert_eq!(out[50], 1.0);
    }

    #[test]
    fn pause_goes_between_sentences_only() {
        let mut joiner = SentenceJoiner::new(1_000, 0.0, 20.0);
        assert_eq!(joiner.next(vec![1.0; 5]).len(), 5);
        let second = joiner.next(vec![1.0; 5]);
        assert_eq!(second.len(), 25);
        assert!(second[..20].iter().all(|&s| s == 0.0));
    }

    #[test]
    fn joined_signal_has_no_jump_at_the_seam() {
        let mut joiner = SentenceJoiner::new(8_000, 5.0, 0.0);
        let mut signal = joiner.next(vec![0.8; 400]);
        signal.extend(joiner.next(vec![-0.8; 400]));
        let largest_step = signal
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0f32, f32::max);
        assert!(largest_step < 0.1, "step {largest_step}");
    }

    #[test]
    fn tiny_sentence_does_not_panic() {
        let mut joiner = SentenceJoiner::new(24_000, 5.0, 100.0);
        assert_eq!(joiner.next(vec![0.5]).len(), 1);
        assert!(joiner.next(Vec::new()).iter().all(|&s| s == 0.0));
    }
}
