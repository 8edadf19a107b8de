//! A CPU conv1d with its input normalisation and activation fused in:
//! `y = scale · (bias + residual + Σ_k W_k · act(adain(x))[:, k·dilation + stride·t])`.
//!
//! Kokoro's generator spends most of its time in `Snake(AdaIN(x)) → conv` pairs over long
//! sequences. candle runs that as ~15 single-threaded elementwise passes plus an im2col copy
//! (`L·C_in·K` floats) and a transposing copy around one GEMM. Here the normalised, activated
//! input is written once into a zero-padded buffer, then every kernel tap is a GEMM
//! accumulated straight into the output, over column blocks that run in parallel. Other
//! devices (and non-f32 tensors) take the equivalent candle ops.

use candle_core::{DType, Device, Result, Storage, Tensor};
use candle_nn::{Conv1d, Module};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::adain::instance_norm;

/// Output columns per parallel block: the rhs block (C_in × cols) stays in L2.
const COL_BLOCK: usize = 256;
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
    /// `[K][C_out][C_in]`.
    taps: Vec<f32>,
    bias: Vec<f32>,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    padding: usize,
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
// SAFETY: each parallel block writes a disjoint set of output columns.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

fn cpu_slice(t: &Tensor) -> Result<Option<Vec<f32>>> {
    if !matches!(t.device(), Device::Cpu) || t.dtype() != DType::F32 {
        return Ok(None);
    }
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Ok(None);
    };
    let s = cpu.as_slice::<f32>()?;
    let start = layout.start_offset();
    Ok(Some(s[start..start + layout.shape().elem_count()].to_vec()))
}

impl FusedConv1d {
    pub fn new(conv: Conv1d) -> Result<Self> {
        let w = conv.weight();
        let (c_out, c_in, kernel) = w.dims3()?;
        let cfg = *conv.config();
        if cfg.groups != 1 {
            candle_core::bail!("FusedConv1d supports groups = 1 only");
        }
        let taps = w
            .permute((2, 0, 1))?
            .contiguous()?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let bias = match conv.bias() {
            Some(b) => b.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            None => vec![0.0; c_out],
        };
        Ok(Self {
            taps,
            bias,
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

    fn out_len(&self, l: usize) -> usize {
        (l + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) / self.stride + 1
    }

    /// Plain convolution.
    pub fn forward_plain(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x, None, &Activation::Identity, None, 1.0)
    }

    /// `scale · (conv(act(adain(x))) + residual)`; `x` is `[1, C_in, L]`.
    pub fn forward(
        &self,
        x: &Tensor,
        adain: Option<&AdaInParams>,
        act: &Activation,
        residual: Option<&Tensor>,
        scale: f32,
    ) -> Result<Tensor> {
        let (b, c, l) = x.dims3()?;
        if b != 1 || c != self.c_in {
            candle_core::bail!(
                "FusedConv1d: input {:?}, expected [1, {}, L]",
                x.dims(),
                self.c_in
            );
        }
        let Some(xs) = cpu_slice(x)? else {
            return self.forward_reference(x, adain, act, residual, scale);
        };
        let res = match residual {
            Some(r) => match cpu_slice(r)? {
                Some(v) => Some(v),
                None => return self.forward_reference(x, adain, act, residual, scale),
            },
            None => None,
        };
        let l_out = self.out_len(l);
        let lp = l + 2 * self.padding;
        let pad = self.padding;
        // Normalised, activated, zero-padded input [C_in, L + 2p].
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
        // Output initialised with bias (+ residual).
        let mut out = vec![0f32; self.c_out * l_out];
        out.par_chunks_mut(l_out)
            .enumerate()
            .for_each(|(o, row)| match &res {
                Some(r) => {
                    for (d, &v) in row.iter_mut().zip(&r[o * l_out..(o + 1) * l_out]) {
                        *d = v + self.bias[o];
                    }
                }
                None => row.fill(self.bias[o]),
            });
        let dst = SendPtr(out.as_mut_ptr());
        let blocks = l_out.div_ceil(COL_BLOCK);
        let (c_in, c_out, k_size) = (self.c_in, self.c_out, self.kernel);
        (0..blocks).into_par_iter().for_each(|blk| {
            let dst = &dst;
            let col0 = blk * COL_BLOCK;
            let n = COL_BLOCK.min(l_out - col0);
            for k in 0..k_size {
                let lhs = &self.taps[k * c_out * c_in..(k + 1) * c_out * c_in];
                let rhs_off = col0 * self.stride + k * self.dilation;
                // SAFETY: dst columns [col0, col0 + n) of every row belong to this block only;
                // rhs reads stay inside `padded` (out_len guarantees the last tap fits).
                unsafe {
                    gemm(
                        c_out,
                        n,
                        c_in,
                        dst.0.add(col0),
                        1,
                        l_out as isize,
                        true,
                        lhs.as_ptr(),
                        1,
                        c_in as isize,
                        padded.as_ptr().add(rhs_off),
                        self.stride as isize,
                        lp as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
            }
        });
        if scale != 1.0 {
            out.par_iter_mut().for_each(|v| *v *= scale);
        }
        Tensor::from_vec(out, (1, self.c_out, l_out), x.device())
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
        let mut y = self.conv.forward(&h)?;
        if let Some(r) = residual {
            y = (y + r)?;
        }
        if scale != 1.0 {
            y = (y * scale as f64)?;
        }
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::Conv1dConfig;

    fn seq(n: usize, f: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * f).sin() * 1.3 + (i as f32 * 0.37).cos() * 0.4)
            .collect()
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
}
