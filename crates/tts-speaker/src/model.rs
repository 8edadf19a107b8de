//! The GE2E speaker encoder network (Wan et al. 2018, <https://arxiv.org/abs/1710.10467>) as
//! Resemblyzer's `VoiceEncoder` (`resemblyzer/voice_encoder.py`,
//! <https://github.com/resemble-ai/Resemblyzer>): a 3-layer unidirectional LSTM over 40-band mel
//! frames, the last layer's final hidden state → linear → ReLU → L2 normalisation.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::{Linear, Module, VarBuilder};

/// Resemblyzer's `hparams.py` model section.
#[derive(Debug, Clone, PartialEq)]
pub struct Ge2eConfig {
    /// `mel_n_channels`.
    pub n_mels: usize,
    /// `model_hidden_size`.
    pub hidden_size: usize,
    /// `model_embedding_size`.
    pub embedding_size: usize,
    /// `model_num_layers`.
    pub num_layers: usize,
    /// `partials_n_frames`: mel frames per partial utterance (1.6 s).
    pub partial_frames: usize,
}

impl Default for Ge2eConfig {
    fn default() -> Self {
        Self {
            n_mels: 40,
            hidden_size: 256,
            embedding_size: 256,
            num_layers: 3,
            partial_frames: 160,
        }
    }
}

/// One unidirectional LSTM layer, PyTorch names (`weight_ih_l{k}` …) and gate order (i, f, g, o).
#[derive(Debug, Clone)]
pub struct LstmLayer {
    w_ih_t: Tensor,
    w_hh_t: Tensor,
    bias: Tensor,
    hidden: usize,
}

impl LstmLayer {
    pub fn load(vb: &VarBuilder, layer: usize, input: usize, hidden: usize) -> Result<Self> {
        let w_ih = vb.get((4 * hidden, input), &format!("weight_ih_l{layer}"))?;
        let w_hh = vb.get((4 * hidden, hidden), &format!("weight_hh_l{layer}"))?;
        let b_ih = vb.get(4 * hidden, &format!("bias_ih_l{layer}"))?;
        let b_hh = vb.get(4 * hidden, &format!("bias_hh_l{layer}"))?;
        Ok(Self {
            w_ih_t: w_ih.t()?.contiguous()?,
            w_hh_t: w_hh.t()?.contiguous()?,
            bias: (b_ih + b_hh)?,
            hidden,
        })
    }

    /// `[B, T, in]` → all hidden states `[B, T, H]`. The input projection of every step is
    /// one matmul; only `h · W_hhᵀ` stays in the time loop (candle's `LSTM::step` does both per step).
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, t, input) = xs.dims3()?;
        let h = self.hidden;
        let pre = xs
            .reshape((b * t, input))?
            .matmul(&self.w_ih_t)?
            .broadcast_add(&self.bias)?
            .reshape((b, t, 4 * h))?;
        let mut hs = Tensor::zeros((b, h), DType::F32, xs.device())?;
        let mut cs = hs.clone();
        let mut outs = Vec::with_capacity(t);
        for step in 0..t {
            let gates = (pre.narrow(1, step, 1)?.squeeze(1)? + hs.matmul(&self.w_hh_t)?)?;
            let chunks = gates.chunk(4, 1)?;
            let i = candle_nn::ops::sigmoid(&chunks[0])?;
            let f = candle_nn::ops::sigmoid(&chunks[1])?;
            let g = chunks[2].tanh()?;
            let o = candle_nn::ops::sigmoid(&chunks[3])?;
            cs = ((f * &cs)? + (i * g)?)?;
            hs = (o * cs.tanh()?)?;
            outs.push(hs.clone());
        }
        Tensor::stack(&outs, 1)
    }
}

/// The encoder network: mel partials `[B, 160, 40]` → embeddings `[B, 256]`, L2-normalised.
#[derive(Debug, Clone)]
pub struct Ge2e {
    lstm: Vec<LstmLayer>,
    linear: Linear,
    cfg: Ge2eConfig,
}

impl Ge2e {
    /// Loads `lstm.*` and `linear.*`; the GE2E loss's `similarity_weight/bias` are unused.
    pub fn load(vb: VarBuilder, cfg: &Ge2eConfig) -> Result<Self> {
        let lstm_vb = vb.pp("lstm");
        let lstm = (0..cfg.num_layers)
            .map(|l| {
                let input = if l == 0 { cfg.n_mels } else { cfg.hidden_size };
                LstmLayer::load(&lstm_vb, l, input, cfg.hidden_size)
            })
            .collect::<Result<Vec<_>>>()?;
        let linear = candle_nn::linear(cfg.hidden_size, cfg.embedding_size, vb.pp("linear"))?;
        Ok(Self {
            lstm,
            linear,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Ge2eConfig {
        &self.cfg
    }

    pub fn forward(&self, mels: &Tensor) -> Result<Tensor> {
        let mut xs = mels.clone();
        for layer in &self.lstm {
            xs = layer.forward(&xs)?;
        }
        let t = xs.dim(1)?;
        // `hidden[-1]`: the last layer's state after the final frame.
        let last = xs.narrow(1, t - 1, 1)?.squeeze(1)?;
        let raw = self.linear.forward(&last)?.relu()?;
        // The floor only matters when ReLU zeroes every unit (the reference would give NaN).
        let norm = raw
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        raw.broadcast_div(&norm)
    }
}
