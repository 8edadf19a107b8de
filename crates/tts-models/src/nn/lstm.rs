//! Single-layer bidirectional LSTM (PyTorch `nn.LSTM(bidirectional=True, batch_first=True)`).
//!
//! candle's `LSTM` is one direction only and projects the input at every step. Here the input
//! projection of both directions is one matmul over the whole sequence; only the small
//! recurrent mat-vec stays in the time loop, which runs on the host because per-step kernel
//! launches would dominate it. The two directions run on two threads.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

/// Gate order is PyTorch's (i, f, g, o); biases `b_ih + b_hh` are folded into one.
#[derive(Debug, Clone)]
pub struct BiLstm {
    /// `[8H, in]`: forward rows then reverse rows.
    w_ih: Tensor,
    /// `[8H]`: summed biases, forward then reverse.
    bias: Tensor,
    /// Row-major `[4H, H]` recurrent weights per direction.
    w_hh: [Vec<f32>; 2],
    hidden: usize,
}

impl BiLstm {
    /// Loads `weight_ih_l0{,_reverse}`, `weight_hh_l0{,_reverse}`, `bias_ih_l0{,_reverse}`,
    /// `bias_hh_l0{,_reverse}` from `vb`.
    pub fn load(vb: VarBuilder, input: usize, hidden: usize) -> Result<Self> {
        let mut w_ih = Vec::with_capacity(2);
        let mut bias = Vec::with_capacity(2);
        let mut w_hh: [Vec<f32>; 2] = [Vec::new(), Vec::new()];
        for (d, sfx) in ["", "_reverse"].iter().enumerate() {
            w_ih.push(vb.get((4 * hidden, input), &format!("weight_ih_l0{sfx}"))?);
            let hh = vb.get((4 * hidden, hidden), &format!("weight_hh_l0{sfx}"))?;
            w_hh[d] = hh.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            let b_ih = vb.get(4 * hidden, &format!("bias_ih_l0{sfx}"))?;
            let b_hh = vb.get(4 * hidden, &format!("bias_hh_l0{sfx}"))?;
            bias.push((b_ih + b_hh)?);
        }
        Ok(Self {
            w_ih: Tensor::cat(&w_ih, 0)?,
            bias: Tensor::cat(&bias, 0)?,
            w_hh,
            hidden,
        })
    }

    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// `x`: `[1, T, in]` → `[1, T, 2H]` (forward outputs, then reverse outputs, per step).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        if b != 1 {
            candle_core::bail!("BiLstm expects batch 1, got {b}");
        }
        let h = self.hidden;
        if !x.device().is_cpu() {
            // Deliberate: T sequential steps of ~8 tiny kernels each cost more in launches than
            // one copy of the [T, 8H] projections to the host and back.
            crate::log_host_fallback!("BiLSTM recurrence");
        }
        // [T, 8H] pre-activations of every step, both directions.
        let pre = x
            .squeeze(0)?
            .matmul(&self.w_ih.t()?)?
            .broadcast_add(&self.bias)?
            .to_dtype(DType::F32)?;
        let pre: Vec<f32> = pre.flatten_all()?.to_vec1()?;
        let mut out = vec![0f32; t * 2 * h];
        {
            let (fwd, rev) = split_directions(&mut out, t, h);
            std::thread::scope(|s| {
                let pre = &pre;
                s.spawn(move || recur(pre, &self.w_hh[0], t, h, 0, false, fwd));
                recur(pre, &self.w_hh[1], t, h, 1, true, rev);
            });
        }
        let out = Tensor::from_vec(out, (2, t, h), x.device())?;
        // [2, T, H] → [1, T, 2H]
        out.permute((1, 0, 2))?
            .reshape((1, t, 2 * h))?
            .to_dtype(x.dtype())
    }
}

/// Splits `[2, T, H]` storage into the forward and reverse halves.
fn split_directions(out: &mut [f32], t: usize, h: usize) -> (&mut [f32], &mut [f32]) {
    out.split_at_mut(t * h)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Runs one direction over the precomputed input projections `pre` (`[T, 8H]`).
fn recur(
    pre: &[f32],
    w_hh: &[f32],
    t: usize,
    h: usize,
    dir: usize,
    reverse: bool,
    out: &mut [f32],
) {
    let mut hs = vec![0f32; h];
    let mut cs = vec![0f32; h];
    let mut gates = vec![0f32; 4 * h];
    for step in 0..t {
        let ti = if reverse { t - 1 - step } else { step };
        let p = &pre[ti * 8 * h + dir * 4 * h..ti * 8 * h + (dir + 1) * 4 * h];
        for (r, g) in gates.iter_mut().enumerate() {
            *g = p[r] + dot(&w_hh[r * h..(r + 1) * h], &hs);
        }
        for j in 0..h {
            let i = sigmoid(gates[j]);
            let f = sigmoid(gates[h + j]);
            let g = gates[2 * h + j].tanh();
            let o = sigmoid(gates[3 * h + j]);
            cs[j] = f * cs[j] + i * g;
            hs[j] = o * cs[j].tanh();
        }
        out[ti * h..(ti + 1) * h].copy_from_slice(&hs);
    }
}

/// Dot product with eight independent accumulators so the compiler vectorises it.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use std::collections::HashMap;

    fn naive_dir(
        x: &[Vec<f32>],
        wih: &[f32],
        whh: &[f32],
        b: &[f32],
        h: usize,
        rev: bool,
    ) -> Vec<Vec<f32>> {
        let t = x.len();
        let inp = x[0].len();
        let mut hs = vec![0f32; h];
        let mut cs = vec![0f32; h];
        let mut out = vec![vec![0f32; h]; t];
        let order: Vec<usize> = if rev {
            (0..t).rev().collect()
        } else {
            (0..t).collect()
        };
        for ti in order {
            let mut z = vec![0f32; 4 * h];
            for r in 0..4 * h {
                let mut s = b[r];
                for k in 0..inp {
                    s += wih[r * inp + k] * x[ti][k];
                }
                for k in 0..h {
                    s += whh[r * h + k] * hs[k];
                }
                z[r] = s;
            }
            for j in 0..h {
                cs[j] = sigmoid(z[h + j]) * cs[j] + sigmoid(z[j]) * z[2 * h + j].tanh();
                hs[j] = sigmoid(z[3 * h + j]) * cs[j].tanh();
            }
            out[ti] = hs.clone();
        }
        out
    }

    #[test]
    fn bilstm_matches_step_by_step_pytorch_semantics() -> Result<()> {
        let dev = Device::Cpu;
        let (inp, h, t) = (5, 3, 7);
        let mut map = HashMap::new();
        let mut vals = HashMap::new();
        let mut seed = 1u32;
        let mut rnd = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
                .collect()
        };
        for sfx in ["", "_reverse"] {
            for (name, n, shape) in [
                ("weight_ih_l0", 4 * h * inp, vec![4 * h, inp]),
                ("weight_hh_l0", 4 * h * h, vec![4 * h, h]),
                ("bias_ih_l0", 4 * h, vec![4 * h]),
                ("bias_hh_l0", 4 * h, vec![4 * h]),
            ] {
                let v = rnd(n);
                map.insert(
                    format!("{name}{sfx}"),
                    Tensor::from_vec(v.clone(), shape, &dev)?,
                );
                vals.insert(format!("{name}{sfx}"), v);
            }
        }
        let vb = VarBuilder::from_tensors(map, DType::F32, &dev);
        let lstm = BiLstm::load(vb, inp, h)?;
        let xv: Vec<Vec<f32>> = (0..t).map(|_| rnd(inp)).collect();
        let x = Tensor::from_vec(xv.concat(), (1, t, inp), &dev)?;
        let y: Vec<Vec<f32>> = lstm.forward(&x)?.squeeze(0)?.to_vec2()?;
        for (d, sfx) in ["", "_reverse"].iter().enumerate() {
            let b: Vec<f32> = vals[&format!("bias_ih_l0{sfx}")]
                .iter()
                .zip(&vals[&format!("bias_hh_l0{sfx}")])
                .map(|(a, b)| a + b)
                .collect();
            let want = naive_dir(
                &xv,
                &vals[&format!("weight_ih_l0{sfx}")],
                &vals[&format!("weight_hh_l0{sfx}")],
                &b,
                h,
                d == 1,
            );
            for ti in 0..t {
                for j in 0..h {
                    let got = y[ti][d * h + j];
                    assert!(
                        (got - want[ti][j]).abs() < 1e-5,
                        "t={ti} d={d} j={j}: {got} vs {}",
                        want[ti][j]
                    );
                }
            }
        }
        Ok(())
    }
}
