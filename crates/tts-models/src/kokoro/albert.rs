//! The PL-BERT text encoder: Hugging Face `AlbertModel` (one shared layer applied
//! `num_hidden_layers` times), returning `last_hidden_state`. Kokoro feeds one unpadded
//! sequence, so the attention mask is all ones and is left out.
//!
//! Reference: `transformers/models/albert/modeling_albert.py`; Kokoro's `CustomAlbert` in
//! hexgrad/kokoro `kokoro/modules.py`.

use candle_core::{Result, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear, Module, VarBuilder};
use serde::Deserialize;

/// `plbert` section of Kokoro's `config.json` (`AlbertConfig` names).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AlbertConfig {
    pub vocab_size: usize,
    #[serde(default = "default_embedding_size")]
    pub embedding_size: usize,
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub num_hidden_layers: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
}

fn default_embedding_size() -> usize {
    128
}

fn default_type_vocab() -> usize {
    2
}

impl Default for AlbertConfig {
    /// Kokoro-82M v1.0.
    fn default() -> Self {
        Self {
            vocab_size: 178,
            embedding_size: 128,
            hidden_size: 768,
            num_attention_heads: 12,
            intermediate_size: 2048,
            max_position_embeddings: 512,
            num_hidden_layers: 12,
            type_vocab_size: 2,
        }
    }
}

/// ALBERT's `LayerNorm` epsilon (`layer_norm_eps`).
const LN_EPS: f64 = 1e-12;

fn layer_norm(size: usize, vb: VarBuilder) -> Result<LayerNorm> {
    candle_nn::layer_norm(size, LN_EPS, vb)
}

#[derive(Debug, Clone)]
struct AlbertLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    attn_norm: LayerNorm,
    ffn: Linear,
    ffn_output: Linear,
    full_norm: LayerNorm,
    heads: usize,
    head_dim: usize,
}

impl AlbertLayer {
    fn load(vb: VarBuilder, cfg: &AlbertConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let att = vb.pp("attention");
        Ok(Self {
            query: candle_nn::linear(h, h, att.pp("query"))?,
            key: candle_nn::linear(h, h, att.pp("key"))?,
            value: candle_nn::linear(h, h, att.pp("value"))?,
            dense: candle_nn::linear(h, h, att.pp("dense"))?,
            attn_norm: layer_norm(h, att.pp("LayerNorm"))?,
            ffn: candle_nn::linear(h, cfg.intermediate_size, vb.pp("ffn"))?,
            ffn_output: candle_nn::linear(cfg.intermediate_size, h, vb.pp("ffn_output"))?,
            full_norm: layer_norm(h, vb.pp("full_layer_layer_norm"))?,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let split = |y: Tensor| -> Result<Tensor> {
            y.reshape((b, t, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        let att = self.attn_norm.forward(&(x + self.dense.forward(&ctx)?)?)?;
        // `gelu_new` (tanh approximation), the AlbertConfig default; candle's `gelu` is the same.
        let f = self.ffn_output.forward(&self.ffn.forward(&att)?.gelu()?)?;
        self.full_norm.forward(&(f + att)?)
    }
}

/// `bert`: embeddings → `embedding_hidden_mapping_in` → shared layer × N.
#[derive(Debug, Clone)]
pub struct Albert {
    word: Embedding,
    position: Embedding,
    token_type: Tensor,
    emb_norm: LayerNorm,
    mapping_in: Linear,
    layer: AlbertLayer,
    n_layers: usize,
    max_positions: usize,
}

impl Albert {
    pub fn load(vb: VarBuilder, cfg: &AlbertConfig) -> Result<Self> {
        let emb = vb.pp("embeddings");
        let e = cfg.embedding_size;
        let word = candle_nn::embedding(cfg.vocab_size, e, emb.pp("word_embeddings"))?;
        let position = candle_nn::embedding(
            cfg.max_position_embeddings,
            e,
            emb.pp("position_embeddings"),
        )?;
        let token_type = emb
            .pp("token_type_embeddings")
            .get((cfg.type_vocab_size, e), "weight")?
            .narrow(0, 0, 1)?;
        let enc = vb.pp("encoder");
        Ok(Self {
            word,
            position,
            token_type,
            emb_norm: layer_norm(e, emb.pp("LayerNorm"))?,
            mapping_in: candle_nn::linear(
                e,
                cfg.hidden_size,
                enc.pp("embedding_hidden_mapping_in"),
            )?,
            layer: AlbertLayer::load(enc.pp("albert_layer_groups.0.albert_layers.0"), cfg)?,
            n_layers: cfg.num_hidden_layers,
            max_positions: cfg.max_position_embeddings,
        })
    }

    /// `ids`: `[1, T]` u32 → `[1, T, hidden]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let t = ids.dim(D::Minus1)?;
        if t > self.max_positions {
            candle_core::bail!("ALBERT input of {t} tokens exceeds {}", self.max_positions);
        }
        let pos = Tensor::arange(0u32, t as u32, ids.device())?.unsqueeze(0)?;
        // token_type_ids are all zero: add row 0 of the type embedding.
        let e = (self.word.forward(ids)? + self.position.forward(&pos)?)?
            .broadcast_add(&self.token_type)?;
        let mut h = self.mapping_in.forward(&self.emb_norm.forward(&e)?)?;
        for _ in 0..self.n_layers {
            h = self.layer.forward(&h)?;
        }
        Ok(h)
    }
}
