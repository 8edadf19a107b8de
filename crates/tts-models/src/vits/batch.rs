//! Batched inference for the model server's dynamic batching: utterances of any lengths, seeds,
//! speeds and speakers, padded into one batch with sequence masks through the text encoder, the
//! duration predictor and the flow; lengths are expanded per utterance; the decoder runs each
//! utterance's chunk windows ([`DecodeWindow`]), stacking windows of equal length into one call.
//!
//! Each utterance draws its noise from its own generator, seeded and drawn in the order
//! [`Vits::infer`] uses, and padding never reaches real frames (see the masks in `encoder.rs`,
//! `duration.rs`, `flow.rs`), so each utterance's audio equals its unbatched audio up to float
//! summation order.

use candle_core::Tensor;
use rand::{rngs::StdRng, SeedableRng};

use super::layers::sequence_mask;
use super::{normal_noise, DurationPredictor, InferenceParams, Vits};
use crate::ModelError;

/// Padding a padded batch may add, as a fraction of its real phonemes. The padded stages do the
/// padding's work too, so [`Vits::infer_grouped`] cuts length-sorted utterances into batches within
/// this bound.
const MAX_PADDING: f32 = 0.25;

/// One utterance of a batch: phoneme ids and its own settings.
#[derive(Debug, Clone, Copy)]
pub struct Utterance<'a> {
    pub ids: &'a [i64],
    pub params: &'a InferenceParams,
}

/// A validated utterance: its index in the batch, embedding indices and speaker conditioning.
struct Item<'a> {
    index: usize,
    ids: Vec<u32>,
    params: &'a InferenceParams,
    g: Option<Tensor>,
}

impl Vits {
    /// Raw audio of each utterance, in order, each equal to `infer(ids, params).audio` for it
    /// alone; an invalid utterance fails alone. One utterance takes the unbatched path.
    pub fn infer_batch(&self, batch: &[Utterance]) -> Vec<Result<Vec<f32>, ModelError>> {
        if let [one] = batch {
            return vec![self.infer(one.ids, one.params).map(|stages| stages.audio)];
        }
        let mut results: Vec<Option<Result<Vec<f32>, ModelError>>> =
            batch.iter().map(|_| None).collect();
        let mut items = Vec::new();
        for (index, utterance) in batch.iter().enumerate() {
            match self.item(index, utterance) {
                Ok(item) => items.push(item),
                Err(err) => results[index] = Some(Err(err)),
            }
        }
        match items.as_slice() {
            [] => {}
            [item] => {
                let u = &batch[item.index];
                results[item.index] = Some(self.infer(u.ids, u.params).map(|stages| stages.audio));
            }
            _ => match self.infer_padded(&items) {
                Ok(outcomes) => {
                    for (item, outcome) in items.iter().zip(outcomes) {
                        results[item.index] = Some(outcome);
                    }
                }
                // A batched stage failed (not an item's input): every item fails with it.
                Err(err) => {
                    for item in &items {
                        let message = format!("batched inference: {err}");
                        results[item.index] = Some(Err(candle_core::Error::Msg(message).into()));
                    }
                }
            },
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(not_synthesized))
            .collect()
    }

    /// [`Vits::infer_batch`] over runs of similar length (padding within [`MAX_PADDING`]);
    /// results in input order.
    pub fn infer_grouped(&self, batch: &[Utterance]) -> Vec<Result<Vec<f32>, ModelError>> {
        let lengths: Vec<usize> = batch.iter().map(|u| u.ids.len()).collect();
        let mut results: Vec<Option<Result<Vec<f32>, ModelError>>> =
            batch.iter().map(|_| None).collect();
        for group in length_groups(&lengths) {
            let members: Vec<Utterance> = group.iter().map(|&i| batch[i]).collect();
            for (&i, result) in group.iter().zip(self.infer_batch(&members)) {
                results[i] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(not_synthesized))
            .collect()
    }

    fn item<'a>(&self, index: usize, utterance: &Utterance<'a>) -> Result<Item<'a>, ModelError> {
        utterance.params.validate()?;
        Ok(Item {
            index,
            ids: self.checked_ids(utterance.ids)?,
            params: utterance.params,
            g: self.speaker_embedding(utterance.params.speaker_id)?,
        })
    }

    /// One padded batch through every stage. `Err` when a batched stage fails; an utterance
    /// whose own lengths are invalid gets its error in the list.
    fn infer_padded(
        &self,
        items: &[Item],
    ) -> Result<Vec<Result<Vec<f32>, ModelError>>, ModelError> {
        let lengths: Vec<usize> = items.iter().map(|item| item.ids.len()).collect();
        let n = lengths.iter().copied().max().unwrap_or(0);
        let padded_ids: Vec<u32> = items
            .iter()
            .flat_map(|item| {
                let pad = n - item.ids.len();
                item.ids.iter().copied().chain(std::iter::repeat_n(0, pad))
            })
            .collect();
        let ids = Tensor::from_vec(padded_ids, (items.len(), n), &self.device)?;
        let mask = sequence_mask(&lengths, n, &self.device)?;
        let g = stack_speakers(items.iter().map(|item| item.g.as_ref()))?;
        let encoder = self.enc_p.forward_padded(&ids, Some(&lengths))?;

        let mut rngs: Vec<StdRng> = items
            .iter()
            .map(|item| StdRng::seed_from_u64(item.params.seed))
            .collect();
        let noise =
            items
                .iter()
                .zip(&mut rngs)
                .map(|(item, rng)| {
                    let len = item.ids.len();
                    normal_noise(rng, (1, 2, len), item.params.noise_w, &self.device)?
                        .pad_with_zeros(2, 0, n - len)
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
        let logw = self.dp.log_durations(
            &encoder.x,
            g.as_ref(),
            &Tensor::cat(&noise, 0)?,
            Some(&mask),
        )?;

        // Lengths are regulated per utterance; one with invalid durations fails alone.
        let mut outcomes: Vec<Option<Result<Vec<f32>, ModelError>>> = Vec::new();
        let mut priors = Vec::new();
        for (b, (item, rng)) in items.iter().zip(&mut rngs).enumerate() {
            let len = item.ids.len();
            let logw = logw.narrow(0, b, 1)?.narrow(2, 0, len)?;
            let durations = DurationPredictor::frames(&logw, item.params.length_scale as f64)?;
            let enc = encoder.item(b, len)?;
            match self.expand_prior(&enc, &durations, item.params.noise_scale, rng) {
                Ok(z_p) => {
                    priors.push((b, z_p));
                    outcomes.push(None);
                }
                Err(err) => outcomes.push(Some(Err(err))),
            }
        }
        if !priors.is_empty() {
            let frames: Vec<usize> = priors
                .iter()
                .map(|(_, z_p)| z_p.dim(2))
                .collect::<candle_core::Result<_>>()?;
            let t = frames.iter().copied().max().unwrap_or(0);
            let z_p = priors
                .iter()
                .zip(&frames)
                .map(|((_, z_p), &len)| z_p.pad_with_zeros(2, 0, t - len))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let g = stack_speakers(priors.iter().map(|(b, _)| items[*b].g.as_ref()))?;
            let mask = sequence_mask(&frames, t, &self.device)?;
            let z = self
                .flow
                .reverse_masked(&Tensor::cat(&z_p, 0)?, g.as_ref(), Some(&mask))?;
            // The decoder runs per utterance: stacking equal-length chunk windows of several
            // utterances measured no faster on CPU (larger activations fall out of cache).
            for (i, ((b, _), &len)) in priors.iter().zip(&frames).enumerate() {
                let z = z.narrow(0, i, 1)?.narrow(2, 0, len)?;
                outcomes[*b] = Some(self.decode(&z, items[*b].g.as_ref()));
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or_else(not_synthesized))
            .collect())
    }
}

/// Speaker conditionings `[1, gin, 1]` stacked to `[B, gin, 1]`; `None` for single-speaker voices.
fn stack_speakers<'a>(
    speakers: impl Iterator<Item = Option<&'a Tensor>>,
) -> candle_core::Result<Option<Tensor>> {
    let speakers: Option<Vec<&Tensor>> = speakers.collect();
    match speakers {
        Some(s) if !s.is_empty() => Ok(Some(Tensor::cat(&s, 0)?)),
        _ => Ok(None),
    }
}

/// Indices of `lengths` sorted by length and cut into runs whose padded size stays within
/// [`MAX_PADDING`] of their real size.
fn length_groups(lengths: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut real = 0usize;
    for i in order {
        let len = lengths[i];
        match groups.last_mut() {
            // Sorted ascending, so the new utterance sets the padded length.
            Some(group)
                if ((group.len() + 1) * len) as f32
                    <= (1.0 + MAX_PADDING) * (real + len) as f32 =>
            {
                real += len;
                group.push(i);
            }
            _ => {
                real = len;
                groups.push(vec![i]);
            }
        }
    }
    groups
}

/// The error of a result slot left empty, which the loops above never do.
fn not_synthesized() -> Result<Vec<f32>, ModelError> {
    Err(ModelError::InvalidInput {
        field: "batch",
        message: "utterance was not synthesized".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_lengths_share_a_batch_and_outliers_get_their_own() {
        let groups = length_groups(&[80, 12, 75, 300, 78, 10, 81]);
        assert_eq!(groups, vec![vec![5, 1], vec![2, 4, 0, 6], vec![3]]);
        assert!(length_groups(&[]).is_empty());
    }
}
