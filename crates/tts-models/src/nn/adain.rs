//! Style-conditioned normalisation: `AdaIN1d` (instance norm over time) and `AdaLayerNorm`
//! (layer norm over channels), both `(1 + γ(s)) · norm(x) + β(s)` with γ, β from a linear map
//! of the style vector.
//!
//! PyTorch's `InstanceNorm1d` and `F.layer_norm` use the *biased* variance; candle's
//! `var_keepdim` is unbiased, so the variance is computed here as `mean((x − μ)²)`.

use candle_core::{Result, Tensor, D};
use candle_nn::{Linear, Module, VarBuilder};

/// Normalises `x` over its last dimension with the biased variance (no affine).
pub fn instance_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    // Statistics of f16/bf16 activations are taken in f32: a half-precision mean of squares
    // over thousands of samples loses the variance.
    if x.dtype() != candle_core::DType::F32 {
        return instance_norm(&x.to_dtype(candle_core::DType::F32)?, eps)?.to_dtype(x.dtype());
    }
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    xc.broadcast_div(&(var + eps)?.sqrt()?)
}

/// `AdaIN1d`: `x` is `[1, C, T]`, `s` is `[1, S]`.
#[derive(Debug, Clone)]
pub struct AdaIn1d {
    fc: Linear,
    channels: usize,
}

impl AdaIn1d {
    /// Loads `fc.{weight,bias}`. The official module's `norm.{weight,bias}` are an export
    /// workaround that stays at ones/zeros, so they are not read.
    pub fn load(vb: VarBuilder, style_dim: usize, channels: usize) -> Result<Self> {
        let fc = candle_nn::linear(style_dim, 2 * channels, vb.pp("fc"))?;
        Ok(Self { fc, channels })
    }

    /// Returns `(1 + γ, β)` as `[1, C, 1]` tensors.
    pub fn gamma_beta(&self, s: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.fc.forward(s)?.unsqueeze(D::Minus1)?;
        let gamma = (h.narrow(1, 0, self.channels)? + 1.0)?;
        let beta = h.narrow(1, self.channels, self.channels)?;
        Ok((gamma, beta))
    }

    /// `(1 + γ, β)` on the host, for [`super::FusedConv1d`].
    pub fn params(&self, s: &Tensor) -> Result<super::AdaInParams> {
        let h: Vec<f32> = self
            .fc
            .forward(s)?
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?;
        let c = self.channels;
        Ok(super::AdaInParams {
            gamma1: h[..c].iter().map(|g| 1.0 + g).collect(),
            beta: h[c..2 * c].to_vec(),
        })
    }

    pub fn forward(&self, x: &Tensor, s: &Tensor) -> Result<Tensor> {
        let (gamma, beta) = self.gamma_beta(s)?;
        instance_norm(x, 1e-5)?
            .broadcast_mul(&gamma)?
            .broadcast_add(&beta)
    }
}

/// `AdaLayerNorm`: `x` is `[1, T, C]`, normalised over `C`; `s` is `[1, S]`.
#[derive(Debug, Clone)]
pub struct AdaLayerNorm {
    fc: Linear,
    channels: usize,
}

impl AdaLayerNorm {
    pub fn load(vb: VarBuilder, style_dim: usize, channels: usize) -> Result<Self> {
        let fc = candle_nn::linear(style_dim, 2 * channels, vb.pp("fc"))?;
        Ok(Self { fc, channels })
    }

    pub fn forward(&self, x: &Tensor, s: &Tensor) -> Result<Tensor> {
        // [1, 2C] → [1, 1, 2C] broadcast over time.
        let h = self.fc.forward(s)?.unsqueeze(1)?;
        let gamma = (h.narrow(2, 0, self.channels)? + 1.0)?;
        let beta = h.narrow(2, self.channels, self.channels)?;
        instance_norm(x, 1e-5)?
            .broadcast_mul(&gamma)?
            .broadcast_add(&beta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn instance_norm_uses_biased_variance() -> Result<()> {
        let x = Tensor::new(&[[[1f32, 2., 3., 4.]]], &Device::Cpu)?;
        let y: Vec<f32> = instance_norm(&x, 0.0)?.flatten_all()?.to_vec1()?;
        // mean 2.5, biased var 1.25
        let want = [-1.5f32, -0.5, 0.5, 1.5].map(|v| v / 1.25f32.sqrt());
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        Ok(())
    }
}
