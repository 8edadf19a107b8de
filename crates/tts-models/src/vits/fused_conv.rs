//! A CPU conv1d for the HiFi-GAN and flow hot paths:
//! `out = residual + bias + Σ_k W_k · act(x)[:, k·dilation ..]`.
//!
//! candle's CPU conv1d builds an im2col buffer (`L·C_in·K` floats), runs one GEMM and then
//! transposes the result, all but the GEMM single-threaded. Here each kernel tap is a GEMM
//! accumulated straight into the output, over column chunks that fit in cache and run in
//! parallel, with the preceding leaky-ReLU and the residual add fused in. Other devices use
//! candle's own ops.

use std::sync::Arc;

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Conv1d, Conv1dConfig};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// Conv1d with an optional fused leaky-ReLU on its input and residual add on its output.
#[derive(Debug, Clone)]
pub struct FusedConv1d {
    /// Weights as `[C_out][K][C_in]`, matching the im2col row order `(k, c_in)`.
    taps: Arc<Vec<f32>>,
    bias: Option<Arc<Vec<f32>>>,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    dilation: usize,
    padding: usize,
    /// Fallback for non-CPU devices.
    reference: Conv1d,
}

/// The op with the input activation chosen for one call.
struct Op<'a> {
    conv: &'a FusedConv1d,
    slope: Option<f32>,
}

impl FusedConv1d {
    pub fn new(conv: Conv1d) -> Result<Self> {
        let w = conv.weight();
        let (c_out, c_in, kernel) = w.dims3()?;
        let cfg: &Conv1dConfig = conv.config();
        if cfg.groups != 1 || cfg.stride != 1 {
            bail!("FusedConv1d supports groups = 1 and stride = 1 only");
        }
        // [C_out, C_in, K] -> [C_out, K, C_in]
        let taps = w
            .permute((0, 2, 1))?
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let bias = match conv.bias() {
            Some(b) => Some(Arc::new(b.to_vec1::<f32>()?)),
            None => None,
        };
        Ok(Self {
            taps: Arc::new(taps),
            bias,
            c_in,
            c_out,
            kernel,
            dilation: cfg.dilation,
            padding: cfg.padding,
            reference: conv,
        })
    }

    /// `conv(leaky_relu(x, slope))`, with no activation when `slope` is `None`.
    pub fn forward_act(&self, x: &Tensor, slope: Option<f32>) -> Result<Tensor> {
        if !x.device().is_cpu() {
            return self.reference.forward(&activate(x, slope)?);
        }
        x.contiguous()?.apply_op1_no_bwd(&Op { conv: self, slope })
    }

    /// `residual + conv(leaky_relu(x, slope))`.
    pub fn forward_residual(
        &self,
        x: &Tensor,
        slope: Option<f32>,
        residual: &Tensor,
    ) -> Result<Tensor> {
        if !x.device().is_cpu() {
            return residual + self.reference.forward(&activate(x, slope)?)?;
        }
        x.contiguous()?
            .apply_op2_no_bwd(&residual.contiguous()?, &Op { conv: self, slope })
    }

    fn out_len(&self, l_in: usize) -> Result<usize> {
        let span = self.dilation * (self.kernel - 1);
        match (l_in + 2 * self.padding).checked_sub(span) {
            Some(l) if l > 0 => Ok(l),
            _ => bail!("conv1d input of length {l_in} is shorter than the kernel span"),
        }
    }

    fn run(
        &self,
        x: &[f32],
        shape: &Shape,
        slope: Option<f32>,
        residual: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c_in, l_in) = shape.dims3()?;
        if c_in != self.c_in {
            bail!("conv1d expects {} input channels, got {c_in}", self.c_in);
        }
        let l_out = self.out_len(l_in)?;
        let (c_out, p) = (self.c_out, self.padding);
        let lp = l_in + 2 * p;
        let mut out = vec![0f32; b * c_out * l_out];
        for bi in 0..b {
            let xb = &x[bi * c_in * l_in..(bi + 1) * c_in * l_in];
            // Zero-padded, activated input.
            let mut xp = vec![0f32; c_in * lp];
            xp.par_chunks_mut(lp)
                .zip(xb.par_chunks(l_in))
                .for_each(|(dst, src)| {
                    let dst = &mut dst[p..p + l_in];
                    match slope {
                        Some(s) => {
                            for (d, &v) in dst.iter_mut().zip(src) {
                                *d = if v >= 0.0 { v } else { v * s };
                            }
                        }
                        None => dst.copy_from_slice(src),
                    }
                });
            let ob = &mut out[bi * c_out * l_out..(bi + 1) * c_out * l_out];
            // Output starts as residual + bias.
            ob.par_chunks_mut(l_out).enumerate().for_each(|(co, row)| {
                let bias = self.bias.as_ref().map_or(0.0, |b| b[co]);
                match residual {
                    Some(r) => {
                        let r = &r[bi * c_out * l_out + co * l_out..][..l_out];
                        for (o, &rv) in row.iter_mut().zip(r) {
                            *o = rv + bias;
                        }
                    }
                    None => row.fill(bias),
                }
            });
            self.accumulate_taps(&xp, lp, ob, l_out);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, c_out, l_out))))
    }

    /// `out[:, cols] += W · im2col(xp)[:, cols]`, over column chunks in parallel. Each chunk's
    /// im2col block (`K·C_in` rows) is small enough to stay in cache, and one GEMM with inner
    /// size `K·C_in` writes each output element once.
    fn accumulate_taps(&self, xp: &[f32], lp: usize, out: &mut [f32], l_out: usize) {
        let (c_in, c_out, kernel) = (self.c_in, self.c_out, self.kernel);
        let rows = kernel * c_in;
        let chunk = (32_768 / (rows + c_out)).clamp(64, 4096);
        let n_chunks = l_out.div_ceil(chunk);
        let out_ptr = SendPtr(out.as_mut_ptr());
        let weights = self.taps.as_slice();
        (0..n_chunks).into_par_iter().for_each_init(
            || vec![0f32; rows * chunk],
            |col, ci| {
                let start = ci * chunk;
                let n = chunk.min(l_out - start);
                for k in 0..kernel {
                    let offset = start + k * self.dilation;
                    for c in 0..c_in {
                        let src = &xp[c * lp + offset..c * lp + offset + n];
                        col[(k * c_in + c) * n..(k * c_in + c + 1) * n].copy_from_slice(src);
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
}

struct SendPtr(*mut f32);
// SAFETY: used only to write disjoint column ranges from parallel tasks.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

fn activate(x: &Tensor, slope: Option<f32>) -> Result<Tensor> {
    match slope {
        Some(s) => candle_nn::ops::leaky_relu(x, s as f64),
        None => Ok(x.clone()),
    }
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        (CpuStorage::F32(_), None) => bail!("fused conv1d needs a contiguous input"),
        _ => bail!("fused conv1d supports f32 only"),
    }
}

impl CustomOp1 for Op<'_> {
    fn name(&self) -> &'static str {
        "fused-conv1d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.conv.run(f32_slice(s, l)?, l.shape(), self.slope, None)
    }
}

impl CustomOp2 for Op<'_> {
    fn name(&self) -> &'static str {
        "fused-conv1d-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, _, l_in) = l1.shape().dims3()?;
        let expected = (b, self.conv.c_out, self.conv.out_len(l_in)?);
        if l2.shape().dims3()? != expected {
            bail!(
                "residual shape {:?} does not match conv output {expected:?}",
                l2.shape()
            );
        }
        self.conv.run(
            f32_slice(s1, l1)?,
            l1.shape(),
            self.slope,
            Some(f32_slice(s2, l2)?),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn reference(
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        d: usize,
        p: usize,
        slope: f32,
    ) -> Result<Tensor> {
        let a = candle_nn::ops::leaky_relu(x, slope as f64)?;
        a.conv1d(w, p, 1, d, 1)?
            .broadcast_add(&b.reshape((1, (), 1))?)
    }

    #[test]
    fn fused_conv_matches_candle_conv1d_with_activation_and_residual() -> Result<()> {
        let dev = Device::Cpu;
        for &(ci, co, k, d, l) in &[(3, 5, 3, 1, 40), (8, 4, 7, 3, 3000), (6, 6, 5, 12, 100)] {
            let p = d * (k - 1) / 2;
            let w = Tensor::randn(0f32, 1., (co, ci, k), &dev)?;
            let b = Tensor::randn(0f32, 1., co, &dev)?;
            let x = Tensor::randn(0f32, 1., (1, ci, l), &dev)?;
            let conv = FusedConv1d::new(Conv1d::new(
                w.clone(),
                Some(b.clone()),
                Conv1dConfig {
                    padding: p,
                    dilation: d,
                    ..Default::default()
                },
            ))?;
            let expected = reference(&x, &w, &b, d, p, 0.1)?;
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
