//! LSTM. Gate order (PyTorch): `i, f, g, o`, each `H` wide in the packed `[4H]` row.
//!
//! `i,f,o = σ(·)`, `g = tanh(·)`, `c_t = f ⊙ c_{t-1} + i ⊙ g`, `h_t = o ⊙ tanh(c_t)`.

use crate::kernels::activation;

/// `gates` (`[4H]` pre-activations) become the activated `i,f,g,o`; writes `c` and `h`.
/// One fused SIMD pass (`kernels::activation::lstm_cell`).
pub fn forward(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    activation::lstm_cell(gates, c_prev, c, h);
}

/// Backward through one step. `dh` is the total gradient reaching `h_t`; `dc` holds the
/// gradient reaching `c_t` from step `t+1` and is replaced by the gradient for `c_{t-1}`.
/// `tc` is scratch (`[H]`). Writes `dpre` (`[4H]`).
pub fn backward(
    gates: &[f32],
    c_prev: &[f32],
    c: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    tc: &mut [f32],
    dpre: &mut [f32],
) {
    let n = c.len();
    tc.copy_from_slice(c);
    activation::tanh(tc);
    let (i, rest) = gates.split_at(n);
    let (f, rest) = rest.split_at(n);
    let (g, o) = rest.split_at(n);
    let (di, rest) = dpre.split_at_mut(n);
    let (df, rest) = rest.split_at_mut(n);
    let (dg, dout) = rest.split_at_mut(n);
    for j in 0..n {
        let t = tc[j];
        let dct = dc[j] + dh[j] * o[j] * (1.0 - t * t);
        dout[j] = dh[j] * t * o[j] * (1.0 - o[j]);
        di[j] = dct * g[j] * i[j] * (1.0 - i[j]);
        df[j] = dct * c_prev[j] * f[j] * (1.0 - f[j]);
        dg[j] = dct * i[j] * (1.0 - g[j] * g[j]);
        dc[j] = dct * f[j];
    }
}
