//! GRU, both forms. Gate order (PyTorch): `r, z, n`, each `H` wide in the packed `[3H]` row.
//!
//! `r = σ(·)`, `z = σ(·)`, `h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}`, with
//! - the notes' form (Cho et al. 2014, reset *before* the product):
//!   `n = tanh(W_in x + b_in + W_hn (r ⊙ h_{t-1}) + b_hn)` — the `n` gate needs `r` first,
//!   so a step is two products: `W_{rz} h` for all rows, then `W_hn (r ⊙ h)`;
//! - linear-before-reset (PyTorch, cuDNN, ONNX `linear_before_reset=1`):
//!   `n = tanh(W_in x + b_in + r ⊙ (W_hn h_{t-1} + b_hn))` — one product per step.

use crate::kernels::{activation, backward};

/// Linear-before-reset forward. `gates`: `r,z` summed pre-activations and `n`'s input part
/// (`W_in x + b_in`); `ghn = W_hn h + b_hn`. `gates` become the activated `r,z,n`.
pub fn forward_lbr(gates: &mut [f32], ghn: &[f32], h_prev: &[f32], h: &mut [f32]) {
    activation::gru_lbr_cell(gates, ghn, h_prev, h);
}

/// Linear-before-reset: folds one row of the recurrent product `gh = W_hh h` (`[3H]`)
/// into the gates: `r, z` pre-activations get `gh[..2H]`, and `gh[2H..]` becomes
/// `ghn = W_hn h + b_hn`, which [`forward_lbr`] multiplies by `r`.
pub fn add_hidden_lbr(gates: &mut [f32], gh: &mut [f32], b_hn: &[f32]) {
    let n = b_hn.len();
    for (a, b) in gates[..2 * n].iter_mut().zip(&gh[..2 * n]) {
        *a += b;
    }
    for (v, b) in gh[2 * n..].iter_mut().zip(b_hn) {
        *v += b;
    }
}

/// Linear-before-reset backward. Writes `dgx` (gradient of the input-side pre-activations),
/// `dgh` (of `W_hh h + b_hh`, which differ on the `n` gate by the factor `r`) and
/// `dh_prev = dh ⊙ z`, the part of `∂L/∂h_{t-1}` that does not pass through `W_hh`.
pub fn backward_lbr(
    gates: &[f32],
    ghn: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    dgx: &mut [f32],
    dgh: &mut [f32],
    dh_prev: &mut [f32],
) {
    backward::gru_lbr(gates, ghn, h_prev, dh, dgx, dgh, dh_prev);
}

/// Notes-form forward, first half: `r, z = σ(·)` in place on `gates[..2H]`, and
/// `rh = r ⊙ h_{t-1}`, the operand of the second product `W_hn rh`.
pub fn forward_notes_rz(gates: &mut [f32], h_prev: &[f32], rh: &mut [f32]) {
    let n = h_prev.len();
    activation::sigmoid(&mut gates[..2 * n]);
    for j in 0..n {
        rh[j] = gates[j] * h_prev[j];
    }
}

/// Notes-form forward, second half: `gates[2H..]` holds the whole `n` pre-activation
/// (input part, both biases and `W_hn rh`); it becomes `n` and `h` is written.
pub fn forward_notes_n(gates: &mut [f32], h_prev: &[f32], h: &mut [f32]) {
    let n = h.len();
    let (rz, ng) = gates.split_at_mut(2 * n);
    activation::tanh(ng);
    blend(&rz[n..], ng, h_prev, h);
}

/// Notes-form backward, first half: the `n` gate's pre-activation gradient
/// `dnp = dh ⊙ (1 − z) ⊙ (1 − n²)` into `dpre[2H..]`. The caller then forms
/// `drh = dnp · W_hn` and calls [`backward_notes_rz`].
pub fn backward_notes_n(gates: &[f32], dh: &[f32], dpre: &mut [f32]) {
    backward::gru_notes_n(gates, dh, dpre);
}

/// Notes-form backward, second half, given `drh = ∂L/∂(r ⊙ h_{t-1})`: writes the `r, z`
/// pre-activation gradients into `dpre[..2H]` and `dh_prev = dh ⊙ z + drh ⊙ r`.
pub fn backward_notes_rz(
    gates: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    drh: &[f32],
    dpre: &mut [f32],
    dh_prev: &mut [f32],
) {
    backward::gru_notes_rz(gates, h_prev, dh, drh, dpre, dh_prev);
}

/// `h = (1 − z) ⊙ n + z ⊙ h_prev`.
fn blend(z: &[f32], ng: &[f32], h_prev: &[f32], h: &mut [f32]) {
    for j in 0..h.len() {
        h[j] = ng[j] + z[j] * (h_prev[j] - ng[j]);
    }
}
