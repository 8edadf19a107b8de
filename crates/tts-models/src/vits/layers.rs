//! Small layers shared by the VITS sub-networks, written for candle's CPU fast paths:
//! convs loaded from ONNX attributes, channel LayerNorm, depthwise conv as shifted
//! multiply-adds, and the sequence masks of padded batches.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Conv1d, Conv1dConfig, VarBuilder};

/// A conv1d with explicit dilation and symmetric padding.
pub fn conv1d(
    vb: &VarBuilder,
    in_c: usize,
    out_c: usize,
    kernel: usize,
    dilation: usize,
    padding: usize,
    bias: bool,
) -> Result<Conv1d> {
    let weight = vb.get((out_c, in_c, kernel), "weight")?;
    let bias = if bias {
        Some(vb.get(out_c, "bias")?)
    } else {
        None
    };
    let cfg = Conv1dConfig {
        padding,
        stride: 1,
        dilation,
        groups: 1,
        cudnn_fwd_algo: None,
    };
    Ok(Conv1d::new(weight, bias, cfg))
}

/// `x · mask` for a padded batch (`mask` `[B, 1, T]`, 1 on real frames, 0 on padding); `x` as is
/// for an unpadded utterance. Convs must see zeros past an utterance's end, as they would alone.
pub fn apply_mask(x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    match mask {
        Some(mask) => x.broadcast_mul(mask),
        None => Ok(x.clone()),
    }
}

/// The `[B, 1, T]` mask of a batch of sequences `lengths` padded to `T`.
pub fn sequence_mask(lengths: &[usize], t: usize, device: &candle_core::Device) -> Result<Tensor> {
    let values: Vec<f32> = lengths
        .iter()
        .flat_map(|&n| (0..t).map(move |i| if i < n { 1.0 } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (lengths.len(), 1, t), device)
}

/// A pointwise (kernel 1) conv whose shapes are read from its weight.
pub fn conv1x1(vb: &VarBuilder) -> Result<Conv1d> {
    let weight = vb.get_unchecked("weight")?;
    let (out_c, _, _) = weight.dims3()?;
    let bias = vb.get(out_c, "bias").ok();
    Ok(Conv1d::new(weight, bias, Conv1dConfig::default()))
}

/// VITS `modules.LayerNorm`: normalises over channels of a `[B, C, T]` tensor.
#[derive(Debug, Clone)]
pub struct ChannelNorm {
    gamma: Tensor,
    beta: Tensor,
    eps: f64,
}

impl ChannelNorm {
    pub fn load(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self {
            gamma: vb.get(channels, "gamma")?.reshape((1, channels, 1))?,
            beta: vb.get(channels, "beta")?.reshape((1, channels, 1))?,
            eps: 1e-5,
        })
    }
}

impl Module for ChannelNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(1)?;
        let xc = x.broadcast_sub(&mean)?;
        // Biased variance, as torch's layer_norm.
        let var = xc.sqr()?.mean_keepdim(1)?;
        xc.broadcast_div(&(var + self.eps)?.sqrt()?)?
            .broadcast_mul(&self.gamma)?
            .broadcast_add(&self.beta)
    }
}

/// Depthwise (groups = channels) dilated conv1d as `K` shifted broadcast multiply-adds:
/// candle runs grouped convs as one launch per group, which is far slower.
#[derive(Debug, Clone)]
pub struct DepthwiseConv1d {
    /// `[K]` tensors of shape `[1, C, 1]`.
    taps: Vec<Tensor>,
    bias: Tensor,
    dilation: usize,
    padding: usize,
}

impl DepthwiseConv1d {
    pub fn load(
        vb: VarBuilder,
        channels: usize,
        kernel: usize,
        dilation: usize,
        padding: usize,
    ) -> Result<Self> {
        let w = vb.get((channels, 1, kernel), "weight")?;
        let taps = (0..kernel)
            .map(|k| w.narrow(2, k, 1)?.reshape((1, channels, 1)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            taps,
            bias: vb.get(channels, "bias")?.reshape((1, channels, 1))?,
            dilation,
            padding,
        })
    }
}

impl Module for DepthwiseConv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(D::Minus1)?;
        let xp = x.pad_with_zeros(D::Minus1, self.padding, self.padding)?;
        let span = self.dilation * (self.taps.len() - 1);
        let t_out = (t + 2 * self.padding).saturating_sub(span);
        let mut acc = self
            .bias
            .broadcast_as((x.dim(0)?, x.dim(1)?, t_out))?
            .contiguous()?;
        for (k, tap) in self.taps.iter().enumerate() {
            let shifted = xp.narrow(D::Minus1, k * self.dilation, t_out)?;
            acc = (acc + shifted.broadcast_mul(tap)?)?;
        }
        Ok(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    #[test]
    fn depthwise_conv_matches_grouped_conv1d() -> Result<()> {
        let dev = Device::Cpu;
        let (c, k, d, p) = (4, 3, 3, 3);
        let w = Tensor::randn(0f32, 1., (c, 1, k), &dev)?;
        let b = Tensor::randn(0f32, 1., c, &dev)?;
        let x = Tensor::randn(0f32, 1., (1, c, 17), &dev)?;
        let vb = VarBuilder::from_tensors(
            HashMap::from([
                ("weight".to_string(), w.clone()),
                ("bias".to_string(), b.clone()),
            ]),
            DType::F32,
            &dev,
        );
        let ours = DepthwiseConv1d::load(vb, c, k, d, p)?.forward(&x)?;
        let reference = x
            .conv1d(&w, p, 1, d, c)?
            .broadcast_add(&b.reshape((1, c, 1))?)?;
        let err = (ours - reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(err < 1e-5, "max error {err}");
        Ok(())
    }
}
