//! Layers shared by the models that candle-nn lacks or runs slowly: a bidirectional LSTM with
//! the input projection hoisted out of the time loop, AdaIN / adaptive layer norm with the
//! biased (PyTorch `InstanceNorm1d`) variance, and 1-D convolutions that avoid candle's slow
//! paths (per-group loops, the naive padded transposed convolution).

pub mod adain;
pub mod conv;
pub mod fused;
pub mod lstm;

pub use adain::{instance_norm, AdaIn1d, AdaLayerNorm};
pub use conv::{ConvTranspose1d, DepthwiseUpsample2x};
pub use fused::{Activation, AdaInParams, FusedConv1d};
pub use lstm::BiLstm;
