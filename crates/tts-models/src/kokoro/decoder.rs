//! The decoder (`decoder`): AdaIN residual blocks over the aligned text features plus F0 and
//! energy, then the iSTFTNet [`Generator`].
//!
//! Reference: `AdainResBlk1d` and `Decoder` in hexgrad/kokoro `kokoro/istftnet.py`.

use candle_core::{Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, Module, VarBuilder};

use super::generator::{Generator, GeneratorConfig, SourceOptions};
use crate::nn::{Activation, AdaIn1d, DepthwiseUpsample2x, FusedConv1d};

/// `AdainResBlk1d`: `(residual(x) + shortcut(x)) / √2`, with optional ×2 upsampling
/// (depthwise transposed conv on the residual path, nearest on the shortcut).
#[derive(Debug, Clone)]
pub struct AdainResBlk1d {
    norm1: AdaIn1d,
    norm2: AdaIn1d,
    conv1: FusedConv1d,
    conv2: FusedConv1d,
    conv1x1: Option<FusedConv1d>,
    pool: Option<DepthwiseUpsample2x>,
}

impl AdainResBlk1d {
    pub fn load(
        vb: VarBuilder,
        dim_in: usize,
        dim_out: usize,
        style_dim: usize,
        upsample: bool,
    ) -> Result<Self> {
        let pad1 = Conv1dConfig {
            padding: 1,
            ..Default::default()
        };
        let conv1x1 = if dim_in != dim_out {
            Some(FusedConv1d::new(candle_nn::conv1d_no_bias(
                dim_in,
                dim_out,
                1,
                Default::default(),
                vb.pp("conv1x1"),
            )?)?)
        } else {
            None
        };
        let pool = if upsample {
            Some(DepthwiseUpsample2x::load(vb.pp("pool"), dim_in)?)
        } else {
            None
        };
        Ok(Self {
            norm1: AdaIn1d::load(vb.pp("norm1"), style_dim, dim_in)?,
            norm2: AdaIn1d::load(vb.pp("norm2"), style_dim, dim_out)?,
            conv1: FusedConv1d::new(candle_nn::conv1d(dim_in, dim_out, 3, pad1, vb.pp("conv1"))?)?,
            conv2: FusedConv1d::new(candle_nn::conv1d(
                dim_out,
                dim_out,
                3,
                pad1,
                vb.pp("conv2"),
            )?)?,
            conv1x1,
            pool,
        })
    }

    pub fn upsamples(&self) -> bool {
        self.pool.is_some()
    }

    pub fn forward(&self, x: &Tensor, s: &Tensor) -> Result<Tensor> {
        let leaky = Activation::LeakyRelu(0.2);
        let r = match &self.pool {
            Some(pool) => {
                let r = candle_nn::ops::leaky_relu(&self.norm1.forward(x, s)?, 0.2)?;
                self.conv1.forward_plain(&pool.forward(&r)?)?
            }
            None => self
                .conv1
                .forward_adain(x, &self.norm1, s, &leaky, None, 1.0)?,
        };
        let mut sc = if self.pool.is_some() {
            crate::nn::upsample_nearest(x, 2)?
        } else {
            x.clone()
        };
        if let Some(c) = &self.conv1x1 {
            sc = c.forward_plain(&sc)?;
        }
        // (conv2(LeakyReLU(AdaIN(r))) + shortcut) / √2 in one pass.
        self.conv2.forward_adain(
            &r,
            &self.norm2,
            s,
            &leaky,
            Some(&sc),
            std::f32::consts::FRAC_1_SQRT_2,
        )
    }
}

#[derive(Debug, Clone)]
pub struct Decoder {
    encode: AdainResBlk1d,
    decode: Vec<AdainResBlk1d>,
    f0_conv: Conv1d,
    n_conv: Conv1d,
    asr_res: Conv1d,
    generator: Generator,
}

impl Decoder {
    pub fn load(
        vb: VarBuilder,
        dim_in: usize,
        style_dim: usize,
        gen: &GeneratorConfig,
    ) -> Result<Self> {
        let cat = 1024 + 2 + 64;
        let stride2 = Conv1dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        Ok(Self {
            encode: AdainResBlk1d::load(vb.pp("encode"), dim_in + 2, 1024, style_dim, false)?,
            decode: vec![
                AdainResBlk1d::load(vb.pp("decode.0"), cat, 1024, style_dim, false)?,
                AdainResBlk1d::load(vb.pp("decode.1"), cat, 1024, style_dim, false)?,
                AdainResBlk1d::load(vb.pp("decode.2"), cat, 1024, style_dim, false)?,
                AdainResBlk1d::load(vb.pp("decode.3"), cat, 512, style_dim, true)?,
            ],
            f0_conv: candle_nn::conv1d(1, 1, 3, stride2, vb.pp("F0_conv"))?,
            n_conv: candle_nn::conv1d(1, 1, 3, stride2, vb.pp("N_conv"))?,
            asr_res: candle_nn::conv1d(dim_in, 64, 1, Default::default(), vb.pp("asr_res.0"))?,
            generator: Generator::load(vb.pp("generator"), style_dim, gen)?,
        })
    }

    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The generator's input features `[1, 512, 2F]` from `asr` `[1, 512, F]` and the F0 / energy
    /// curves `[1, 2F]`; `s` is the decoder half of the style vector.
    pub fn features(&self, asr: &Tensor, f0: &Tensor, n: &Tensor, s: &Tensor) -> Result<Tensor> {
        // The curves may come in f32 while the weights are f16/bf16 (see `forward`).
        let f0 = self
            .f0_conv
            .forward(&f0.to_dtype(asr.dtype())?.unsqueeze(1)?)?;
        let n = self
            .n_conv
            .forward(&n.to_dtype(asr.dtype())?.unsqueeze(1)?)?;
        let mut x = self.encode.forward(&Tensor::cat(&[asr, &f0, &n], 1)?, s)?;
        let asr_res = self.asr_res.forward(asr)?;
        let mut residual = true;
        for block in &self.decode {
            if residual {
                x = Tensor::cat(&[&x, &asr_res, &f0, &n], 1)?;
            }
            x = block.forward(&x, s)?;
            if block.upsamples() {
                residual = false;
            }
        }
        Ok(x)
    }

    /// Audio samples `[600·F]` for 24 kHz. The harmonic source is built from `f0` as given, in
    /// f32: pass an f32 curve with half-precision weights, since bf16's 8-bit mantissa would
    /// move a 200 Hz F0 by up to ~0.4 Hz and the integrated phase with it.
    pub fn forward(
        &self,
        asr: &Tensor,
        f0: &Tensor,
        n: &Tensor,
        s: &Tensor,
        source: &SourceOptions,
    ) -> Result<Vec<f32>> {
        let x = self.features(asr, f0, n, s)?;
        self.generator.forward(&x, s, f0, source)
    }

    /// [`Self::forward`] as a tensor of samples through ops candle can back-propagate through
    /// (exact inverse STFT): gradients reach `s`, the decoder half of the style vector. Slower
    /// than `forward` on the CPU; voice cloning uses it.
    pub fn forward_differentiable(
        &self,
        asr: &Tensor,
        f0: &Tensor,
        n: &Tensor,
        s: &Tensor,
        source: &SourceOptions,
    ) -> Result<Tensor> {
        crate::nn::with_differentiable_ops(|| {
            let x = self.features(asr, f0, n, s)?;
            let post = self.generator.pre_istft(&x, s, f0, source)?;
            self.generator.istft_differentiable(&post)
        })
    }
}
