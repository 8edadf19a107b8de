//! The iSTFTNet generator (`decoder.generator`): harmonic-plus-noise source (SineGen), two
//! transposed-conv upsampling stages with AdaIN/Snake resblocks, and an inverse STFT of the
//! predicted magnitude/phase (n_fft 20, hop 5).
//!
//! On the CPU the source signal and its STFT are computed in plain loops: a few vector passes
//! over the samples, cheaper than a chain of small tensor ops. On other devices (and under
//! [`crate::nn::with_generic_ops`]) the same maths runs as candle ops ([`Generator::source_device`],
//! [`crate::nn::Stft`]), so the graph never leaves the GPU; only the seeded random numbers are
//! drawn on the host (they do not depend on device data). The inverse STFT is a transposed
//! convolution with a DFT×window basis; its overlap-add normalisation runs on the host at
//! the very end, where the samples are copied out anyway.
//!
//! Two inverse STFTs are provided ([`IstftMode`]): the exact `torch.istft` of the official
//! model (overlap-add divided by the summed squared window), and the approximation baked into
//! the int8 ONNX export (no window-sum normalisation except a bogus one on the first 20 raw
//! samples), which is only useful for parity checks against that file.
//!
//! Reference: `Generator`, `SineGen`, `SourceModuleHnNSF`, `TorchSTFT` in hexgrad/kokoro
//! `kokoro/istftnet.py`.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Conv1dConfig, VarBuilder};
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use crate::nn::{Activation, AdaIn1d, ConvTranspose1d, FusedConv1d, Stft};

/// `istftnet` section of Kokoro's `config.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GeneratorConfig {
    pub upsample_rates: Vec<usize>,
    pub upsample_kernel_sizes: Vec<usize>,
    pub upsample_initial_channel: usize,
    pub resblock_kernel_sizes: Vec<usize>,
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    pub gen_istft_n_fft: usize,
    pub gen_istft_hop_size: usize,
}

impl Default for GeneratorConfig {
    /// Kokoro-82M v1.0.
    fn default() -> Self {
        Self {
            upsample_rates: vec![10, 6],
            upsample_kernel_sizes: vec![20, 12],
            upsample_initial_channel: 512,
            resblock_kernel_sizes: vec![3, 7, 11],
            resblock_dilation_sizes: vec![vec![1, 3, 5]; 3],
            gen_istft_n_fft: 20,
            gen_istft_hop_size: 5,
        }
    }
}

const SAMPLE_RATE: f32 = 24_000.0;
const HARMONICS: usize = 9;
const SINE_AMP: f32 = 0.1;
const NOISE_STD: f32 = 0.003;
const VOICED_THRESHOLD: f32 = 10.0;

/// Which inverse STFT finishes the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IstftMode {
    /// `torch.istft(center=True)`: overlap-add normalised by the summed squared window.
    Exact,
    /// The int8 ONNX export's approximation (≈1.5× louder, distorted first 10 samples).
    OnnxExport,
}

/// How the excitation source and the final inverse STFT are computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceOptions {
    /// Seed of the random initial harmonic phases and the additive source noise.
    pub seed: u64,
    /// Official behaviour draws random initial phases and Gaussian noise; the ONNX export
    /// has neither.
    pub noise: bool,
    pub istft: IstftMode,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            noise: true,
            istft: IstftMode::Exact,
        }
    }
}

impl SourceOptions {
    /// Emulates the int8 ONNX export: no noise, the export's approximate inverse STFT.
    pub fn onnx_export() -> Self {
        Self {
            seed: 0,
            noise: false,
            istft: IstftMode::OnnxExport,
        }
    }
}

/// `AdaINResBlock1`: three dilated (AdaIN → Snake → conv → AdaIN → Snake → conv) residual units.
#[derive(Debug, Clone)]
struct AdaInResBlock1 {
    units: Vec<ResUnit>,
}

#[derive(Debug, Clone)]
struct ResUnit {
    adain1: AdaIn1d,
    snake1: Activation,
    conv1: FusedConv1d,
    adain2: AdaIn1d,
    snake2: Activation,
    conv2: FusedConv1d,
}

fn snake(vb: &VarBuilder, channels: usize, name: &str) -> Result<Activation> {
    let alpha = vb
        .get((1, channels, 1), name)?
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1()?;
    Ok(Activation::Snake { alpha })
}

impl AdaInResBlock1 {
    fn load(
        vb: VarBuilder,
        channels: usize,
        kernel: usize,
        dilations: &[usize],
        style_dim: usize,
    ) -> Result<Self> {
        let mut units = Vec::with_capacity(dilations.len());
        for (j, &d) in dilations.iter().enumerate() {
            let c1 = Conv1dConfig {
                padding: (kernel * d - d) / 2,
                dilation: d,
                ..Default::default()
            };
            let c2 = Conv1dConfig {
                padding: (kernel - 1) / 2,
                ..Default::default()
            };
            units.push(ResUnit {
                adain1: AdaIn1d::load(vb.pp(format!("adain1.{j}")), style_dim, channels)?,
                snake1: snake(&vb, channels, &format!("alpha1.{j}"))?,
                conv1: FusedConv1d::new(candle_nn::conv1d(
                    channels,
                    channels,
                    kernel,
                    c1,
                    vb.pp(format!("convs1.{j}")),
                )?)?,
                adain2: AdaIn1d::load(vb.pp(format!("adain2.{j}")), style_dim, channels)?,
                snake2: snake(&vb, channels, &format!("alpha2.{j}"))?,
                conv2: FusedConv1d::new(candle_nn::conv1d(
                    channels,
                    channels,
                    kernel,
                    c2,
                    vb.pp(format!("convs2.{j}")),
                )?)?,
            });
        }
        Ok(Self { units })
    }

    fn forward(&self, x: &Tensor, s: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for u in &self.units {
            // conv1(Snake(AdaIN(x))), then x + conv2(Snake(AdaIN(·))), each one fused pass.
            let t = u
                .conv1
                .forward_adain(&x, &u.adain1, s, &u.snake1, None, 1.0)?;
            x = u
                .conv2
                .forward_adain(&t, &u.adain2, s, &u.snake2, Some(&x), 1.0)?;
        }
        Ok(x)
    }
}

#[derive(Debug, Clone)]
pub struct Generator {
    /// `m_source.l_linear`: merges the 9 harmonics into one excitation.
    source_w: Vec<f32>,
    source_b: f32,
    noise_convs: Vec<FusedConv1d>,
    noise_res: Vec<AdaInResBlock1>,
    ups: Vec<ConvTranspose1d>,
    resblocks: Vec<AdaInResBlock1>,
    num_kernels: usize,
    conv_post: FusedConv1d,
    n_fft: usize,
    hop: usize,
    /// Samples per F0 frame: prod(upsample_rates) · hop.
    upsample_scale: usize,
    /// Periodic Hann window of length n_fft.
    window: Vec<f32>,
    /// `[n_fft + 2, 1, n_fft]` inverse real-DFT basis times the window (real rows, then imag).
    istft_basis: Tensor,
    /// The forward STFT of the source as tensor ops, for non-CPU devices.
    stft_op: Stft,
    /// `m_source.l_linear` weight `[1, 9]` on the device.
    source_w_t: Tensor,
}

impl Generator {
    pub fn load(vb: VarBuilder, style_dim: usize, cfg: &GeneratorConfig) -> Result<Self> {
        let n_fft = cfg.gen_istft_n_fft;
        let hop = cfg.gen_istft_hop_size;
        let bins = n_fft / 2 + 1;
        let n_up = cfg.upsample_rates.len();
        let l_w = vb.pp("m_source.l_linear").get((1, HARMONICS), "weight")?;
        let l_b = vb.pp("m_source.l_linear").get(1, "bias")?;
        let mut noise_convs = Vec::with_capacity(n_up);
        let mut noise_res = Vec::with_capacity(n_up);
        let mut ups = Vec::with_capacity(n_up);
        let mut resblocks = Vec::new();
        let mut ch = cfg.upsample_initial_channel;
        for (i, (&u, &k)) in cfg
            .upsample_rates
            .iter()
            .zip(&cfg.upsample_kernel_sizes)
            .enumerate()
        {
            let c_in = cfg.upsample_initial_channel >> i;
            ch = cfg.upsample_initial_channel >> (i + 1);
            ups.push(ConvTranspose1d::load(
                vb.pp(format!("ups.{i}")),
                c_in,
                ch,
                k,
                u,
                (k - u) / 2,
            )?);
            for (j, (&rk, rd)) in cfg
                .resblock_kernel_sizes
                .iter()
                .zip(&cfg.resblock_dilation_sizes)
                .enumerate()
            {
                let idx = i * cfg.resblock_kernel_sizes.len() + j;
                resblocks.push(AdaInResBlock1::load(
                    vb.pp(format!("resblocks.{idx}")),
                    ch,
                    rk,
                    rd,
                    style_dim,
                )?);
            }
            let nvb = vb.pp(format!("noise_convs.{i}"));
            if i + 1 < n_up {
                let stride: usize = cfg.upsample_rates[i + 1..].iter().product();
                let c = Conv1dConfig {
                    padding: stride.div_ceil(2),
                    stride,
                    ..Default::default()
                };
                noise_convs.push(FusedConv1d::new(candle_nn::conv1d(
                    n_fft + 2,
                    ch,
                    2 * stride,
                    c,
                    nvb,
                )?)?);
                noise_res.push(AdaInResBlock1::load(
                    vb.pp(format!("noise_res.{i}")),
                    ch,
                    7,
                    &[1, 3, 5],
                    style_dim,
                )?);
            } else {
                noise_convs.push(FusedConv1d::new(candle_nn::conv1d(
                    n_fft + 2,
                    ch,
                    1,
                    Default::default(),
                    nvb,
                )?)?);
                noise_res.push(AdaInResBlock1::load(
                    vb.pp(format!("noise_res.{i}")),
                    ch,
                    11,
                    &[1, 3, 5],
                    style_dim,
                )?);
            }
        }
        let conv_post = FusedConv1d::new(candle_nn::conv1d(
            ch,
            n_fft + 2,
            7,
            Conv1dConfig {
                padding: 3,
                ..Default::default()
            },
            vb.pp("conv_post"),
        )?)?;
        let window = hann_periodic(n_fft);
        let mut basis = vec![0f32; 2 * bins * n_fft];
        for k in 0..bins {
            // One-sided spectrum: bins other than DC and Nyquist count twice.
            let c = if k == 0 || 2 * k == n_fft { 1.0 } else { 2.0 };
            for n in 0..n_fft {
                let ang = 2.0 * std::f64::consts::PI * (k * n) as f64 / n_fft as f64;
                let w = window[n] as f64 * c / n_fft as f64;
                basis[k * n_fft + n] = (w * ang.cos()) as f32;
                basis[(bins + k) * n_fft + n] = (-w * ang.sin()) as f32;
            }
        }
        let istft_basis = Tensor::from_vec(basis, (2 * bins, 1, n_fft), vb.device())?;
        let stft_op = Stft::new(&window, hop, vb.device())?;
        let source_w_t = l_w.to_dtype(DType::F32)?;
        Ok(Self {
            source_w: l_w.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?,
            source_b: l_b.to_dtype(DType::F32)?.to_vec1::<f32>()?[0],
            noise_convs,
            noise_res,
            ups,
            num_kernels: cfg.resblock_kernel_sizes.len(),
            resblocks,
            conv_post,
            n_fft,
            hop,
            upsample_scale: cfg.upsample_rates.iter().product::<usize>() * hop,
            window,
            istft_basis,
            stft_op,
            source_w_t,
        })
    }

    /// The merged excitation `tanh(l_linear(sines·uv + noise))`, one value per output sample,
    /// from the F0 curve (Hz per frame).
    pub fn harmonic_source(&self, f0: &[f32], opts: &SourceOptions) -> Vec<f32> {
        let frames = f0.len();
        let up = self.upsample_scale;
        let len = frames * up;
        let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
        let mut merged = vec![self.source_b; len];
        let mut phase = vec![0f32; frames];
        for h in 0..HARMONICS {
            let mult = (h + 1) as f32;
            // F.interpolate(1/up) of the nearest-upsampled curve gives back one value per frame
            // exactly, so the cumulative phase is built per frame (f32, in the export's order).
            let mut acc = 0f32;
            for (j, p) in phase.iter_mut().enumerate() {
                let r = f0[j] * mult / SAMPLE_RATE;
                let mut r = r - r.floor();
                if j == 0 && h > 0 && opts.noise {
                    r += rng.random::<f32>();
                }
                acc += r;
                *p = acc * 2.0 * std::f32::consts::PI * up as f32;
            }
            let w = self.source_w[h];
            // Linear upsampling (half-pixel centres, clamped at both ends).
            for (i, m) in merged.iter_mut().enumerate() {
                let src = ((i as f32 + 0.5) / up as f32 - 0.5).max(0.0);
                let j0 = (src.floor() as usize).min(frames - 1);
                let j1 = (j0 + 1).min(frames - 1);
                let lam = src - j0 as f32;
                let ph = phase[j0] * (1.0 - lam) + phase[j1] * lam;
                if f0[i / up] > VOICED_THRESHOLD {
                    *m += w * ph.sin() * SINE_AMP;
                }
            }
        }
        if opts.noise {
            let normal = rand_distr::StandardNormal;
            for (i, m) in merged.iter_mut().enumerate() {
                let voiced = f0[i / up] > VOICED_THRESHOLD;
                let amp = if voiced { NOISE_STD } else { SINE_AMP / 3.0 };
                // Each harmonic gets its own noise draw before the linear merge.
                for h in 0..HARMONICS {
                    let z: f32 = rng.sample(normal);
                    *m += self.source_w[h] * amp * z;
                }
            }
        }
        for m in merged.iter_mut() {
            *m = m.tanh();
        }
        merged
    }

    /// `torch.stft(center=True, reflect)` magnitude and phase of `x`: `[n_fft + 2, frames]`
    /// flattened row-major (magnitudes then phases).
    pub fn stft(&self, x: &[f32], mode: IstftMode) -> (Vec<f32>, usize) {
        let n = self.n_fft;
        let half = n / 2;
        let bins = half + 1;
        let len = x.len();
        let frames = len / self.hop + 1;
        let at = |i: isize| -> f32 {
            // Reflect padding by n_fft/2 on both sides.
            let l = len as isize;
            let j = if i < 0 {
                -i
            } else if i >= l {
                2 * (l - 1) - i
            } else {
                i
            };
            x[j.clamp(0, l - 1) as usize]
        };
        let mut cos = vec![0f64; bins * n];
        let mut sin = vec![0f64; bins * n];
        for k in 0..bins {
            for t in 0..n {
                let ang = 2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                cos[k * n + t] = ang.cos() * self.window[t] as f64;
                sin[k * n + t] = ang.sin() * self.window[t] as f64;
            }
        }
        let mut out = vec![0f32; 2 * bins * frames];
        let mut seg = vec![0f64; n];
        for m in 0..frames {
            let start = (m * self.hop) as isize - half as isize;
            for (t, s) in seg.iter_mut().enumerate() {
                *s = at(start + t as isize) as f64;
            }
            for k in 0..bins {
                let mut re = 0f64;
                let mut im = 0f64;
                for t in 0..n {
                    re += seg[t] * cos[k * n + t];
                    im -= seg[t] * sin[k * n + t];
                }
                if k == 0 || 2 * k == n {
                    // A real signal's DC and Nyquist bins have an exactly zero imaginary part.
                    im = 0.0;
                }
                let (re, im) = (re as f32, im as f32);
                out[k * frames + m] = (re * re + im * im).sqrt();
                out[(bins + k) * frames + m] = match mode {
                    IstftMode::Exact => im.atan2(re),
                    IstftMode::OnnxExport => export_angle(re, im),
                };
            }
        }
        (out, frames)
    }

    /// Everything up to `conv_post`: `[1, n_fft + 2, frames]` (log-magnitude, then pre-sine phase).
    pub fn pre_istft(
        &self,
        x: &Tensor,
        s: &Tensor,
        f0: &Tensor,
        opts: &SourceOptions,
    ) -> Result<Tensor> {
        let har = self.source_spectrum(f0, opts)?.to_dtype(x.dtype())?;
        let n_up = self.ups.len();
        let mut x = x.clone();
        for i in 0..n_up {
            x = candle_nn::ops::leaky_relu(&x, 0.1)?;
            let x_source =
                self.noise_res[i].forward(&self.noise_convs[i].forward_plain(&har)?, s)?;
            x = self.ups[i].forward(&x)?;
            if i + 1 == n_up {
                // ReflectionPad1d((1, 0)): prepend x[..., 1].
                x = Tensor::cat(&[&x.narrow(2, 1, 1)?, &x], 2)?;
            }
            x = (x + x_source)?;
            let mut xs = self.resblocks[i * self.num_kernels].forward(&x, s)?;
            for j in 1..self.num_kernels {
                xs = (xs + self.resblocks[i * self.num_kernels + j].forward(&x, s)?)?;
            }
            x = (xs / self.num_kernels as f64)?;
        }
        // The final activation uses PyTorch's default slope 0.01, not 0.1.
        self.conv_post
            .forward(&x, None, &Activation::LeakyRelu(0.01), None, 1.0)
    }

    /// The STFT `[1, n_fft + 2, frames]` (magnitude, then phase) of the harmonic source for the
    /// F0 curve `[1, F]`, in f32: host loops on the CPU, tensor ops elsewhere.
    pub fn source_spectrum(&self, f0: &Tensor, opts: &SourceOptions) -> Result<Tensor> {
        if crate::nn::cpu_fast_path(f0) || opts.istft == IstftMode::OnnxExport {
            if !f0.device().is_cpu() {
                // Parity mode only: the export's phase convention exists as host code alone.
                crate::log_host_fallback!("kokoro source STFT (istft = OnnxExport)");
            }
            let f0v: Vec<f32> = f0.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            let source = self.harmonic_source(&f0v, opts);
            let (har, frames) = self.stft(&source, opts.istft);
            return Tensor::from_vec(har, (1, self.n_fft + 2, frames), f0.device());
        }
        let source = self.source_device(f0, opts)?;
        self.stft_op.magnitude_phase(&source)
    }

    /// [`Self::harmonic_source`] as tensor ops on `f0`'s device: `[1, F]` → `[1, 1, F·up]`.
    /// The random initial phases and noise are drawn on the host in the same order from the
    /// same seed, so both paths hear the same noise.
    pub fn source_device(&self, f0: &Tensor, opts: &SourceOptions) -> Result<Tensor> {
        use std::f64::consts::PI;
        let dev = f0.device();
        let up = self.upsample_scale;
        let f0 = f0.flatten_all()?.to_dtype(DType::F32)?.unsqueeze(0)?;
        let frames = f0.dim(1)?;
        let len = frames * up;
        let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
        let mult: Vec<f32> = (1..=HARMONICS).map(|h| h as f32).collect();
        let mult = Tensor::from_vec(mult, (HARMONICS, 1), dev)?;
        // Per-frame phase increment in cycles, fractional part only: [H, F].
        let r = (f0.broadcast_mul(&mult)? / SAMPLE_RATE as f64)?;
        let mut r = (&r - r.floor()?)?;
        if opts.noise {
            let init: Vec<f32> = (0..HARMONICS)
                .map(|h| if h > 0 { rng.random::<f32>() } else { 0.0 })
                .collect();
            let first = (r.narrow(1, 0, 1)? + Tensor::from_vec(init, (HARMONICS, 1), dev)?)?;
            r = Tensor::cat(&[first, r.narrow(1, 1, frames - 1)?], 1)?;
        }
        let phase = (r.cumsum(1)? * (2.0 * PI * up as f64))?;
        let phase = crate::nn::upsample_linear(&phase, up)?;
        let voiced = crate::nn::upsample_nearest(
            &f0.gt(VOICED_THRESHOLD as f64)?.to_dtype(DType::F32)?,
            up,
        )?;
        let sines = (phase.sin()? * SINE_AMP as f64)?;
        let mut merged = self.source_w_t.matmul(&sines)?.mul(&voiced)?;
        if opts.noise {
            let normal = rand_distr::StandardNormal;
            let noise: Vec<f32> = (0..len)
                .map(|_| {
                    (0..HARMONICS)
                        .map(|h| self.source_w[h] * rng.sample::<f32, _>(normal))
                        .sum()
                })
                .collect();
            let unvoiced_amp = (SINE_AMP / 3.0) as f64;
            let amp = voiced.affine(NOISE_STD as f64 - unvoiced_amp, unvoiced_amp)?;
            merged = (merged + amp.mul(&Tensor::from_vec(noise, (1, len), dev)?)?)?;
        }
        (merged + self.source_b as f64)?.tanh()?.unsqueeze(0)
    }

    /// Inverse STFT of `conv_post`'s output: magnitude `exp(x[:bins])`, phase `sin(x[bins:])`.
    pub fn istft(&self, post: &Tensor, mode: IstftMode) -> Result<Vec<f32>> {
        self.overlap_add(&self.complex_spectrum(post)?, mode)
    }

    /// `conv_post`'s output as a one-sided complex spectrum `[1, 2·bins, frames]`: magnitude
    /// `exp(x[:bins])`, phase `sin(x[bins:])`, real rows then imaginary rows.
    fn complex_spectrum(&self, post: &Tensor) -> Result<Tensor> {
        let bins = self.n_fft / 2 + 1;
        let spec = post.narrow(1, 0, bins)?.exp()?;
        let phase = post.narrow(1, bins, bins)?.sin()?;
        let re = (&spec * phase.cos()?)?;
        let im = (&spec * phase.sin()?)?;
        Tensor::cat(&[re, im], 1)
    }

    /// The summed squared window of `frames` overlapped frames, `len` samples long: what
    /// `torch.istft` divides the overlap-add by.
    fn window_envelope(&self, frames: usize, len: usize) -> Vec<f32> {
        let mut env = vec![0f32; len];
        for m in 0..frames {
            for (t, w) in self.window.iter().enumerate() {
                env[m * self.hop + t] += w * w;
            }
        }
        env
    }

    /// Inverse STFT of a one-sided complex spectrum `[1, 2·bins, frames]` (real rows, then
    /// imaginary rows), cropped like `center=True`: `(frames − 1) · hop` samples.
    pub fn overlap_add(&self, z: &Tensor, mode: IstftMode) -> Result<Vec<f32>> {
        let frames = z.dim(2)?;
        let y = z.conv_transpose1d(&self.istft_basis.to_dtype(z.dtype())?, 0, 0, self.hop, 1, 1)?;
        let mut y: Vec<f32> = y.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
        let half = self.n_fft / 2;
        match mode {
            IstftMode::Exact => {
                let env = self.window_envelope(frames, y.len());
                for (v, e) in y.iter_mut().zip(&env) {
                    if *e > 1e-11 {
                        *v /= e;
                    }
                }
            }
            IstftMode::OnnxExport => {
                // The export divides only the first n_fft raw samples by one frame's window².
                for (v, w) in y.iter_mut().zip(&self.window) {
                    let ws = w * w;
                    if ws > f32::MIN_POSITIVE {
                        *v /= ws;
                    }
                }
            }
        }
        let out_len = (frames - 1) * self.hop;
        Ok(y[half..half + out_len].to_vec())
    }

    /// [`Self::istft`] (exact mode) kept as a tensor `[(frames − 1) · hop]` that candle can
    /// back-propagate through, for voice cloning.
    pub fn istft_differentiable(&self, post: &Tensor) -> Result<Tensor> {
        let frames = post.dim(2)?;
        let z = self.complex_spectrum(post)?;
        let basis = self.istft_basis.to_dtype(z.dtype())?;
        let y = crate::nn::conv_transpose1d_polyphase(&z, &basis, self.hop)?.flatten_all()?;
        let env = self.window_envelope(frames, y.dim(0)?);
        let inverse: Vec<f32> = env
            .iter()
            .map(|e| if *e > 1e-11 { 1.0 / e } else { 1.0 })
            .collect();
        let inverse = Tensor::from_vec(inverse, env.len(), y.device())?.to_dtype(y.dtype())?;
        (y * inverse)?.narrow(0, self.n_fft / 2, (frames - 1) * self.hop)
    }

    /// Full generator: features `[1, C, 2F]`, style `[1, S]`, F0 `[1, 2F]` → samples.
    pub fn forward(
        &self,
        x: &Tensor,
        s: &Tensor,
        f0: &Tensor,
        opts: &SourceOptions,
    ) -> Result<Vec<f32>> {
        let post = self.pre_istft(x, s, f0, opts)?;
        self.istft(&post, opts.istft)
    }

    pub fn device(&self) -> &Device {
        self.istft_basis.device()
    }
}

/// The export's phase: `atan(im/re)` moved by ±π when `re < 0` (−π when `im == 0`).
fn export_angle(re: f32, im: f32) -> f32 {
    if re == 0.0 {
        return if im == 0.0 { 0.0 } else { im.atan2(re) };
    }
    let a = (im / re).atan();
    if re < 0.0 {
        if im > 0.0 {
            a + std::f32::consts::PI
        } else {
            a - std::f32::consts::PI
        }
    } else {
        a
    }
}

/// `torch.hann_window(n, periodic=True)`.
fn hann_periodic(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generator with random weights is enough to test the STFT pair.
    fn tiny_generator() -> Result<Generator> {
        let cfg = GeneratorConfig {
            upsample_rates: vec![2],
            upsample_kernel_sizes: vec![4],
            upsample_initial_channel: 4,
            resblock_kernel_sizes: vec![3],
            resblock_dilation_sizes: vec![vec![1, 3, 5]],
            gen_istft_n_fft: 20,
            gen_istft_hop_size: 5,
        };
        let vm = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        Generator::load(vb, 8, &cfg)
    }

    fn round_trip(g: &Generator, x: &[f32], mode: IstftMode) -> Result<Vec<f32>> {
        let bins = 11;
        let (spec, frames) = g.stft(x, IstftMode::Exact);
        let dev = Device::Cpu;
        let mag = Tensor::from_vec(spec[..bins * frames].to_vec(), (1, bins, frames), &dev)?;
        let ang = Tensor::from_vec(spec[bins * frames..].to_vec(), (1, bins, frames), &dev)?;
        let z = Tensor::cat(&[(&mag * ang.cos()?)?, (&mag * ang.sin()?)?], 1)?;
        g.overlap_add(&z, mode)
    }

    #[test]
    fn exact_istft_inverts_the_stft() -> Result<()> {
        let g = tiny_generator()?;
        let x: Vec<f32> = (0..400)
            .map(|i| (i as f32 * 0.07).sin() * 0.5 + (i as f32 * 0.31).cos() * 0.2)
            .collect();
        let y = round_trip(&g, &x, IstftMode::Exact)?;
        assert_eq!(y.len(), x.len());
        let err = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-4, "max reconstruction error {err}");
        Ok(())
    }

    #[test]
    fn export_istft_is_one_and_a_half_times_louder_inside() -> Result<()> {
        let g = tiny_generator()?;
        let x: Vec<f32> = (0..400).map(|i| (i as f32 * 0.05).sin()).collect();
        let y = round_trip(&g, &x, IstftMode::OnnxExport)?;
        // Σ w² over the 4 overlapping periodic Hann frames is 1.5 away from the edges.
        for i in 20..380 {
            assert!(
                (y[i] - 1.5 * x[i]).abs() < 1e-4,
                "sample {i}: {} vs {}",
                y[i],
                x[i]
            );
        }
        Ok(())
    }
}
