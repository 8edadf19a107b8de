//! Duration predictors: the stochastic one (SDP: DDSConv features, then noise run backwards
//! through rational-quadratic spline flows) that Piper voices use, and the plain conv predictor.
//!
//! Reference: `jaywalnut310/vits` `models.StochasticDurationPredictor`, `models.DurationPredictor`,
//! `modules.DDSConv`, `modules.ConvFlow`, `transforms.piecewise_rational_quadratic_transform`.
//! A padded batch passes a `[B, 1, N]` mask, and padding is zeroed before every conv wider
//! than one tap (everything else works per phoneme), so each item equals its unpadded run.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv1d, VarBuilder};

use super::layers::{apply_mask, conv1d, conv1x1, ChannelNorm, DepthwiseConv1d};
use super::{DurationPredictorKind, VitsConfig};

const MIN_BIN_WIDTH: f32 = 1e-3;
const MIN_BIN_HEIGHT: f32 = 1e-3;
const MIN_DERIVATIVE: f32 = 1e-3;
/// VITS' ConvFlow `tail_bound`; a Python constant, not stored in the graph.
const TAIL_BOUND: f32 = 5.0;

/// Dilated depth-separable conv stack (`modules.DDSConv`).
#[derive(Debug, Clone)]
struct DdsConv {
    sep: Vec<DepthwiseConv1d>,
    pointwise: Vec<Conv1d>,
    norms_1: Vec<ChannelNorm>,
    norms_2: Vec<ChannelNorm>,
}

impl DdsConv {
    fn load(vb: VarBuilder, cfg: &VitsConfig, layers: &[(usize, usize)]) -> Result<Self> {
        let c = cfg.dp_filter_channels;
        let mut s = Self {
            sep: Vec::new(),
            pointwise: Vec::new(),
            norms_1: Vec::new(),
            norms_2: Vec::new(),
        };
        for (i, &(dilation, padding)) in layers.iter().enumerate() {
            s.sep.push(DepthwiseConv1d::load(
                vb.pp(format!("convs_sep.{i}")),
                c,
                cfg.dp_kernel_size,
                dilation,
                padding,
            )?);
            s.pointwise.push(conv1x1(&vb.pp(format!("convs_1x1.{i}")))?);
            s.norms_1
                .push(ChannelNorm::load(vb.pp(format!("norms_1.{i}")), c)?);
            s.norms_2
                .push(ChannelNorm::load(vb.pp(format!("norms_2.{i}")), c)?);
        }
        Ok(s)
    }

    fn forward(&self, x: &Tensor, g: Option<&Tensor>, mask: Option<&Tensor>) -> Result<Tensor> {
        let mut x = match g {
            Some(g) => x.broadcast_add(g)?,
            None => x.clone(),
        };
        for i in 0..self.sep.len() {
            let y = self.sep[i].forward(&apply_mask(&x, mask)?)?;
            let y = self.norms_1[i].forward(&y)?.gelu_erf()?;
            let y = self.pointwise[i].forward(&y)?;
            let y = self.norms_2[i].forward(&y)?.gelu_erf()?;
            x = (x + y)?;
        }
        Ok(x)
    }
}

/// A spline coupling flow (`modules.ConvFlow`) on a 2-channel variable.
#[derive(Debug, Clone)]
struct ConvFlow {
    pre: Conv1d,
    convs: DdsConv,
    proj: Conv1d,
    num_bins: usize,
    filter_channels: usize,
}

impl ConvFlow {
    fn load(vb: VarBuilder, cfg: &VitsConfig) -> Result<Self> {
        Ok(Self {
            pre: conv1x1(&vb.pp("pre"))?,
            convs: DdsConv::load(vb.pp("convs"), cfg, &cfg.dp_flow_layers)?,
            proj: conv1x1(&vb.pp("proj"))?,
            num_bins: cfg.dp_num_bins,
            filter_channels: cfg.dp_filter_channels,
        })
    }

    /// Inverse pass; `cond` are the predictor's features `[B, F, N]`.
    fn reverse(&self, z: &Tensor, cond: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let z0 = z.narrow(1, 0, 1)?;
        let z1 = z.narrow(1, 1, 1)?;
        let h = self.pre.forward(&z0)?;
        let h = self.convs.forward(&h, Some(cond), mask)?;
        let h = self.proj.forward(&h)?; // [B, 3·bins-1, N]
        if !z.device().is_cpu() {
            // A per-phoneme bin search over ~3·N values: host code, logged (see nn::log_host_fallback).
            crate::log_host_fallback!("piper duration spline");
        }
        let params: Vec<Vec<Vec<f32>>> = h.to_vec3()?;
        let inputs: Vec<Vec<f32>> = z1.squeeze(1)?.to_vec2()?;
        let scale = (self.filter_channels as f32).sqrt();
        let k = self.num_bins;
        let mut out = Vec::with_capacity(z1.elem_count());
        for (params, inputs) in params.iter().zip(&inputs) {
            for (t, &x) in inputs.iter().enumerate() {
                let column = |range: std::ops::Range<usize>, s: f32| -> Vec<f32> {
                    range.map(|c| params[c][t] / s).collect()
                };
                let widths = column(0..k, scale);
                let heights = column(k..2 * k, scale);
                let derivs = column(2 * k..3 * k - 1, 1.0);
                out.push(inverse_spline(x, &widths, &heights, &derivs));
            }
        }
        let z1 = Tensor::from_vec(out, z1.shape(), z1.device())?;
        Tensor::cat(&[z0, z1], 1)
    }
}

fn softmax(v: &[f32]) -> Vec<f32> {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = v.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

fn softplus(x: f32) -> f32 {
    // torch's softplus switches to the identity above 20.
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// Knot positions on `[-B, B]` from unnormalised bin sizes (minimum size enforced).
fn knots(unnormalised: &[f32], min_size: f32) -> Vec<f32> {
    let n = unnormalised.len();
    let sizes: Vec<f32> = softmax(unnormalised)
        .into_iter()
        .map(|s| min_size + (1.0 - min_size * n as f32) * s)
        .collect();
    let mut cum = Vec::with_capacity(n + 1);
    cum.push(-TAIL_BOUND);
    let mut acc = 0.0f32;
    for s in &sizes[..n - 1] {
        acc += s;
        cum.push(2.0 * TAIL_BOUND * acc - TAIL_BOUND);
    }
    cum.push(TAIL_BOUND);
    cum
}

/// The inverse of the monotonic rational-quadratic spline with linear tails
/// (identity outside `[-B, B]`), for one scalar.
fn inverse_spline(y: f32, widths: &[f32], heights: &[f32], inner_derivs: &[f32]) -> f32 {
    if !(-TAIL_BOUND..=TAIL_BOUND).contains(&y) {
        return y;
    }
    let cumw = knots(widths, MIN_BIN_WIDTH);
    let cumh = knots(heights, MIN_BIN_HEIGHT);
    // Linear tails: the boundary derivatives are exactly 1.
    let mut derivs = Vec::with_capacity(inner_derivs.len() + 2);
    derivs.push(1.0);
    derivs.extend(inner_derivs.iter().map(|&d| MIN_DERIVATIVE + softplus(d)));
    derivs.push(1.0);
    // searchsorted with the last knot nudged up by 1e-6, as the reference does.
    let n = cumh.len() - 1;
    let mut bin = 0usize;
    for (i, &edge) in cumh.iter().enumerate() {
        let edge = if i == n { edge + 1e-6 } else { edge };
        if y >= edge {
            bin = i;
        }
    }
    let bin = bin.min(n - 1);
    let (x_k, w_k) = (cumw[bin], cumw[bin + 1] - cumw[bin]);
    let (y_k, h_k) = (cumh[bin], cumh[bin + 1] - cumh[bin]);
    let delta = h_k / w_k;
    let (d_k, d_k1) = (derivs[bin], derivs[bin + 1]);
    let dy = y - y_k;
    let sum = d_k + d_k1 - 2.0 * delta;
    let a = dy * sum + h_k * (delta - d_k);
    let b = h_k * d_k - dy * sum;
    let c = -delta * dy;
    let disc = (b * b - 4.0 * a * c).max(0.0);
    let root = (2.0 * c) / (-b - disc.sqrt());
    root * w_k + x_k
}

#[derive(Debug, Clone)]
pub struct StochasticDurationPredictor {
    pre: Conv1d,
    convs: DdsConv,
    proj: Conv1d,
    cond: Option<Conv1d>,
    /// ElementwiseAffine `(m, logs)`, each `[1, 2, 1]`.
    affine_m: Tensor,
    affine_logs: Tensor,
    /// The ConvFlows in the order the inverse pass runs them (the reference drops one).
    flows: Vec<ConvFlow>,
}

impl StochasticDurationPredictor {
    fn load(vb: VarBuilder, cfg: &VitsConfig) -> Result<Self> {
        let mut flows = Vec::new();
        for &i in cfg.dp_flow_indices.iter().rev() {
            flows.push(ConvFlow::load(vb.pp(format!("flows.{i}")), cfg)?);
        }
        let cond = if cfg.gin_channels > 0 {
            Some(conv1x1(&vb.pp("cond"))?)
        } else {
            None
        };
        Ok(Self {
            pre: conv1x1(&vb.pp("pre"))?,
            convs: DdsConv::load(vb.pp("convs"), cfg, &cfg.dp_layers)?,
            proj: conv1x1(&vb.pp("proj"))?,
            cond,
            affine_m: vb.get((2, 1), "flows.0.m")?.unsqueeze(0)?,
            affine_logs: vb.get((2, 1), "flows.0.logs")?.unsqueeze(0)?,
            flows,
        })
    }

    /// Log-durations `[B, 1, N]` from encoder states `x` `[B, H, N]` and noise `[B, 2, N]`.
    fn forward(
        &self,
        x: &Tensor,
        g: Option<&Tensor>,
        noise: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mut h = self.pre.forward(x)?;
        if let (Some(cond), Some(g)) = (&self.cond, g) {
            h = h.broadcast_add(&cond.forward(g)?)?;
        }
        let h = self.convs.forward(&h, None, mask)?;
        let h = apply_mask(&self.proj.forward(&h)?, mask)?;
        let flip = |z: &Tensor| -> Result<Tensor> {
            Tensor::cat(&[z.narrow(1, 1, 1)?, z.narrow(1, 0, 1)?], 1)
        };
        // Reverse order of [affine, (convflow, flip) x n] without the first ConvFlow:
        // flip, flow, ..., flip, flow, flip, affine.
        let mut z = noise.clone();
        for flow in &self.flows {
            z = flip(&z)?;
            z = flow.reverse(&z, &h, mask)?;
        }
        z = flip(&z)?
            .broadcast_sub(&self.affine_m)?
            .broadcast_mul(&self.affine_logs.neg()?.exp()?)?;
        z.narrow(1, 0, 1)
    }
}

/// The deterministic duration predictor of VITS voices trained without the SDP.
#[derive(Debug, Clone)]
pub struct PlainDurationPredictor {
    conv_1: Conv1d,
    norm_1: ChannelNorm,
    conv_2: Conv1d,
    norm_2: ChannelNorm,
    proj: Conv1d,
    cond: Option<Conv1d>,
}

impl PlainDurationPredictor {
    fn load(vb: VarBuilder, cfg: &VitsConfig) -> Result<Self> {
        let (h, f, k) = (
            cfg.hidden_channels,
            cfg.dp_filter_channels,
            cfg.dp_kernel_size,
        );
        let cond = if cfg.gin_channels > 0 {
            Some(conv1x1(&vb.pp("cond"))?)
        } else {
            None
        };
        Ok(Self {
            conv_1: conv1d(&vb.pp("conv_1"), h, f, k, 1, k / 2, true)?,
            norm_1: ChannelNorm::load(vb.pp("norm_1"), f)?,
            conv_2: conv1d(&vb.pp("conv_2"), f, f, k, 1, k / 2, true)?,
            norm_2: ChannelNorm::load(vb.pp("norm_2"), f)?,
            proj: conv1x1(&vb.pp("proj"))?,
            cond,
        })
    }

    fn forward(&self, x: &Tensor, g: Option<&Tensor>, mask: Option<&Tensor>) -> Result<Tensor> {
        let mut x = x.clone();
        if let (Some(cond), Some(g)) = (&self.cond, g) {
            x = x.broadcast_add(&cond.forward(g)?)?;
        }
        let x = apply_mask(&x, mask)?;
        let x = self.norm_1.forward(&self.conv_1.forward(&x)?.relu()?)?;
        let x = apply_mask(&x, mask)?;
        let x = self.norm_2.forward(&self.conv_2.forward(&x)?.relu()?)?;
        self.proj.forward(&x)
    }
}

#[derive(Debug, Clone)]
pub enum DurationPredictor {
    Stochastic(StochasticDurationPredictor),
    Plain(PlainDurationPredictor),
}

impl DurationPredictor {
    pub fn load(vb: VarBuilder, cfg: &VitsConfig) -> Result<Self> {
        Ok(match cfg.dp_kind {
            DurationPredictorKind::Stochastic => {
                Self::Stochastic(StochasticDurationPredictor::load(vb, cfg)?)
            }
            DurationPredictorKind::Plain => Self::Plain(PlainDurationPredictor::load(vb, cfg)?),
        })
    }

    /// Frames per phoneme, `ceil(exp(logw) · length_scale)`, from encoder states `[1, H, N]`.
    /// `noise` (`[1, 2, N]`, already scaled by `noise_w`) only feeds the stochastic predictor.
    pub fn durations(
        &self,
        x: &Tensor,
        g: Option<&Tensor>,
        noise: &Tensor,
        length_scale: f64,
    ) -> Result<Tensor> {
        Self::frames(&self.log_durations(x, g, noise, None)?, length_scale)
    }

    /// `logw` `[B, 1, N]` of a padded batch (`mask` `[B, 1, N]`; `None` for one utterance);
    /// values on padding are meaningless.
    pub fn log_durations(
        &self,
        x: &Tensor,
        g: Option<&Tensor>,
        noise: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        match self {
            Self::Stochastic(sdp) => sdp.forward(x, g, noise, mask),
            Self::Plain(dp) => dp.forward(x, g, mask),
        }
    }

    /// Frames per phoneme from log-durations: `ceil(exp(logw) · length_scale)`.
    pub fn frames(logw: &Tensor, length_scale: f64) -> Result<Tensor> {
        (logw.exp()? * length_scale)?.ceil()
    }

    /// Whether durations depend on the `noise_w` noise.
    pub fn is_stochastic(&self) -> bool {
        matches!(self, Self::Stochastic(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forward spline, to check the inverse against (same formulas as the reference's
    /// non-inverse branch).
    fn forward_spline(x: f32, widths: &[f32], heights: &[f32], inner: &[f32]) -> f32 {
        let cumw = knots(widths, MIN_BIN_WIDTH);
        let cumh = knots(heights, MIN_BIN_HEIGHT);
        let mut d = vec![1.0];
        d.extend(inner.iter().map(|&v| MIN_DERIVATIVE + softplus(v)));
        d.push(1.0);
        let bin = (0..cumw.len() - 1).rfind(|&i| x >= cumw[i]).unwrap_or(0);
        let w = cumw[bin + 1] - cumw[bin];
        let h = cumh[bin + 1] - cumh[bin];
        let delta = h / w;
        let theta = (x - cumw[bin]) / w;
        let tt = theta * (1.0 - theta);
        let num = h * (delta * theta * theta + d[bin] * tt);
        let den = delta + (d[bin] + d[bin + 1] - 2.0 * delta) * tt;
        cumh[bin] + num / den
    }

    #[test]
    fn inverse_spline_inverts_the_forward_spline() {
        let widths = [0.3, -1.0, 0.5, 2.0, 0.0, 0.1, -0.4, 1.1, 0.2, -0.3];
        let heights = [1.0, 0.2, -0.5, 0.0, 0.3, 0.9, -1.2, 0.4, 0.0, 0.7];
        let derivs = [0.1, -0.2, 0.3, 1.5, -1.0, 0.0, 0.4, 0.8, -0.6];
        for i in -48..=48 {
            let x = i as f32 * 0.1;
            let y = forward_spline(x, &widths, &heights, &derivs);
            let back = inverse_spline(y, &widths, &heights, &derivs);
            assert!((back - x).abs() < 1e-3, "x={x} y={y} back={back}");
        }
    }

    #[test]
    fn spline_is_identity_outside_the_tail_bound() {
        let z = [0.0; 10];
        let d = [0.0; 9];
        assert_eq!(inverse_spline(7.5, &z, &z, &d), 7.5);
        assert_eq!(inverse_spline(-6.0, &z, &z, &d), -6.0);
    }
}
