//! LSTM. Gate order (PyTorch): `i, f, g, o`, each `H` wide in the packed `[4H]` row.
//!
//! `i,f,o = σ(·)`, `g = tanh(·)`, `c_t = f ⊙ c_{t-1} + i ⊙ g`, `h_t = o ⊙ tanh(c_t)`.

use crate::kernels::{activation, backward};

/// `gates` (`[4H]` pre-activations) become the activated `i,f,g,o`; writes `c` and `h`.
/// One fused SIMD pass (`kernels::activation::lstm_cell`).
pub fn forward(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    activation::lstm_cell(gates, c_prev, c, h);
}

/// Backward through one step. `dh` is the total gradient reaching `h_t`; `dc` holds the
/// gradient reaching `c_t` from step `t+1` and is replaced by the gradient for `c_{t-1}`.
/// `tc` is scratch (`[H]`): it receives `tanh(c_t)`. Writes `dpre` (`[4H]`). One SIMD
/// tanh pass, then one fused SIMD pass (`kernels::backward::lstm`).
pub fn backward(
    gates: &[f32],
    c_prev: &[f32],
    c: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    tc: &mut [f32],
    dpre: &mut [f32],
) {
    tc.copy_from_slice(c);
    activation::tanh(tc);
    backward::lstm(gates, c_prev, tc, dh, dc, dpre);
}
