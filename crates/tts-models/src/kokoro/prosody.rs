//! The prosody predictor (`predictor`): style-conditioned duration encoder (3 × BiLSTM +
//! AdaLayerNorm), duration head, and the F0 / energy (`N`) branches run on the
//! duration-expanded features.
//!
//! Reference: `ProsodyPredictor` and `DurationEncoder` in hexgrad/kokoro `kokoro/modules.py`;
//! the duration rule (`sigmoid(proj).sum() / speed`, round, clamp ≥ 1) is in `kokoro/model.py`.

use candle_core::{Result, Tensor, D};
use candle_nn::{Conv1d, Linear, Module, VarBuilder};

use super::decoder::AdainResBlk1d;
use crate::nn::{AdaLayerNorm, BiLstm};

/// `predictor.text_encoder`: alternating BiLSTM and AdaLayerNorm, re-appending the style
/// vector to the features after every norm.
#[derive(Debug, Clone)]
pub struct DurationEncoder {
    lstms: Vec<BiLstm>,
    norms: Vec<AdaLayerNorm>,
}

impl DurationEncoder {
    pub fn load(vb: VarBuilder, style_dim: usize, d_model: usize, n_layers: usize) -> Result<Self> {
        let mut lstms = Vec::with_capacity(n_layers);
        let mut norms = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            lstms.push(BiLstm::load(
                vb.pp(format!("lstms.{}", 2 * i)),
                d_model + style_dim,
                d_model / 2,
            )?);
            norms.push(AdaLayerNorm::load(
                vb.pp(format!("lstms.{}", 2 * i + 1)),
                style_dim,
                d_model,
            )?);
        }
        Ok(Self { lstms, norms })
    }

    /// `d_en`: `[1, d_model, T]`, `s`: `[1, style]` → `[1, T, d_model + style]`.
    pub fn forward(&self, d_en: &Tensor, s: &Tensor) -> Result<Tensor> {
        let t = d_en.dim(2)?;
        let style = s.unsqueeze(1)?.repeat((1, t, 1))?;
        let mut x = Tensor::cat(&[&d_en.transpose(1, 2)?, &style], 2)?.contiguous()?;
        for (lstm, norm) in self.lstms.iter().zip(&self.norms) {
            let y = lstm.forward(&x)?;
            let y = norm.forward(&y, s)?;
            x = Tensor::cat(&[&y, &style], 2)?.contiguous()?;
        }
        Ok(x)
    }
}

#[derive(Debug, Clone)]
pub struct ProsodyPredictor {
    text_encoder: DurationEncoder,
    lstm: BiLstm,
    duration_proj: Linear,
    shared: BiLstm,
    f0: Vec<AdainResBlk1d>,
    n: Vec<AdainResBlk1d>,
    f0_proj: Conv1d,
    n_proj: Conv1d,
}

impl ProsodyPredictor {
    pub fn load(
        vb: VarBuilder,
        style_dim: usize,
        d_hid: usize,
        n_layers: usize,
        max_dur: usize,
    ) -> Result<Self> {
        let branch = |name: &str| -> Result<Vec<AdainResBlk1d>> {
            let b = vb.pp(name);
            Ok(vec![
                AdainResBlk1d::load(b.pp("0"), d_hid, d_hid, style_dim, false)?,
                AdainResBlk1d::load(b.pp("1"), d_hid, d_hid / 2, style_dim, true)?,
                AdainResBlk1d::load(b.pp("2"), d_hid / 2, d_hid / 2, style_dim, false)?,
            ])
        };
        let proj = |name: &str| candle_nn::conv1d(d_hid / 2, 1, 1, Default::default(), vb.pp(name));
        Ok(Self {
            text_encoder: DurationEncoder::load(vb.pp("text_encoder"), style_dim, d_hid, n_layers)?,
            lstm: BiLstm::load(vb.pp("lstm"), d_hid + style_dim, d_hid / 2)?,
            duration_proj: candle_nn::linear(
                d_hid,
                max_dur,
                vb.pp("duration_proj").pp("linear_layer"),
            )?,
            shared: BiLstm::load(vb.pp("shared"), d_hid + style_dim, d_hid / 2)?,
            f0: branch("F0")?,
            n: branch("N")?,
            f0_proj: proj("F0_proj")?,
            n_proj: proj("N_proj")?,
        })
    }

    /// Runs the duration encoder: `d_en` `[1, d_hid, T]` → `d` `[1, T, d_hid + style]`.
    pub fn encode(&self, d_en: &Tensor, s: &Tensor) -> Result<Tensor> {
        self.text_encoder.forward(d_en, s)
    }

    /// Per-token durations in frames before rounding: `sigmoid(proj(lstm(d))).sum(-1) / speed`.
    pub fn raw_durations(&self, d: &Tensor, speed: f32) -> Result<Vec<f32>> {
        let x = self.lstm.forward(d)?;
        let logits = self.duration_proj.forward(&x)?;
        let dur = (candle_nn::ops::sigmoid(&logits)?.sum(D::Minus1)? / speed as f64)?;
        dur.squeeze(0)?.to_dtype(candle_core::DType::F32)?.to_vec1()
    }

    /// F0 and energy curves, `[1, 2F]` each, from the expanded features `en` `[1, d_hid + style, F]`.
    pub fn f0_n(&self, en: &Tensor, s: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = self.shared.forward(&en.transpose(1, 2)?.contiguous()?)?;
        let x = x.transpose(1, 2)?.contiguous()?;
        let mut f0 = x.clone();
        for block in &self.f0 {
            f0 = block.forward(&f0, s)?;
        }
        let f0 = project_f32(&self.f0_proj, &f0)?.squeeze(1)?;
        let mut n = x;
        for block in &self.n {
            n = block.forward(&n, s)?;
        }
        let n = project_f32(&self.n_proj, &n)?.squeeze(1)?;
        Ok((f0, n))
    }
}

/// Rounds the raw durations like `torch.round(...).clamp(min=1)` (ties to even).
pub fn round_durations(raw: &[f32]) -> Vec<u32> {
    raw.iter()
        .map(|&d| d.round_ties_even().max(1.0) as u32)
        .collect()
}

/// The final 1×1 projection to an F0/energy curve, computed in f32 whatever the weights' dtype:
/// the source's phase integrates F0, so half-precision rounding of F0 would become audible.
fn project_f32(proj: &Conv1d, x: &Tensor) -> Result<Tensor> {
    if x.dtype() == candle_core::DType::F32 {
        return proj.forward(x);
    }
    let f32 = |t: &Tensor| t.to_dtype(candle_core::DType::F32);
    let bias = proj.bias().map(f32).transpose()?;
    Conv1d::new(f32(proj.weight())?, bias, *proj.config()).forward(&f32(x)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_half_to_even_and_are_at_least_one() {
        assert_eq!(
            round_durations(&[0.2, 2.5, 3.5, 4.49, 0.0]),
            vec![1, 2, 4, 4, 1]
        );
    }
}
