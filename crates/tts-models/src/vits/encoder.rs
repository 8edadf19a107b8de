//! VITS text encoder (`enc_p`): phoneme embedding, a transformer with relative-position
//! self-attention (windowed: keys further than `window` positions contribute no relative term),
//! conv feed-forward layers, and a projection to the prior's mean and log-std.
//!
//! Reference: `jaywalnut310/vits` `models.TextEncoder`, `attentions.Encoder`,
//! `attentions.MultiHeadAttention`. A single utterance runs unpadded (no masks). A padded batch
//! ([`TextEncoder::forward_padded`]) zeroes padding before each conv, as the reference does, and
//! runs attention per item on its real frames, so each item equals its unpadded run.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Conv1d, Embedding, VarBuilder};

use super::layers::{apply_mask, conv1d, conv1x1, sequence_mask, ChannelNorm};
use super::VitsConfig;
use crate::nn::FusedConv1d;

/// Multi-head self-attention with shared relative key/value embeddings.
#[derive(Debug, Clone)]
struct RelativeAttention {
    conv_q: Conv1d,
    conv_k: Conv1d,
    conv_v: Conv1d,
    conv_o: Conv1d,
    /// `[1, 2·window+1, k_channels]`
    emb_rel_k: Tensor,
    emb_rel_v: Tensor,
    n_heads: usize,
    window: usize,
}

impl RelativeAttention {
    fn load(vb: VarBuilder, cfg: &VitsConfig) -> Result<Self> {
        let h = cfg.hidden_channels;
        let kc = h / cfg.n_heads;
        let rel = (1, 2 * cfg.window_size + 1, kc);
        Ok(Self {
            conv_q: conv1x1(&vb.pp("conv_q"))?,
            conv_k: conv1x1(&vb.pp("conv_k"))?,
            conv_v: conv1x1(&vb.pp("conv_v"))?,
            conv_o: conv1x1(&vb.pp("conv_o"))?,
            emb_rel_k: vb.get(rel, "emb_rel_k")?,
            emb_rel_v: vb.get(rel, "emb_rel_v")?,
            n_heads: cfg.n_heads,
            window: cfg.window_size,
        })
    }

    /// The relative embeddings for offsets `-(len-1)..=len-1`, zero outside the window.
    fn relative_embeddings(&self, emb: &Tensor, len: usize) -> Result<Tensor> {
        let pad = len.saturating_sub(self.window + 1);
        let start = (self.window + 1).saturating_sub(len);
        let padded = emb.pad_with_zeros(1, pad, pad)?;
        padded.narrow(1, start, 2 * len - 1)
    }

    /// `[B,H,L,2L-1]` relative logits → `[B,H,L,L]` absolute (VITS' pad-and-reshape trick).
    fn relative_to_absolute(x: &Tensor) -> Result<Tensor> {
        let (b, h, l, _) = x.dims4()?;
        let x = x.pad_with_zeros(D::Minus1, 0, 1)?;
        let x = x
            .reshape((b, h, l * 2 * l))?
            .pad_with_zeros(D::Minus1, 0, l - 1)?;
        x.reshape((b, h, l + 1, 2 * l - 1))?
            .narrow(2, 0, l)?
            .narrow(3, l - 1, l)
    }

    /// `[B,H,L,L]` absolute weights → `[B,H,L,2L-1]` relative.
    fn absolute_to_relative(x: &Tensor) -> Result<Tensor> {
        let (b, h, l, _) = x.dims4()?;
        let x = x.pad_with_zeros(D::Minus1, 0, l - 1)?;
        let x = x
            .reshape((b, h, l * (2 * l - 1)))?
            .pad_with_zeros(D::Minus1, l, 0)?;
        x.reshape((b, h, l, 2 * l))?.narrow(3, 1, 2 * l - 1)
    }

    /// Self-attention of a padded batch `[B, C, T]` whose items have `lengths`, one item at a
    /// time on its real frames (a padded softmax would sum in another order than the item's
    /// own); outputs on padding are zero.
    fn forward_padded(&self, x: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let t = x.dim(2)?;
        let items = lengths
            .iter()
            .enumerate()
            .map(|(b, &len)| {
                let item = x.narrow(0, b, 1)?.narrow(2, 0, len)?;
                self.forward(&item)?.pad_with_zeros(2, 0, t - len)
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&items, 0)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        let kc = c / self.n_heads;
        // [B, C, T] -> [B, H, T, kc]
        let heads = |y: Tensor| -> Result<Tensor> {
            y.reshape((b, self.n_heads, kc, t))?
                .transpose(2, 3)?
                .contiguous()
        };
        let q = (heads(self.conv_q.forward(x)?)? / (kc as f64).sqrt())?;
        let k = heads(self.conv_k.forward(x)?)?;
        let v = heads(self.conv_v.forward(x)?)?;

        let mut scores = q.matmul(&k.t()?)?;
        let rel_k = self.relative_embeddings(&self.emb_rel_k, t)?; // [1, 2T-1, kc]
        let rel_logits = q.broadcast_matmul(&rel_k.unsqueeze(0)?.t()?)?;
        scores = (scores + Self::relative_to_absolute(&rel_logits)?)?;
        let p = candle_nn::ops::softmax_last_dim(&scores)?;

        let mut out = p.matmul(&v)?;
        let rel_v = self.relative_embeddings(&self.emb_rel_v, t)?;
        let rel_w = Self::absolute_to_relative(&p)?.contiguous()?;
        out = (out + rel_w.broadcast_matmul(&rel_v.unsqueeze(0)?)?)?;
        let out = out.transpose(2, 3)?.reshape((b, c, t))?;
        self.conv_o.forward(&out)
    }
}

/// Conv feed-forward block with "same" padding; `forward` returns `x + ffn(x)`.
#[derive(Debug, Clone)]
enum FeedForward {
    /// Odd kernels: symmetric padding, fused CPU convs with the ReLU folded into `conv_2`.
    Fused {
        conv_1: FusedConv1d,
        conv_2: FusedConv1d,
    },
    /// Even kernels pad asymmetrically (left (k-1)/2, right k/2).
    Padded {
        conv_1: Conv1d,
        conv_2: Conv1d,
        pad_left: usize,
        pad_right: usize,
    },
}

impl FeedForward {
    fn load(vb: VarBuilder, cfg: &VitsConfig) -> Result<Self> {
        let (h, f, k) = (
            cfg.hidden_channels,
            cfg.filter_channels,
            cfg.ffn_kernel_size,
        );
        if k % 2 == 1 {
            let p = k / 2;
            Ok(Self::Fused {
                conv_1: FusedConv1d::new(conv1d(&vb.pp("conv_1"), h, f, k, 1, p, true)?)?,
                conv_2: FusedConv1d::new(conv1d(&vb.pp("conv_2"), f, h, k, 1, p, true)?)?,
            })
        } else {
            Ok(Self::Padded {
                conv_1: conv1d(&vb.pp("conv_1"), h, f, k, 1, 0, true)?,
                conv_2: conv1d(&vb.pp("conv_2"), f, h, k, 1, 0, true)?,
                pad_left: (k - 1) / 2,
                pad_right: k / 2,
            })
        }
    }

    /// `x + ffn(x)`; with a `mask`, padding is zeroed before each conv.
    fn forward_residual(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        match self {
            Self::Fused { conv_1, conv_2 } => {
                let y = conv_1.forward_act(&apply_mask(x, mask)?, None)?;
                // A leaky ReLU with slope 0 is the ReLU.
                conv_2.forward_residual(&apply_mask(&y, mask)?, Some(0.0), x)
            }
            Self::Padded {
                conv_1,
                conv_2,
                pad_left,
                pad_right,
            } => {
                let pad = |y: &Tensor| {
                    apply_mask(y, mask)?.pad_with_zeros(D::Minus1, *pad_left, *pad_right)
                };
                let y = conv_1.forward(&pad(x)?)?.relu()?;
                x + conv_2.forward(&pad(&y)?)?
            }
        }
    }
}

/// The encoder's output for one utterance (`B` = 1) or a padded batch (zero on padding).
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// Hidden states `[B, hidden, N]` (input of the duration predictor).
    pub x: Tensor,
    /// Prior mean `[B, inter, N]`.
    pub m_p: Tensor,
    /// Prior log-std `[B, inter, N]`.
    pub logs_p: Tensor,
}

impl EncoderOutput {
    /// Item `i` of a batch, cut to its `len` real phonemes: what the item gives alone.
    pub fn item(&self, i: usize, len: usize) -> Result<Self> {
        let cut = |t: &Tensor| t.narrow(0, i, 1)?.narrow(2, 0, len)?.contiguous();
        Ok(Self {
            x: cut(&self.x)?,
            m_p: cut(&self.m_p)?,
            logs_p: cut(&self.logs_p)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct TextEncoder {
    emb: Embedding,
    attn: Vec<RelativeAttention>,
    norm_1: Vec<ChannelNorm>,
    ffn: Vec<FeedForward>,
    norm_2: Vec<ChannelNorm>,
    proj: Conv1d,
    hidden: usize,
    inter: usize,
    span: tracing::Span,
}

impl TextEncoder {
    pub fn load(vb: VarBuilder, cfg: &VitsConfig) -> Result<Self> {
        let h = cfg.hidden_channels;
        let emb = Embedding::new(vb.get((cfg.n_vocab, h), "emb.weight")?, h);
        let enc = vb.pp("encoder");
        let mut attn = Vec::new();
        let mut norm_1 = Vec::new();
        let mut ffn = Vec::new();
        let mut norm_2 = Vec::new();
        for i in 0..cfg.n_layers {
            attn.push(RelativeAttention::load(
                enc.pp(format!("attn_layers.{i}")),
                cfg,
            )?);
            norm_1.push(ChannelNorm::load(enc.pp(format!("norm_layers_1.{i}")), h)?);
            ffn.push(FeedForward::load(enc.pp(format!("ffn_layers.{i}")), cfg)?);
            norm_2.push(ChannelNorm::load(enc.pp(format!("norm_layers_2.{i}")), h)?);
        }
        Ok(Self {
            emb,
            attn,
            norm_1,
            ffn,
            norm_2,
            proj: conv1d(&vb.pp("proj"), h, 2 * cfg.inter_channels, 1, 1, 0, true)?,
            hidden: h,
            inter: cfg.inter_channels,
            span: tracing::span!(tracing::Level::TRACE, "text-encoder"),
        })
    }

    /// `ids`: `[1, N]` u32 phoneme ids of one utterance.
    pub fn forward(&self, ids: &Tensor) -> Result<EncoderOutput> {
        self.forward_padded(ids, None)
    }

    /// `ids`: `[B, N]` u32 phoneme ids, padded; item `b` has `lengths[b]` real ones (`None`:
    /// one unpadded utterance).
    pub fn forward_padded(&self, ids: &Tensor, lengths: Option<&[usize]>) -> Result<EncoderOutput> {
        let _enter = self.span.enter();
        let mask = lengths
            .map(|l| sequence_mask(l, ids.dim(1)?, ids.device()))
            .transpose()?;
        let mask = mask.as_ref();
        let x = (self.emb.forward(ids)? * (self.hidden as f64).sqrt())?;
        let mut x = apply_mask(&x.transpose(1, 2)?.contiguous()?, mask)?; // [B, H, N]
        for i in 0..self.attn.len() {
            let y = match lengths {
                Some(lengths) => self.attn[i].forward_padded(&x, lengths)?,
                None => self.attn[i].forward(&x)?,
            };
            x = self.norm_1[i].forward(&(x + y)?)?;
            x = self.norm_2[i].forward(&self.ffn[i].forward_residual(&x, mask)?)?;
        }
        let x = apply_mask(&x, mask)?;
        let stats = apply_mask(&self.proj.forward(&x)?, mask)?;
        Ok(EncoderOutput {
            m_p: stats.narrow(1, 0, self.inter)?,
            logs_p: stats.narrow(1, self.inter, self.inter)?,
            x,
        })
    }
}
