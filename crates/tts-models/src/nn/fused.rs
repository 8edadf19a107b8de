//! A CPU conv1d with its input normalisation, activation and residual add fused in:
//! `y = scale · (bias + residual + Σ_k W_k · act(adain(x))[:, k·dilation + stride·t])`.
//!
//! Used by Kokoro's generator/decoder (`Snake(AdaIN(x)) → conv` pairs) and by Piper's
//! HiFi-GAN, flow and encoder (leaky-ReLU → conv → residual). candle runs these as
//! single-threaded elementwise passes plus an im2col copy (`L·C_in·K` floats) and a
//! transposing copy around one GEMM. Here the normalised, activated input is written once into
//! a zero-padded buffer; then, over column chunks that fit in cache and run in parallel, each
//! chunk's im2col block feeds one GEMM (inner size `K·C_in`) accumulated straight into the
//! output. Other devices (and non-f32 tensors) take the equivalent candle ops
//! ([`FusedConv1d::forward_reference`]), which run on every backend.

use std::sync::Arc;

use candle_core::{bail, CpuStorage, DType, Layout, Result, Storage, Tensor};
use candle_nn::{Conv1d, Module};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::adain::{instance_norm, AdaIn1d};

const EPS: f32 = 1e-5;

/// The activation applied to the (normalised) input before the convolution.
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    Identity,
    LeakyRelu(f32),
    /// `x + sin²(αx)/α` with per-channel α.
    Snake {
        alpha: Vec<f32>,
    },
}

impl Activation {
    /// The same activation with candle ops (reference path for other devices).
    fn apply_tensor(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Identity => Ok(x.clone()),
            Self::LeakyRelu(s) => candle_nn::ops::leaky_relu(x, *s as f64),
            Self::Snake { alpha } => {
                let a = Tensor::from_slice(alpha, (1, alpha.len(), 1), x.device())?
                    .to_dtype(x.dtype())?;
                let s = x.broadcast_mul(&a)?.sin()?.sqr()?;
                x + s.broadcast_div(&a)?
            }
        }
    }
}

/// Style-dependent instance-norm affine: `(1 + γ)` and `β` per input channel.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaInParams {
    pub gamma1: Vec<f32>,
    pub beta: Vec<f32>,
}

/// Conv1d (groups 1) whose CPU forward fuses AdaIN, the activation and a residual add.
#[derive(Debug, Clone)]
pub struct FusedConv1d {
    /// Weights as `[C_out][K][C_in]`, matching the im2col row order `(k, c_in)`.
    taps: Arc<[f32]>,
    bias: Arc<[f32]>,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    padding: usize,
    /// Fallback for non-CPU devices and non-f32 tensors.
    conv: Conv1d,
}

/// Mean and biased variance, accumulated in f64 over eight lanes.
fn mean_var(x: &[f32]) -> (f64, f64) {
    let mut s = [0f64; 8];
    let mut q = [0f64; 8];
    let chunks = x.chunks_exact(8);
    let rem = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            let v = c[k] as f64;
            s[k] += v;
            q[k] += v * v;
        }
    }
    let (mut sum, mut sq): (f64, f64) = (s.iter().sum(), q.iter().sum());
    for &v in rem {
        sum += v as f64;
        sq += (v as f64) * (v as f64);
    }
    let n = x.len().max(1) as f64;
    let mean = sum / n;
    (mean, (sq / n - mean * mean).max(0.0))
}

/// `sin²(y)` without a libm call: sin² has period π, so reduce to |r| ≤ π/2 (rounding with
/// the 1.5·2²³ trick, which vectorises) and use the odd Taylor series to r¹¹ (|error| < 1e-7).
#[inline(always)]
fn sin_squared(y: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    const PI_HI: f32 = 3.140_625;
    const PI_LO: f32 = 9.676_536e-4;
    let k = (y * std::f32::consts::FRAC_1_PI + MAGIC) - MAGIC;
    let r = (y - k * PI_HI) - k * PI_LO;
    let r2 = r * r;
    let p = -2.505_210_8e-8;
    let p = p * r2 + 2.755_731_9e-6;
    let p = p * r2 - 1.984_127e-4;
    let p = p * r2 + 8.333_333e-3;
    let p = p * r2 - 1.666_666_7e-1;
    let s = r + r * r2 * p;
    s * s
}

struct SendPtr(*mut f32);
// SAFETY: each parallel chunk writes a disjoint set of output columns.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// The f32 values of a contiguous CPU tensor's storage, or `None` for other devices/dtypes.
fn cpu_f32<'a>(storage: &'a Storage, layout: &Layout) -> Option<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => Some(&v[a..b]),
        _ => None,
    }
}

/// The activation for Piper's `leaky_relu(x, slope)`, or none.
fn leaky(slope: Option<f32>) -> Activation {
    slope.map_or(Activation::Identity, Activation::LeakyRelu)
}

impl FusedConv1d {
    pub fn new(conv: Conv1d) -> Result<Self> {
        let w = conv.weight();
        let (c_out, c_in, kernel) = w.dims3()?;
        let cfg = *conv.config();
        if cfg.groups != 1 {
            bail!("FusedConv1d supports groups = 1 only");
        }
        // [C_out, C_in, K] -> [C_out, K, C_in]
        let taps = w
            .permute((0, 2, 1))?
            .contiguous()?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let bias = match conv.bias() {
            Some(b) => b.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            None => vec![0.0; c_out],
        };
        Ok(Self {
            taps: taps.into(),
            bias: bias.into(),
            c_in,
            c_out,
            kernel,
            stride: cfg.stride,
            dilation: cfg.dilation,
            padding: cfg.padding,
            conv,
        })
    }

    pub fn out_channels(&self) -> usize {
        self.c_out
    }

    fn out_len(&self, l_in: usize) -> Result<usize> {
        let span = self.dilation * (self.kernel - 1);
        match (l_in + 2 * self.padding).checked_sub(span + 1) {
            Some(l) => Ok(l / self.stride + 1),
            None => bail!("conv1d input of length {l_in} is shorter than the kernel span"),
        }
    }

    /// Plain convolution.
    pub fn forward_plain(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x, None, &Activation::Identity, None, 1.0)
    }

    /// `conv(leaky_relu(x, slope))`, with no activation when `slope` is `None`.
    pub fn forward_act(&self, x: &Tensor, slope: Option<f32>) -> Result<Tensor> {
        self.forward(x, None, &leaky(slope), None, 1.0)
    }

    /// `residual + conv(leaky_relu(x, slope))`.
    pub fn forward_residual(
        &self,
        x: &Tensor,
        slope: Option<f32>,
        residual: &Tensor,
    ) -> Result<Tensor> {
        self.forward(x, None, &leaky(slope), Some(residual), 1.0)
    }

    /// `scale · (conv(act(adain(x))) + residual)`; `x` is `[B, C_in, L]`.
    pub fn forward(
        &self,
        x: &Tensor,
        adain: Option<&AdaInParams>,
        act: &Activation,
        residual: Option<&Tensor>,
        scale: f32,
    ) -> Result<Tensor> {
        let (_, c, _) = x.dims3()?;
        if c != self.c_in {
            bail!(
                "FusedConv1d: input {:?}, expected [B, {}, L]",
                x.dims(),
                self.c_in
            );
        }
        if !super::cpu_fast_path(x) {
            return self.forward_reference(x, adain, act, residual, scale);
        }
        self.forward_cpu(x, adain, act, residual, scale)
    }

    /// The fused CPU kernel (falling back to candle ops for non-f32 or non-CPU tensors).
    fn forward_cpu(
        &self,
        x: &Tensor,
        adain: Option<&AdaInParams>,
        act: &Activation,
        residual: Option<&Tensor>,
        scale: f32,
    ) -> Result<Tensor> {
        let (b, c, l) = x.dims3()?;
        let l_out = self.out_len(l)?;
        if let Some(r) = residual {
            if r.dims3()? != (b, self.c_out, l_out) {
                bail!(
                    "residual shape {:?} does not match conv output {:?}",
                    r.dims(),
                    (b, self.c_out, l_out)
                );
            }
        }
        let x = x.contiguous()?;
        let residual = residual.map(Tensor::contiguous).transpose()?;
        let (x_store, x_layout) = x.storage_and_layout();
        let res_guard = residual.as_ref().map(|r| r.storage_and_layout());
        let Some(xs) = cpu_f32(&x_store, x_layout) else {
            return self.forward_reference(&x, adain, act, residual.as_ref(), scale);
        };
        let res = match &res_guard {
            Some((store, layout)) => match cpu_f32(store, layout) {
                Some(r) => Some(r),
                None => return self.forward_reference(&x, adain, act, residual.as_ref(), scale),
            },
            None => None,
        };
        let (c_out, lp) = (self.c_out, l + 2 * self.padding);
        let mut out = vec![0f32; b * c_out * l_out];
        for bi in 0..b {
            let xb = &xs[bi * c * l..(bi + 1) * c * l];
            let padded = self.prepare_input(xb, l, adain, act);
            let ob = &mut out[bi * c_out * l_out..(bi + 1) * c_out * l_out];
            // Output starts as bias (+ residual).
            ob.par_chunks_mut(l_out).enumerate().for_each(|(o, row)| {
                let bias = self.bias[o];
                match res {
                    Some(r) => {
                        let r = &r[(bi * c_out + o) * l_out..][..l_out];
                        for (d, &v) in row.iter_mut().zip(r) {
                            *d = v + bias;
                        }
                    }
                    None => row.fill(bias),
                }
            });
            self.accumulate_taps(&padded, lp, ob, l_out);
        }
        if scale != 1.0 {
            out.par_iter_mut().for_each(|v| *v *= scale);
        }
        Tensor::from_vec(out, (b, c_out, l_out), x.device())
    }

    /// The normalised, activated, zero-padded input `[C_in, L + 2p]` of one batch item.
    fn prepare_input(
        &self,
        xs: &[f32],
        l: usize,
        adain: Option<&AdaInParams>,
        act: &Activation,
    ) -> Vec<f32> {
        let pad = self.padding;
        let lp = l + 2 * pad;
        let mut padded = vec![0f32; self.c_in * lp];
        padded.par_chunks_mut(lp).enumerate().for_each(|(ch, row)| {
            let src = &xs[ch * l..(ch + 1) * l];
            let (mul, add) = match adain {
                Some(p) => {
                    let (mean, var) = mean_var(src);
                    let mul = p.gamma1[ch] as f64 / (var + EPS as f64).sqrt();
                    (mul as f32, (p.beta[ch] as f64 - mean * mul) as f32)
                }
                None => (1.0, 0.0),
            };
            let dst = &mut row[pad..pad + l];
            // One loop per activation so each vectorises.
            match act {
                Activation::Identity => {
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d = v * mul + add;
                    }
                }
                Activation::LeakyRelu(slope) => {
                    for (d, &v) in dst.iter_mut().zip(src) {
                        let y = v * mul + add;
                        *d = if y >= 0.0 { y } else { y * slope };
                    }
                }
                Activation::Snake { alpha } => {
                    let a = alpha[ch];
                    let inv = 1.0 / a;
                    for (d, &v) in dst.iter_mut().zip(src) {
                        let y = v * mul + add;
                        *d = y + sin_squared(a * y) * inv;
                    }
                }
            }
        });
        padded
    }

    /// `out[:, cols] += W · im2col(xp)[:, cols]`, over column chunks in parallel. Each chunk's
    /// im2col block (`K·C_in` rows) is small enough to stay in cache, and one GEMM with inner
    /// size `K·C_in` writes each output element once.
    fn accumulate_taps(&self, xp: &[f32], lp: usize, out: &mut [f32], l_out: usize) {
        let (c_in, c_out, kernel, stride) = (self.c_in, self.c_out, self.kernel, self.stride);
        let rows = kernel * c_in;
        let chunk = (32_768 / (rows + c_out)).clamp(64, 4096);
        let n_chunks = l_out.div_ceil(chunk);
        let out_ptr = SendPtr(out.as_mut_ptr());
        let weights = &*self.taps;
        (0..n_chunks).into_par_iter().for_each_init(
            || vec![0f32; rows * chunk],
            |col, ci| {
                let start = ci * chunk;
                let n = chunk.min(l_out - start);
                for k in 0..kernel {
                    let offset = start * stride + k * self.dilation;
                    for c in 0..c_in {
                        let dst = &mut col[(k * c_in + c) * n..(k * c_in + c + 1) * n];
                        let src = &xp[c * lp + offset..];
                        if stride == 1 {
                            dst.copy_from_slice(&src[..n]);
                        } else {
                            for (d, &v) in dst.iter_mut().zip(src.iter().step_by(stride)) {
                                *d = v;
                            }
                        }
                    }
                }
                let out_ptr = &out_ptr;
                // SAFETY: chunks write disjoint columns of `out` (row stride l_out); `col` holds
                // `rows × n` values with row stride n; weights are `[C_out][K·C_in]`.
                unsafe {
                    gemm(
                        c_out,
                        n,
                        rows,
                        out_ptr.0.add(start),
                        1,
                        l_out as isize,
                        true,
                        weights.as_ptr(),
                        1,
                        rows as isize,
                        col.as_ptr(),
                        1,
                        n as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
            },
        );
    }

    /// `scale · (conv(act(norm(x, s))) + residual)` with the style-dependent AdaIN `norm`. The
    /// CPU fast path needs γ, β on the host; other devices keep them on the device, so this
    /// never copies device data back mid-graph.
    pub fn forward_adain(
        &self,
        x: &Tensor,
        norm: &AdaIn1d,
        s: &Tensor,
        act: &Activation,
        residual: Option<&Tensor>,
        scale: f32,
    ) -> Result<Tensor> {
        if super::cpu_fast_path(x) {
            return self.forward(x, Some(&norm.params(s)?), act, residual, scale);
        }
        self.forward_reference(&norm.forward(x, s)?, None, act, residual, scale)
    }

    /// The same computation with candle ops.
    pub fn forward_reference(
        &self,
        x: &Tensor,
        adain: Option<&AdaInParams>,
        act: &Activation,
        residual: Option<&Tensor>,
        scale: f32,
    ) -> Result<Tensor> {
        let mut h = x.clone();
        if let Some(p) = adain {
            let c = p.gamma1.len();
            let g = Tensor::from_slice(&p.gamma1, (1, c, 1), x.device())?.to_dtype(x.dtype())?;
            let b = Tensor::from_slice(&p.beta, (1, c, 1), x.device())?.to_dtype(x.dtype())?;
            h = instance_norm(&h, EPS as f64)?
                .broadcast_mul(&g)?
                .broadcast_add(&b)?;
        }
        let h = act.apply_tensor(&h)?;
        let mut y = if super::differentiable_ops() {
            conv1d_input_grad(&h, &self.conv)?
        } else {
            self.conv.forward(&h)?
        };
        if let Some(r) = residual {
            y = (y + r)?;
        }
        if scale != 1.0 {
            y = (y * scale as f64)?;
        }
        Ok(y)
    }
}

/// `conv(x)` for back-propagation to `x` only (the weights are constants): candle's own conv1d
/// backward also computes the weight gradient, and takes its slow padded transposed
/// convolution for the input's. On the CPU (f32, stride 1) both directions run on the fused
/// kernel here: the input gradient of a stride-1 convolution is another one, with the weights
/// transposed and flipped and padding `dilation·(k − 1) − padding`. Elsewhere, candle's ops.
pub fn conv1d_input_grad(x: &Tensor, conv: &Conv1d) -> Result<Tensor> {
    let cfg = conv.config();
    if !(x.device().is_cpu() && x.dtype() == DType::F32 && cfg.stride == 1 && cfg.groups == 1) {
        return conv.forward(x);
    }
    let w = conv.weight();
    let (_, _, kernel) = w.dims3()?;
    let span = cfg.dilation * (kernel - 1);
    if cfg.padding > span {
        return conv.forward(x);
    }
    let adjoint = super::conv::reverse(&w.transpose(0, 1)?, 2)?;
    let adjoint = Conv1d::new(
        adjoint,
        None,
        candle_nn::Conv1dConfig {
            padding: span - cfg.padding,
            dilation: cfg.dilation,
            ..Default::default()
        },
    );
    let op = InputGradConv {
        forward: FusedConv1d::new(conv.clone())?,
        adjoint: FusedConv1d::new(adjoint)?,
    };
    x.contiguous()?.apply_op1(op)
}

struct InputGradConv {
    forward: FusedConv1d,
    adjoint: FusedConv1d,
}

impl candle_core::CustomOp1 for InputGradConv {
    fn name(&self) -> &'static str {
        "conv1d-input-grad"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> Result<(CpuStorage, candle_core::Shape)> {
        let (CpuStorage::F32(values), Some((start, end))) = (storage, layout.contiguous_offsets())
        else {
            bail!("conv1d-input-grad takes a contiguous f32 tensor");
        };
        let x = Tensor::from_slice(
            &values[start..end],
            layout.shape(),
            &candle_core::Device::Cpu,
        )?;
        let y = self
            .forward
            .forward_cpu(&x, None, &Activation::Identity, None, 1.0)?;
        let shape = y.shape().clone();
        Ok((CpuStorage::F32(y.flatten_all()?.to_vec1()?), shape))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // The adjoint has no bias: the bias does not depend on the input.
        let grad = self.adjoint.forward_cpu(
            &grad_res.contiguous()?,
            None,
            &Activation::Identity,
            None,
            1.0,
        )?;
        Ok(Some(grad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::Conv1dConfig;

    fn seq(n: usize, f: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * f).sin() * 1.3 + (i as f32 * 0.37).cos() * 0.4)
            .collect()
    }

    #[test]
    fn input_grad_conv_matches_candle_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        for (k, dilation, padding) in [(3, 1, 1), (7, 3, 9), (2, 1, 1)] {
            let (c_in, c_out, l) = (5, 4, 23);
            let w = Tensor::new(seq(c_out * c_in * k, 0.37).as_slice(), &dev)?
                .reshape((c_out, c_in, k))?;
            let b = Tensor::new(seq(c_out, 0.9).as_slice(), &dev)?;
            let conv = Conv1d::new(
                w,
                Some(b),
                Conv1dConfig {
                    padding,
                    dilation,
                    ..Default::default()
                },
            );
            let x = candle_core::Var::from_tensor(
                &Tensor::new(seq(c_in * l, 0.21).as_slice(), &dev)?.reshape((1, c_in, l))?,
            )?;
            // A weighting so the gradient differs per output position.
            let weights = Tensor::new(
                seq(c_out * (l + 2 * padding - dilation * (k - 1)), 1.3).as_slice(),
                &dev,
            )?;
            let loss = |y: Tensor| -> Result<Tensor> { (y.flatten_all()? * &weights)?.sum_all() };
            let ours = conv1d_input_grad(x.as_tensor(), &conv)?;
            let theirs = conv.forward(x.as_tensor())?;
            let diff = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "forward k {k} d {dilation}: {diff}");
            let g_ours = loss(ours)?.backward()?.get(x.as_tensor()).cloned().unwrap();
            let g_theirs = loss(theirs)?
                .backward()?
                .get(x.as_tensor())
                .cloned()
                .unwrap();
            let diff = (g_ours - g_theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-4, "gradient k {k} d {dilation}: {diff}");
        }
        Ok(())
    }

    #[test]
    fn fast_sin_squared_matches_libm() {
        for i in -20_000..20_000 {
            let y = i as f32 * 0.0037;
            let want = y.sin() * y.sin();
            assert!(
                (sin_squared(y) - want).abs() < 2e-6,
                "y={y}: {} vs {want}",
                sin_squared(y)
            );
        }
    }

    #[test]
    fn fused_conv_matches_candle_ops() -> Result<()> {
        let dev = Device::Cpu;
        for (c_in, c_out, k, stride, dil, pad, l) in [
            (5, 7, 3, 1, 1, 1, 300),
            (6, 4, 11, 1, 5, 25, 517),
            (22, 8, 12, 6, 1, 3, 601),
            (3, 2, 1, 1, 1, 0, 9),
        ] {
            let w = Tensor::from_vec(seq(c_out * c_in * k, 0.11), (c_out, c_in, k), &dev)?;
            let b = Tensor::from_vec(seq(c_out, 0.7), c_out, &dev)?;
            let cfg = Conv1dConfig {
                padding: pad,
                stride,
                dilation: dil,
                ..Default::default()
            };
            let conv = FusedConv1d::new(Conv1d::new(w, Some(b), cfg))?;
            let x = Tensor::from_vec(seq(c_in * l, 0.013), (1, c_in, l), &dev)?;
            let adain = AdaInParams {
                gamma1: seq(c_in, 0.5).iter().map(|v| 1.0 + v * 0.3).collect(),
                beta: seq(c_in, 0.9),
            };
            let acts = [
                Activation::Identity,
                Activation::LeakyRelu(0.2),
                Activation::Snake {
                    alpha: seq(c_in, 0.3).iter().map(|v| 0.5 + v.abs()).collect(),
                },
            ];
            for act in &acts {
                for use_adain in [false, true] {
                    let a = use_adain.then_some(&adain);
                    let want = conv.forward_reference(&x, a, act, None, 1.0)?;
                    let res = want.ones_like()?;
                    let got = conv.forward(&x, a, act, Some(&res), 0.5)?;
                    let want = ((want + res)? * 0.5)?;
                    assert_eq!(got.dims(), want.dims());
                    let diff = (got - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                    let mag = want.abs()?.max_all()?.to_scalar::<f32>()?;
                    assert!(
                        diff <= 1e-4 * mag.max(1.0),
                        "k={k} s={stride} d={dil} {act:?} adain={use_adain}: {diff}"
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn leaky_relu_conv_with_residual_matches_candle_on_a_batch() -> Result<()> {
        let dev = Device::Cpu;
        for &(ci, co, k, d, l) in &[(3, 5, 3, 1, 40), (8, 4, 7, 3, 3000), (6, 6, 5, 12, 100)] {
            let p = d * (k - 1) / 2;
            let w = Tensor::randn(0f32, 1., (co, ci, k), &dev)?;
            let b = Tensor::randn(0f32, 1., co, &dev)?;
            let x = Tensor::randn(0f32, 1., (2, ci, l), &dev)?;
            let cfg = Conv1dConfig {
                padding: p,
                dilation: d,
                ..Default::default()
            };
            let conv = FusedConv1d::new(Conv1d::new(w.clone(), Some(b.clone()), cfg))?;
            let expected = candle_nn::ops::leaky_relu(&x, 0.1)?
                .conv1d(&w, p, 1, d, 1)?
                .broadcast_add(&b.reshape((1, (), 1))?)?;
            let ours = conv.forward_act(&x, Some(0.1))?;
            let err = (&ours - &expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(err < 1e-4, "({ci},{co},{k},{d}) max error {err}");
            if ci == co {
                let with_res = conv.forward_residual(&x, Some(0.1), &x)?;
                let err = (with_res - (expected + &x)?)?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f32>()?;
                assert!(err < 1e-4, "residual max error {err}");
            }
        }
        Ok(())
    }
}
