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
        let full = if super::differentiable_ops() {
            conv_transpose1d_polyphase(x, &self.weight, self.stride)?
        } else {
            x.conv_transpose1d(&self.weight, 0, 0, self.stride, 1, 1)?
        };
        let len = full.dim(2)? - 2 * self.padding;
        full.narrow(2, self.padding, len)?.broadcast_add(&self.bias)
    }
}

/// An unpadded transposed convolution (`[B, in, T]`, weight `[in, out, k]`) →
/// `[B, out, (T−1)·stride + k]`, as one ordinary convolution, which candle can differentiate.
/// Output sample `q·stride + r` is `Σᵢ x[q − i] · w[i·stride + r]`: phase `r` of the output is a
/// plain convolution of `x` with every `stride`-th tap, so the `stride` phases become the
/// output channels of one conv1d (kernel `⌈k/stride⌉`) and are interleaved afterwards.
pub fn conv_transpose1d_polyphase(x: &Tensor, w: &Tensor, stride: usize) -> Result<Tensor> {
    let (b, _, t) = x.dims3()?;
    let (c_in, c_out, k) = w.dims3()?;
    let taps = k.div_ceil(stride);
    // Zero taps up to a multiple of the stride, then [in, out, taps, stride].
    let w = if taps * stride > k {
        let pad = Tensor::zeros((c_in, c_out, taps * stride - k), w.dtype(), w.device())?;
        Tensor::cat(&[w, &pad], 2)?
    } else {
        w.clone()
    };
    // Conv1d weight [stride·out, in, taps]: row (r, o), tap j = w[in, o, (taps − 1 − j)·stride + r]
    // (a convolution runs its taps forwards, the sum above backwards).
    let kernel = reverse(&w.reshape((c_in, c_out, taps, stride))?, 2)?
        .permute((3, 1, 0, 2))?
        .reshape((stride * c_out, c_in, taps))?
        .contiguous()?;
    let conv = candle_nn::Conv1d::new(
        kernel,
        None,
        candle_nn::Conv1dConfig {
            padding: taps - 1,
            ..Default::default()
        },
    );
    let y = super::fused::conv1d_input_grad(x, &conv)?; // [B, stride·out, T + taps − 1]
    let len = t + taps - 1;
    let y = y
        .reshape((b, stride, c_out, len))?
        .permute((0, 2, 3, 1))?
        .reshape((b, c_out, len * stride))?;
    y.narrow(2, 0, (t - 1) * stride + k)
}

/// `x` with dimension `dim` in reverse order (kernels flipped for adjoint convolutions).
pub(crate) fn reverse(x: &Tensor, dim: usize) -> Result<Tensor> {
    let reversed: Vec<u32> = (0..x.dim(dim)? as u32).rev().collect();
    x.contiguous()?
        .index_select(&Tensor::new(reversed.as_slice(), x.device())?, dim)
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
    fn polyphase_transposed_conv_matches_candle_and_has_a_gradient() -> Result<()> {
        let dev = Device::Cpu;
        // Kokoro's two upsamplers (k = 2·stride) and a kernel that is not a stride multiple.
        for (ci, co, k, s, t) in [(3, 2, 20, 10, 5), (2, 4, 12, 6, 3), (3, 2, 7, 3, 4)] {
            let w = (Tensor::arange(0f32, (ci * co * k) as f32, &dev)?.reshape((ci, co, k))?
                * 0.13)?
                .sin()?;
            let x = candle_core::Var::from_tensor(
                &(Tensor::arange(0f32, (2 * ci * t) as f32, &dev)?.reshape((2, ci, t))? * 0.7)?
                    .cos()?,
            )?;
            let got = conv_transpose1d_polyphase(x.as_tensor(), &w, s)?;
            // Against candle one item at a time: candle 0.11's CPU transposed conv gets the
            // second item of a batch wrong.
            for item in 0..2 {
                let one = x.as_tensor().narrow(0, item, 1)?;
                let want = one.conv_transpose1d(&w, 0, 0, s, 1, 1)?;
                let got = got.narrow(0, item, 1)?;
                assert_eq!(got.dims(), want.dims());
                let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(diff < 1e-5, "k {k} stride {s} item {item}: max diff {diff}");
            }
            // d Σy / d x[c, t] is the sum of the taps from input c, whatever t.
            let grad = got.sum_all()?.backward()?;
            let dx = grad.get(x.as_tensor()).expect("gradient reaches the input");
            let tap_sums: Vec<f32> = w.sum(2)?.sum(1)?.to_vec1()?;
            for (c, row) in dx.get(0)?.to_vec2::<f32>()?.iter().enumerate() {
                for v in row {
                    assert!((v - tap_sums[c]).abs() < 1e-4, "{v} vs {}", tap_sums[c]);
                }
            }
        }
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
