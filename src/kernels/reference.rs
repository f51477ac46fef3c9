//! Plain scalar activations: the spec every vectorized kernel is tested against.
//!
//! The `*_ref` functions are the obvious formulas in `f32` on top of `std`'s `exp` and
//! `tanh`; the `*_f64` functions are the same formulas in `f64`, the "exact" values the
//! `f32` kernels are measured against (and what an `f64` gradient check should use).
//!
//! The contract every tier of [`super::activation`] meets, checked in its tests: the
//! absolute error against the `f64` value is at most `MAX_ABS_ERROR` for every `f32`
//! input; NaN gives NaN; `±∞` give the limits (`0`/`1` for sigmoid, `∓1`/`±1` for tanh).

/// The largest absolute error, against [`sigmoid_f64`] and [`tanh_f64`], that any
/// activation kernel may have on any `f32` input.
#[cfg(test)] // only the tests measure against the f64 truth
pub const MAX_ABS_ERROR: f64 = 1e-6;

/// The logistic sigmoid `1 / (1 + exp(-x))` in `f64`.
#[cfg(test)] // only the tests measure against the f64 truth
pub fn sigmoid_f64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The hyperbolic tangent in `f64`.
#[cfg(test)] // only the tests measure against the f64 truth
pub fn tanh_f64(x: f64) -> f64 {
    x.tanh()
}

/// The logistic sigmoid `1 / (1 + exp(-x))` in `f32`.
///
/// For `x < -88.7`, `exp(-x)` overflows to `+∞` and the result is `0`: the correct limit.
pub fn sigmoid_ref(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The hyperbolic tangent in `f32` (`std`'s `tanhf`).
pub fn tanh_ref(x: f32) -> f32 {
    x.tanh()
}

/// `x <- sigmoid_ref(x)` elementwise.
pub fn sigmoid_ref_slice(x: &mut [f32]) {
    for v in x {
        *v = sigmoid_ref(*v);
    }
}

/// `x <- tanh_ref(x)` elementwise.
pub fn tanh_ref_slice(x: &mut [f32]) {
    for v in x {
        *v = tanh_ref(*v);
    }
}

/// The LSTM pointwise pass, the spec of the fused kernels: `gates` (`[4n]`, pre-activations
/// `i, f, g, o`) become `σ(i), σ(f), tanh(g), σ(o)`; `c = f⊙c_prev + i⊙g`;
/// `h = o⊙tanh(c)`.
pub fn lstm_cell_ref(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    let n = c.len();
    for j in 0..n {
        let i = sigmoid_ref(gates[j]);
        let f = sigmoid_ref(gates[n + j]);
        let g = tanh_ref(gates[2 * n + j]);
        let o = sigmoid_ref(gates[3 * n + j]);
        c[j] = f * c_prev[j] + i * g;
        h[j] = o * tanh_ref(c[j]);
        gates[j] = i;
        gates[n + j] = f;
        gates[2 * n + j] = g;
        gates[3 * n + j] = o;
    }
}

/// The linear-before-reset GRU pointwise pass, the spec of the fused kernels: `gates`
/// (`[3n]`: `r, z` pre-activations and the input part of `n`) become `r, z, n` with
/// `n = tanh(gates_n + r⊙ghn)`; `h = n + z⊙(h_prev − n)` (= `(1−z)⊙n + z⊙h_prev`).
pub fn gru_lbr_cell_ref(gates: &mut [f32], ghn: &[f32], h_prev: &[f32], h: &mut [f32]) {
    let n = h.len();
    for j in 0..n {
        let r = sigmoid_ref(gates[j]);
        let z = sigmoid_ref(gates[n + j]);
        let nv = tanh_ref(gates[2 * n + j] + r * ghn[j]);
        h[j] = nv + z * (h_prev[j] - nv);
        gates[j] = r;
        gates[n + j] = z;
        gates[2 * n + j] = nv;
    }
}

/// Below this magnitude a streaming state value is stored as zero. Without it, a state
/// decaying in silence passes through the subnormal range, where x86 arithmetic is many
/// times slower (the audio-plugin "denormal" stall). 1e-30 is far below anything
/// audible or any meaningful activation, and far enough above `f32::MIN_POSITIVE`
/// (1.2e-38) that products with weights stay normal.
pub const FLUSH_BELOW: f32 = 1e-30;

/// `v`, or 0 where `|v| <` [`FLUSH_BELOW`] (NaN stays).
#[inline]
pub fn flush_ref(v: f32) -> f32 {
    if v.abs() < FLUSH_BELOW {
        0.0
    } else {
        v
    }
}

/// The streaming LSTM update in place, the spec of the fused state kernels: `gates`
/// (`[4n]` pre-activations) are read only; `c <- flush(f⊙c + i⊙g)` and
/// `h <- flush(o⊙tanh(f⊙c + i⊙g))` (`h` from the value before the flush).
pub fn lstm_state_ref(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    let n = c.len();
    for j in 0..n {
        let i = sigmoid_ref(gates[j]);
        let f = sigmoid_ref(gates[n + j]);
        let g = tanh_ref(gates[2 * n + j]);
        let o = sigmoid_ref(gates[3 * n + j]);
        let cv = f * c[j] + i * g;
        h[j] = flush_ref(o * tanh_ref(cv));
        c[j] = flush_ref(cv);
    }
}

/// The streaming linear-before-reset GRU update in place: `gates` (`[3n]`: biases and
/// input parts, `r, z` with both biases, `n` with `b_in`) and `gh = W_hh h` (`[3n]`) are
/// read only; `r = σ(gates_r + gh_r)`, `z = σ(gates_z + gh_z)`,
/// `n = tanh(gates_n + r⊙(gh_n + b_hn))`, `h <- flush(n + z⊙(h − n))`.
pub fn gru_lbr_state_ref(gates: &[f32], gh: &[f32], b_hn: &[f32], h: &mut [f32]) {
    let n = h.len();
    for j in 0..n {
        let r = sigmoid_ref(gates[j] + gh[j]);
        let z = sigmoid_ref(gates[n + j] + gh[n + j]);
        let nv = tanh_ref(gates[2 * n + j] + r * (gh[2 * n + j] + b_hn[j]));
        h[j] = flush_ref(nv + z * (h[j] - nv));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, f: fn(f32) -> f32, exact: fn(f64) -> f64, x: f32) {
        let (got, want) = (f(x), exact(x as f64));
        let err = (got as f64 - want).abs();
        assert!(
            err <= MAX_ABS_ERROR,
            "{name}({x:e}) = {got:e}, want {want:e} (error {err:e})"
        );
    }

    #[test]
    fn reference_meets_the_contract_on_a_sweep() {
        let mut x = -30.0f32;
        while x <= 30.0 {
            check("sigmoid_ref", sigmoid_ref, sigmoid_f64, x);
            check("tanh_ref", tanh_ref, tanh_f64, x);
            x += 1.0 / 512.0;
        }
        for x in [88.0, 100.0, 1e30, f32::MAX, f32::INFINITY] {
            for x in [x, -x] {
                check("sigmoid_ref", sigmoid_ref, sigmoid_f64, x);
                check("tanh_ref", tanh_ref, tanh_f64, x);
            }
        }
    }

    #[test]
    fn reference_limits_and_nan() {
        assert_eq!(sigmoid_ref(f32::INFINITY), 1.0);
        assert_eq!(sigmoid_ref(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid_ref(-100.0), 0.0);
        assert_eq!(tanh_ref(f32::INFINITY), 1.0);
        assert_eq!(tanh_ref(f32::NEG_INFINITY), -1.0);
        assert!(sigmoid_ref(f32::NAN).is_nan());
        assert!(tanh_ref(f32::NAN).is_nan());
        assert!(sigmoid_f64(f64::NAN).is_nan());
        assert_eq!(sigmoid_f64(0.0), 0.5);
    }

    #[test]
    fn slice_versions_apply_the_scalar_function() {
        let xs = [-3.0f32, -0.5, 0.0, 0.25, 7.0];
        let (mut s, mut t) = (xs, xs);
        sigmoid_ref_slice(&mut s);
        tanh_ref_slice(&mut t);
        for i in 0..xs.len() {
            assert_eq!(s[i], sigmoid_ref(xs[i]));
            assert_eq!(t[i], tanh_ref(xs[i]));
        }
    }
}
