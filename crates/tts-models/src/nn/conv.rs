//! 1-D convolution pieces that sidestep candle's slow paths.
//!
//! * [`ConvTranspose1d`] runs candle's transposed convolution with padding 0 (the fast col2im
//!   path) and crops afterwards; with padding it would fall back to a naive kernel.
//! * [`DepthwiseUpsample2x`] is `ConvTranspose1d(C, C, k=3, stride=2, padding=1,
//!   output_padding=1, groups=C)` written as three broadcast multiplies instead of C
//!   single-group launches.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

/// `nn.ConvTranspose1d(in, out, k, stride, padding)` with groups 1; weight `[in, out, k]`.
#[derive(Debug, Clone)]
pub struct ConvTranspose1d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl ConvTranspose1d {
    pub fn load(
        vb: VarBuilder,
        in_c: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let weight = vb.get((in_c, out_c, kernel), "weight")?;
        let bias = vb.get(out_c, "bias")?.reshape((1, out_c, 1))?;
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
        })
    }

    /// `[1, in, T]` → `[1, out, (T−1)·stride − 2·padding + k]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let full = x.conv_transpose1d(&self.weight, 0, 0, self.stride, 1, 1)?;
        let len = full.dim(2)? - 2 * self.padding;
        full.narrow(2, self.padding, len)?.broadcast_add(&self.bias)
    }
}

/// The `pool` of an upsampling `AdainResBlk1d`: depthwise transposed conv, k=3, stride 2,
/// padding 1, output padding 1, so `[1, C, T]` → `[1, C, 2T]`.
#[derive(Debug, Clone)]
pub struct DepthwiseUpsample2x {
    /// Kernel taps `w[:, 0, k]` as `[1, C, 1]`.
    taps: [Tensor; 3],
    bias: Tensor,
}

impl DepthwiseUpsample2x {
    pub fn load(vb: VarBuilder, channels: usize) -> Result<Self> {
        let w = vb.get((channels, 1, 3), "weight")?;
        let tap = |k: usize| w.narrow(2, k, 1)?.reshape((1, channels, 1));
        let bias = vb.get(channels, "bias")?.reshape((1, channels, 1))?;
        Ok(Self {
            taps: [tap(0)?, tap(1)?, tap(2)?],
            bias,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        // Output 2t comes from x[t]·w1; output 2t+1 from x[t]·w2 + x[t+1]·w0 (x[T] = 0).
        let even = x.broadcast_mul(&self.taps[1])?.broadcast_add(&self.bias)?;
        let next = Tensor::cat(
            &[x.narrow(2, 1, t - 1)?, x.zeros_like()?.narrow(2, 0, 1)?],
            2,
        )?;
        let odd = (x.broadcast_mul(&self.taps[2])? + next.broadcast_mul(&self.taps[0])?)?
            .broadcast_add(&self.bias)?;
        Tensor::stack(&[even, odd], 3)?.reshape((b, c, 2 * t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    #[test]
    fn depthwise_upsample_matches_grouped_conv_transpose() -> Result<()> {
        let dev = Device::Cpu;
        let (c, t) = (4, 5);
        let w = Tensor::arange(0f32, (c * 3) as f32, &dev)?.reshape((c, 1, 3))?;
        let w = (w * 0.1)?;
        let b = Tensor::new(&[0.5f32, -0.5, 1.0, 0.0], &dev)?;
        let x = (Tensor::arange(0f32, (c * t) as f32, &dev)?.reshape((1, c, t))? * 0.3)?.sin()?;
        let mut map = HashMap::new();
        map.insert("weight".to_string(), w.clone());
        map.insert("bias".to_string(), b.clone());
        let up = DepthwiseUpsample2x::load(VarBuilder::from_tensors(map, DType::F32, &dev), c)?;
        let got = up.forward(&x)?;
        // candle's grouped transposed conv with the PyTorch hyper-parameters.
        let want = x
            .conv_transpose1d(&w, 1, 1, 2, 1, c)?
            .broadcast_add(&b.reshape((1, c, 1))?)?;
        assert_eq!(got.dims(), want.dims());
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "max diff {diff}");
        Ok(())
    }

    #[test]
    fn padded_transposed_conv_equals_cropped_unpadded_one() -> Result<()> {
        let dev = Device::Cpu;
        let (ci, co, k, s, p, t) = (3, 2, 6, 3, 2, 4);
        let w = (Tensor::arange(0f32, (ci * co * k) as f32, &dev)?.reshape((ci, co, k))? * 0.07)?
            .cos()?;
        let b = Tensor::new(&[0.1f32, -0.2], &dev)?;
        let x = (Tensor::arange(0f32, (ci * t) as f32, &dev)?.reshape((1, ci, t))? * 0.5)?.sin()?;
        let mut map = HashMap::new();
        map.insert("weight".to_string(), w.clone());
        map.insert("bias".to_string(), b.clone());
        let ct = ConvTranspose1d::load(
            VarBuilder::from_tensors(map, DType::F32, &dev),
            ci,
            co,
            k,
            s,
            p,
        )?;
        let got = ct.forward(&x)?;
        let want = x
            .conv_transpose1d(&w, p, 0, s, 1, 1)?
            .broadcast_add(&b.reshape((1, co, 1))?)?;
        assert_eq!(got.dims(), want.dims());
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "max diff {diff}");
        Ok(())
    }
}
