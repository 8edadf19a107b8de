//! The acoustic text encoder (`text_encoder`): embedding → 3 × (conv k5, channel LayerNorm,
//! LeakyReLU 0.2) → bidirectional LSTM. Its output, expanded by the predicted durations, is the
//! decoder's `asr` input.
//!
//! Reference: `TextEncoder` in hexgrad/kokoro `kokoro/modules.py` (from StyleTTS2).

use candle_core::{Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, Embedding, LayerNorm, Module, VarBuilder};

use crate::nn::BiLstm;

#[derive(Debug, Clone)]
pub struct TextEncoder {
    embedding: Embedding,
    cnn: Vec<(Conv1d, LayerNorm)>,
    lstm: BiLstm,
}

impl TextEncoder {
    pub fn load(
        vb: VarBuilder,
        channels: usize,
        kernel_size: usize,
        depth: usize,
        n_symbols: usize,
    ) -> Result<Self> {
        let embedding = candle_nn::embedding(n_symbols, channels, vb.pp("embedding"))?;
        let cfg = Conv1dConfig {
            padding: (kernel_size - 1) / 2,
            ..Default::default()
        };
        let mut cnn = Vec::with_capacity(depth);
        for i in 0..depth {
            let block = vb.pp(format!("cnn.{i}"));
            let conv = candle_nn::conv1d(channels, channels, kernel_size, cfg, block.pp("0"))?;
            // The StyleTTS2 `LayerNorm` names its affine parameters gamma/beta.
            let norm_vb = block.pp("1");
            let norm = LayerNorm::new(
                norm_vb.get(channels, "gamma")?,
                norm_vb.get(channels, "beta")?,
                1e-5,
            );
            cnn.push((conv, norm));
        }
        let lstm = BiLstm::load(vb.pp("lstm"), channels, channels / 2)?;
        Ok(Self {
            embedding,
            cnn,
            lstm,
        })
    }

    /// `ids`: `[1, T]` → `[1, channels, T]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let mut x = self.embedding.forward(ids)?.transpose(1, 2)?;
        for (conv, norm) in &self.cnn {
            let y = conv.forward(&x.contiguous()?)?;
            let y = norm
                .forward(&y.transpose(1, 2)?.contiguous()?)?
                .transpose(1, 2)?;
            x = candle_nn::ops::leaky_relu(&y, 0.2)?;
        }
        let y = self.lstm.forward(&x.transpose(1, 2)?.contiguous()?)?;
        y.transpose(1, 2)?.contiguous()
    }
}
