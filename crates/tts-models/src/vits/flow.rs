//! The residual coupling flow (`flow`), run in reverse to map prior samples to decoder latents.
//!
//! Reference: `jaywalnut310/vits` `models.ResidualCouplingBlock`, `modules.ResidualCouplingLayer`,
//! `modules.WN`. Each coupling layer is preceded (in reverse) by a channel flip. A padded batch
//! passes a `[B, 1, T]` mask, and padding is zeroed before every dilated conv (the only layers
//! that mix frames), so each item equals its unpadded run.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv1d, VarBuilder};

use super::layers::{apply_mask, conv1d, conv1x1};
use super::VitsConfig;
use crate::nn::FusedConv1d;

/// WaveNet-style gated dilated conv stack (`modules.WN`).
#[derive(Debug, Clone)]
struct WaveNet {
    in_layers: Vec<FusedConv1d>,
    res_skip: Vec<FusedConv1d>,
    cond: Option<Conv1d>,
    hidden: usize,
}

impl WaveNet {
    fn load(vb: VarBuilder, cfg: &VitsConfig, flow: usize) -> Result<Self> {
        let h = cfg.hidden_channels;
        let mut in_layers = Vec::new();
        let mut res_skip = Vec::new();
        for (i, &(dilation, padding)) in cfg.flow_wn_layers[flow].iter().enumerate() {
            in_layers.push(FusedConv1d::new(conv1d(
                &vb.pp(format!("in_layers.{i}")),
                h,
                2 * h,
                cfg.flow_kernel_size,
                dilation,
                padding,
                true,
            )?)?);
            res_skip.push(FusedConv1d::new(conv1x1(
                &vb.pp(format!("res_skip_layers.{i}")),
            )?)?);
        }
        let cond = if cfg.gin_channels > 0 {
            Some(conv1x1(&vb.pp("cond_layer"))?)
        } else {
            None
        };
        Ok(Self {
            in_layers,
            res_skip,
            cond,
            hidden: h,
        })
    }

    /// `x` must be zero on padding.
    fn forward(&self, x: &Tensor, g: Option<&Tensor>, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self.hidden;
        let g = match (&self.cond, g) {
            (Some(cond), Some(g)) => Some(cond.forward(g)?),
            _ => None,
        };
        let mut x = x.clone();
        let mut output: Option<Tensor> = None;
        let n = self.in_layers.len();
        for i in 0..n {
            let mut x_in = self.in_layers[i].forward_act(&x, None)?;
            if let Some(g) = &g {
                x_in = x_in.broadcast_add(&g.narrow(1, i * 2 * h, 2 * h)?)?;
            }
            let acts =
                (x_in.narrow(1, 0, h)?.tanh()? * candle_nn::ops::sigmoid(&x_in.narrow(1, h, h)?)?)?;
            let rs = self.res_skip[i].forward_act(&acts, None)?;
            let skip = if i + 1 < n {
                x = apply_mask(&(x + rs.narrow(1, 0, h)?)?, mask)?;
                rs.narrow(1, h, h)?
            } else {
                rs
            };
            output = Some(match output {
                Some(o) => (o + skip)?,
                None => skip,
            });
        }
        match output {
            Some(o) => Ok(o),
            None => x.zeros_like(),
        }
    }
}

#[derive(Debug, Clone)]
struct CouplingLayer {
    pre: Conv1d,
    enc: WaveNet,
    post: Conv1d,
    half: usize,
    mean_only: bool,
}

impl CouplingLayer {
    fn load(vb: VarBuilder, cfg: &VitsConfig, flow: usize) -> Result<Self> {
        let post = conv1x1(&vb.pp("post"))?;
        let half = cfg.inter_channels / 2;
        let out = post.weight().dim(0)?;
        Ok(Self {
            pre: conv1x1(&vb.pp("pre"))?,
            enc: WaveNet::load(vb.pp("enc"), cfg, flow)?,
            post,
            half,
            mean_only: out == half,
        })
    }

    fn reverse(&self, x: &Tensor, g: Option<&Tensor>, mask: Option<&Tensor>) -> Result<Tensor> {
        let x0 = x.narrow(1, 0, self.half)?;
        let x1 = x.narrow(1, self.half, self.half)?;
        let h = apply_mask(&self.pre.forward(&x0)?, mask)?;
        let h = self.enc.forward(&h, g, mask)?;
        let stats = self.post.forward(&h)?;
        let x1 = if self.mean_only {
            (x1 - stats)?
        } else {
            let m = stats.narrow(1, 0, self.half)?;
            let logs = stats.narrow(1, self.half, self.half)?;
            ((x1 - m)? * logs.neg()?.exp()?)?
        };
        Tensor::cat(&[x0, x1], 1)
    }
}

#[derive(Debug, Clone)]
pub struct ResidualCouplingBlock {
    /// Coupling layers in forward order.
    layers: Vec<CouplingLayer>,
    flip_index: Tensor,
    span: tracing::Span,
}

impl ResidualCouplingBlock {
    pub fn load(vb: VarBuilder, cfg: &VitsConfig) -> Result<Self> {
        let layers = cfg
            .flow_indices
            .iter()
            .enumerate()
            .map(|(n, &i)| CouplingLayer::load(vb.pp(format!("flows.{i}")), cfg, n))
            .collect::<Result<Vec<_>>>()?;
        let c = cfg.inter_channels as u32;
        let flip_index =
            Tensor::from_vec((0..c).rev().collect::<Vec<u32>>(), c as usize, vb.device())?;
        Ok(Self {
            layers,
            flip_index,
            span: tracing::span!(tracing::Level::TRACE, "flow"),
        })
    }

    /// `z_p` `[1, C, T]` → decoder latent `z`.
    pub fn reverse(&self, z_p: &Tensor, g: Option<&Tensor>) -> Result<Tensor> {
        self.reverse_masked(z_p, g, None)
    }

    /// The same for a padded batch `[B, C, T]` with its `[B, 1, T]` mask (`None`: no padding);
    /// frames on padding are meaningless.
    pub fn reverse_masked(
        &self,
        z_p: &Tensor,
        g: Option<&Tensor>,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let _enter = self.span.enter();
        let mut x = z_p.clone();
        for layer in self.layers.iter().rev() {
            x = x.index_select(&self.flip_index, 1)?;
            x = layer.reverse(&x, g, mask)?;
        }
        Ok(x)
    }
}
