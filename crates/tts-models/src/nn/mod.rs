//! Layers shared by the models that candle-nn lacks or runs slowly: a bidirectional LSTM with
//! the input projection hoisted out of the time loop, AdaIN / adaptive layer norm with the
//! biased (PyTorch `InstanceNorm1d`) variance, and 1-D convolutions that avoid candle's slow
//! paths (per-group loops, the naive padded transposed convolution).

pub mod adain;
pub mod conv;
pub mod fused;
pub mod lstm;
pub mod stft;

pub use adain::{instance_norm, AdaIn1d, AdaLayerNorm};
pub use conv::{conv_transpose1d_polyphase, ConvTranspose1d, DepthwiseUpsample2x};
pub use fused::{Activation, AdaInParams, FusedConv1d};
pub use lstm::BiLstm;
pub use stft::{atan2, reflect_pad1d, upsample_linear, upsample_nearest, Stft};

use std::cell::Cell;

use candle_core::{DType, Tensor};

thread_local! {
    static GENERIC_OPS: Cell<bool> = const { Cell::new(false) };
    static DIFFERENTIABLE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the backend-agnostic candle ops even on the CPU, the path GPUs take. Tests use
/// it to check that path against the CPU fast paths; it applies to the calling thread only.
pub fn with_generic_ops<R>(f: impl FnOnce() -> R) -> R {
    let before = GENERIC_OPS.with(|g| g.replace(true));
    let out = f();
    GENERIC_OPS.with(|g| g.set(before));
    out
}

/// Runs `f` with ops that candle can back-propagate through: the generic ops, with transposed
/// convolutions (which have no backward in candle) as polyphase convolutions. Voice cloning
/// uses it to take gradients of the decoder with respect to the style vector.
pub fn with_differentiable_ops<R>(f: impl FnOnce() -> R) -> R {
    let before = DIFFERENTIABLE.with(|d| d.replace(true));
    let out = with_generic_ops(f);
    DIFFERENTIABLE.with(|d| d.set(before));
    out
}

/// Whether [`with_differentiable_ops`] is in force on this thread.
pub fn differentiable_ops() -> bool {
    DIFFERENTIABLE.with(Cell::get)
}

/// Whether `x` may take a CPU fast path: f32 on the CPU, generic ops not forced.
pub fn cpu_fast_path(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && !GENERIC_OPS.with(Cell::get)
}

/// Logs once per call site that a step of the graph runs on the host for a non-CPU tensor.
#[macro_export]
macro_rules! log_host_fallback {
    ($what:expr) => {{
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            tracing::info!(
                step = $what,
                "runs on the host (device data copied to the CPU and back)"
            )
        });
    }};
}
