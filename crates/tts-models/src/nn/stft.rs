//! Signal ops that candle lacks on CUDA/Metal, written with ops every backend has
//! (`index_select`, `conv1d`, comparisons, `where_cond`, elementwise maths), so a model graph
//! stays on its device:
//!
//! * [`reflect_pad1d`]: `ReflectionPad1d` / `F.pad(mode="reflect")` along the last dimension.
//! * [`atan2`]: elementwise `atan2(y, x)` (candle has no arctangent).
//! * [`Stft`]: `torch.stft(center=True, pad_mode="reflect")` magnitude and phase, as one
//!   strided conv1d with a window×DFT basis.
//! * [`upsample_nearest`] and [`upsample_linear`]: `F.interpolate` along time, nearest and
//!   linear (`align_corners=False`); candle's `upsample_nearest1d` is CPU-only.
//!
//! Index and weight tables depend only on shapes, so they are built on the host and uploaded;
//! nothing here reads device data back.

use candle_core::{DType, Result, Tensor, D};

/// Reflect-pads the last dimension by `left` and `right` (each < the length), like PyTorch.
pub fn reflect_pad1d(x: &Tensor, left: usize, right: usize) -> Result<Tensor> {
    let len = x.dim(D::Minus1)?;
    if left >= len || right >= len {
        candle_core::bail!("reflect padding ({left}, {right}) needs more than {len} samples");
    }
    let index: Vec<u32> = (0..left)
        .map(|i| (left - i) as u32)
        .chain((0..len).map(|i| i as u32))
        .chain((0..right).map(|i| (len - 2 - i) as u32))
        .collect();
    let index = Tensor::from_vec(index, left + len + right, x.device())?;
    x.contiguous()?.index_select(&index, x.rank() - 1)
}

/// Elementwise `atan2(y, x)` in radians, in (−π, π]; `atan2(±0, x<0)` is π (the sign of zero
/// is not seen) and `atan2(0, 0)` is 0. Absolute error below 2e-7 rad in f32.
pub fn atan2(y: &Tensor, x: &Tensor) -> Result<Tensor> {
    use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};
    let (ay, ax) = (y.abs()?, x.abs()?);
    let hi = ay.maximum(&ax)?;
    let lo = ay.minimum(&ax)?;
    // a = lo / hi in [0, 1]; hi = 0 only when both are 0, where any finite a gives 0 below.
    // A tiny floor (a normal f32; f64::MIN_POSITIVE would round to 0) keeps 0/0 out.
    let safe_hi = hi.maximum(1e-30)?;
    let a = (lo / safe_hi)?;
    // atan on [0, 1]: above tan(π/8) use atan(a) = π/4 + atan((a − 1)/(a + 1)), so the
    // polynomial only sees |t| ≤ tan(π/8) (Cephes' single-precision reduction).
    let big = a.gt(std::f64::consts::SQRT_2 - 1.0)?;
    let reduced = ((&a - 1.0)? / (&a + 1.0)?)?;
    let t = big.where_cond(&reduced, &a)?;
    let z = t.sqr()?;
    let poly =
        ((((&z * 8.053_744_495_38e-2)? - 1.387_768_560_32e-1)? * &z)? + 1.997_771_064_78e-1)?;
    let poly = (((poly * &z)? - 3.333_294_915_39e-1)? * &z)?;
    let atan_t = ((poly * &t)? + &t)?;
    let base = big.where_cond(&(&atan_t + FRAC_PI_4)?, &atan_t)?;
    // Undo the octant folding: |y| > |x| → π/2 − r; x < 0 → π − r; y < 0 → −r.
    let r = ay.gt(&ax)?.where_cond(&(base.neg()? + FRAC_PI_2)?, &base)?;
    let r = x.lt(0.0)?.where_cond(&(r.neg()? + PI)?, &r)?;
    y.lt(0.0)?.where_cond(&r.neg()?, &r)
}

/// Short-time Fourier transform with a fixed window, as `torch.stft(x, n_fft, hop,
/// window, center=True, pad_mode="reflect", return_complex=True)` followed by `abs`/`angle`.
#[derive(Debug, Clone)]
pub struct Stft {
    /// `[2·bins, 1, n_fft]`: `window·cos` rows, then `−window·sin` rows.
    basis: Tensor,
    n_fft: usize,
    hop: usize,
}

impl Stft {
    /// `window` has `n_fft` values; the basis is built in f64 and stored in `dtype`.
    pub fn new(window: &[f32], hop: usize, device: &candle_core::Device) -> Result<Self> {
        let n_fft = window.len();
        let bins = n_fft / 2 + 1;
        let mut basis = vec![0f32; 2 * bins * n_fft];
        for k in 0..bins {
            for (t, &w) in window.iter().enumerate() {
                let ang = 2.0 * std::f64::consts::PI * (k * t) as f64 / n_fft as f64;
                basis[k * n_fft + t] = (w as f64 * ang.cos()) as f32;
                // DC and Nyquist have no imaginary part; exact zeros keep their phase at 0 or π.
                if k != 0 && 2 * k != n_fft {
                    basis[(bins + k) * n_fft + t] = (-(w as f64) * ang.sin()) as f32;
                }
            }
        }
        Ok(Self {
            basis: Tensor::from_vec(basis, (2 * bins, 1, n_fft), device)?,
            n_fft,
            hop,
        })
    }

    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Real and imaginary parts `[B, bins, frames]` of `x` `[B, 1, L]`.
    pub fn complex(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let half = self.n_fft / 2;
        let padded = reflect_pad1d(x, half, half)?;
        let basis = self.basis.to_dtype(x.dtype())?;
        let z = padded.conv1d(&basis, 0, self.hop, 1, 1)?;
        let bins = self.bins();
        Ok((z.narrow(1, 0, bins)?, z.narrow(1, bins, bins)?))
    }

    /// Magnitude and phase stacked as `[B, 2·bins, frames]` (the layout Kokoro's generator
    /// feeds to its noise convolutions). Computed in f32 whatever the input dtype.
    pub fn magnitude_phase(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let (re, im) = self.complex(&x.to_dtype(DType::F32)?)?;
        let mag = (re.sqr()? + im.sqr()?)?.sqrt()?;
        let phase = atan2(&im, &re)?;
        Tensor::cat(&[mag, phase], 1)?.to_dtype(dtype)
    }
}

/// Nearest-neighbour upsampling of the last dimension by an integer factor.
pub fn upsample_nearest(x: &Tensor, factor: usize) -> Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let len = dims.pop().unwrap_or(1);
    let mut wide = dims.clone();
    wide.extend([len, factor]);
    dims.push(len * factor);
    x.unsqueeze(x.rank())?.broadcast_as(wide)?.reshape(dims)
}

/// `F.interpolate(x, scale_factor=factor, mode="linear", align_corners=False)` along the last
/// dimension: output `i` samples `(i + ½)/factor − ½`, clamped to the input's ends.
pub fn upsample_linear(x: &Tensor, factor: usize) -> Result<Tensor> {
    let len = x.dim(D::Minus1)?;
    let out = len * factor;
    let mut i0 = Vec::with_capacity(out);
    let mut i1 = Vec::with_capacity(out);
    let mut lam = Vec::with_capacity(out);
    for i in 0..out {
        let src = ((i as f32 + 0.5) / factor as f32 - 0.5).max(0.0);
        let j0 = (src.floor() as usize).min(len - 1);
        i0.push(j0 as u32);
        i1.push((j0 + 1).min(len - 1) as u32);
        lam.push(src - j0 as f32);
    }
    let dev = x.device();
    let dim = x.rank() - 1;
    let x = x.contiguous()?;
    let a = x.index_select(&Tensor::from_vec(i0, out, dev)?, dim)?;
    let b = x.index_select(&Tensor::from_vec(i1, out, dev)?, dim)?;
    let lam = Tensor::from_vec(lam, out, dev)?.to_dtype(x.dtype())?;
    // a·(1 − λ) + b·λ, the same expression (and rounding) as the host code it replaces.
    a.broadcast_mul(&lam.affine(-1.0, 1.0)?)?
        .broadcast_add(&b.broadcast_mul(&lam)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn reflect_pad_matches_pytorch_reflection() -> Result<()> {
        let x = Tensor::new(&[[[1f32, 2., 3., 4., 5.]]], &Device::Cpu)?;
        assert_eq!(
            values(&reflect_pad1d(&x, 3, 2)?),
            [4., 3., 2., 1., 2., 3., 4., 5., 4., 3.]
        );
        assert!(reflect_pad1d(&x, 5, 0).is_err());
        Ok(())
    }

    #[test]
    fn atan2_matches_libm_in_every_quadrant() -> Result<()> {
        let mut ys = Vec::new();
        let mut xs = Vec::new();
        for i in -60..=60 {
            for j in -60..=60 {
                ys.push(i as f32 * 0.37 * (1.0 + (j as f32 * 0.1).sin().abs()));
                xs.push(j as f32 * 0.41);
            }
        }
        // Axes, signed zeros and tiny values.
        for (y, x) in [
            (0., -1.),
            (-0., -1.),
            (0., 0.),
            (1e-30, 1.),
            (-1e-9, -2.),
            (3., 0.),
        ] {
            ys.push(y);
            xs.push(x);
        }
        let n = ys.len();
        let got = values(&atan2(
            &Tensor::from_vec(ys.clone(), n, &Device::Cpu)?,
            &Tensor::from_vec(xs.clone(), n, &Device::Cpu)?,
        )?);
        for ((y, x), g) in ys.iter().zip(&xs).zip(&got) {
            // libm gives −π for (−0, x<0); we treat zero as positive (the STFT's DC/Nyquist bins).
            let want = if *y == 0.0 {
                0f32.atan2(*x)
            } else {
                y.atan2(*x)
            };
            assert!(
                (g - want).abs() < 5e-7,
                "atan2({y}, {x}) = {g}, want {want}"
            );
        }
        Ok(())
    }

    #[test]
    fn stft_of_a_cosine_peaks_in_its_bin_with_zero_phase() -> Result<()> {
        let n_fft = 20;
        let window: Vec<f32> = (0..n_fft)
            .map(|i| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos()) as f32
            })
            .collect();
        let stft = Stft::new(&window, 5, &Device::Cpu)?;
        // Bin 3 of a 20-point DFT. Frame m starts at sample 5m − 10, so its bin-3 phase is
        // 1.5π·(m − 2): 0 or π for even m.
        let x: Vec<f32> = (0..400)
            .map(|i| (2.0 * std::f32::consts::PI * 3.0 * i as f32 / 20.0).cos())
            .collect();
        let out = stft.magnitude_phase(&Tensor::from_vec(x, (1, 1, 400), &Device::Cpu)?)?;
        assert_eq!(out.dims(), &[1, 22, 81]);
        let out: Vec<Vec<f32>> = out.squeeze(0)?.to_vec2()?;
        let frame = 40;
        let mags: Vec<f32> = (0..11).map(|k| out[k][frame]).collect();
        let peak = mags
            .iter()
            .enumerate()
            .fold((0, 0f32), |b, (k, &m)| if m > b.1 { (k, m) } else { b });
        assert_eq!(peak.0, 3, "magnitudes {mags:?}");
        // Σ w[t]·cos² over the window = Σw/2 = 5 for a periodic Hann of 20.
        assert!((peak.1 - 5.0).abs() < 1e-3, "peak {}", peak.1);
        let phase = out[11 + 3][frame];
        assert!(phase.abs() < 1e-4 || (phase.abs() - std::f32::consts::PI).abs() < 1e-4);
        Ok(())
    }

    #[test]
    fn linear_upsampling_matches_half_pixel_interpolation() -> Result<()> {
        let x = Tensor::new(&[[0f32, 10., 20.]], &Device::Cpu)?;
        let y = values(&upsample_linear(&x, 2)?);
        // PyTorch: F.interpolate([0,10,20], scale_factor=2, mode="linear")
        assert_eq!(y, [0., 2.5, 7.5, 12.5, 17.5, 20.]);
        let n = values(&upsample_nearest(&x, 3)?);
        assert_eq!(n, [0., 0., 0., 10., 10., 10., 20., 20., 20.]);
        Ok(())
    }
}
