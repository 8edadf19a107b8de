//! The HiFi-GAN generator (`dec`): upsampling transposed convs with multi-receptive-field
//! residual blocks (type 1: `convs1`/`convs2`, type 2: `convs`), then `tanh`.
//!
//! Reference: `jaywalnut310/vits` `models.Generator`, `modules.ResBlock1`, `modules.ResBlock2`.
//! Kernel sizes, dilations, strides and paddings come from the ONNX graph (see `VitsConfig`).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv1d, VarBuilder};

use super::layers::{conv1d, conv1x1};
use super::{ResBlockConfig, VitsConfig};
use crate::nn::{ConvTranspose1d, FusedConv1d};

const LRELU_SLOPE: f32 = 0.1;

/// One multi-receptive-field residual block: pairs `(first, second)` where type 2 has no second conv.
#[derive(Debug, Clone)]
struct ResBlock {
    pairs: Vec<(FusedConv1d, Option<FusedConv1d>)>,
}

impl ResBlock {
    fn load(vb: VarBuilder, channels: usize, cfg: &ResBlockConfig) -> Result<Self> {
        let k = cfg.kernel_size;
        let mut pairs = Vec::new();
        if cfg.type1 {
            for (j, (&(d1, p1), &(d2, p2))) in cfg.convs.iter().zip(&cfg.convs2).enumerate() {
                let c1 = conv1d(
                    &vb.pp(format!("convs1.{j}")),
                    channels,
                    channels,
                    k,
                    d1,
                    p1,
                    true,
                )?;
                let c2 = conv1d(
                    &vb.pp(format!("convs2.{j}")),
                    channels,
                    channels,
                    k,
                    d2,
                    p2,
                    true,
                )?;
                pairs.push((FusedConv1d::new(c1)?, Some(FusedConv1d::new(c2)?)));
            }
        } else {
            for (j, &(d, p)) in cfg.convs.iter().enumerate() {
                let c = conv1d(
                    &vb.pp(format!("convs.{j}")),
                    channels,
                    channels,
                    k,
                    d,
                    p,
                    true,
                )?;
                pairs.push((FusedConv1d::new(c)?, None));
            }
        }
        Ok(Self { pairs })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        let slope = Some(LRELU_SLOPE);
        for (c1, c2) in &self.pairs {
            x = match c2 {
                Some(c2) => c2.forward_residual(&c1.forward_act(&x, slope)?, slope, &x)?,
                None => c1.forward_residual(&x, slope, &x)?,
            };
        }
        Ok(x)
    }
}

#[derive(Debug, Clone)]
pub struct Generator {
    conv_pre: FusedConv1d,
    cond: Option<Conv1d>,
    ups: Vec<ConvTranspose1d>,
    /// `resblocks[i]` are the blocks after upsample `i`, averaged.
    resblocks: Vec<Vec<ResBlock>>,
    conv_post: FusedConv1d,
    span: tracing::Span,
}

impl Generator {
    pub fn load(vb: VarBuilder, cfg: &VitsConfig) -> Result<Self> {
        let d = &cfg.decoder;
        let conv_pre = FusedConv1d::new(conv1d(
            &vb.pp("conv_pre"),
            cfg.inter_channels,
            d.initial_channels,
            d.pre_kernel_size,
            1,
            d.pre_kernel_size / 2,
            true,
        )?)?;
        let cond = if cfg.gin_channels > 0 {
            Some(conv1x1(&vb.pp("cond"))?)
        } else {
            None
        };
        let mut ups = Vec::new();
        let mut resblocks = Vec::new();
        let mut channels = d.initial_channels;
        let n_kernels = d.resblocks.len();
        for (i, up) in d.upsamples.iter().enumerate() {
            let out = channels / 2;
            ups.push(ConvTranspose1d::load(
                vb.pp(format!("ups.{i}")),
                channels,
                out,
                up.kernel_size,
                up.stride,
                up.padding,
            )?);
            channels = out;
            let blocks = d
                .resblocks
                .iter()
                .enumerate()
                .map(|(j, rb)| {
                    ResBlock::load(
                        vb.pp(format!("resblocks.{}", i * n_kernels + j)),
                        channels,
                        rb,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            resblocks.push(blocks);
        }
        let post_w = vb.get((1, channels, d.post_kernel_size), "conv_post.weight")?;
        let post_b = vb.get(1, "conv_post.bias").ok();
        let conv_post = FusedConv1d::new(Conv1d::new(
            post_w,
            post_b,
            candle_nn::Conv1dConfig {
                padding: d.post_kernel_size / 2,
                ..Default::default()
            },
        ))?;
        Ok(Self {
            conv_pre,
            cond,
            ups,
            resblocks,
            conv_post,
            span: tracing::span!(tracing::Level::TRACE, "hifigan"),
        })
    }

    /// Latent `[1, C, T]` → waveform `[1, 1, T·hop]` in [-1, 1].
    pub fn forward(&self, z: &Tensor, g: Option<&Tensor>) -> Result<Tensor> {
        let _enter = self.span.enter();
        let mut x = self.conv_pre.forward_act(z, None)?;
        if let (Some(cond), Some(g)) = (&self.cond, g) {
            x = x.broadcast_add(&cond.forward(g)?)?;
        }
        for (up, blocks) in self.ups.iter().zip(&self.resblocks) {
            x = up.forward(&candle_nn::ops::leaky_relu(&x, LRELU_SLOPE as f64)?)?;
            let mut sum: Option<Tensor> = None;
            for block in blocks {
                let y = block.forward(&x)?;
                sum = Some(match sum {
                    Some(s) => (s + y)?,
                    None => y,
                });
            }
            if let Some(s) = sum {
                x = (s / blocks.len() as f64)?;
            }
        }
        // The reference uses torch's default slope (0.01) here, not LRELU_SLOPE.
        self.conv_post.forward_act(&x, Some(0.01))?.tanh()
    }
}
