//! x86-64 activation kernels: [`avx2`] (AVX2 + FMA, 8 lanes) and [`avx512`] (AVX-512F,
//! 16 lanes). Every function here is `#[target_feature]`; the only caller is the
//! dispatcher in [`super::activation`], which calls a tier's functions only after
//! detecting its features at run time.
//!
//! Both files compute the same thing in the same order, lane for lane:
//!
//! - `tanh(x) = x·P(x²)/Q(x²)`, `P` and `Q` of degree 4 ([`TANH_P`], [`TANH_Q`],
//!   `P(0) = Q(0) = 1`), fitted by `scripts/fit_tanh.py` (weighted minimax on
//!   `[0, 9.01]`: 2.0e-8 in `f64`; the `f32` evaluation brings the measured maximum to
//!   the figures in `activation.rs`). Each of `P` and `Q` is two FMAs in `y = x²` and
//!   one in `y²` (Estrin's scheme: three dependent operations after `y`), and the
//!   numerator is `x·P(y)`. Every step is odd or even in `x` exactly, so the result is
//!   odd bit for bit and carries the sign of `x` (−0 included) with no sign handling.
//!   Near 0, `x·(1 + O(x²))` keeps the relative accuracy of tanh without a second
//!   formula.
//! - `sigmoid(x) = 1/2 + tanh(x/2)/2`, from the same rational: halving the argument and
//!   the value only scales the coefficients by powers of two ([`SIGMOID_P`],
//!   [`SIGMOID_Q`], exact), so the quotient `n/d ≈ tanh(x/2)/2` costs what `tanh` costs,
//!   and `1/2` goes into the numerator, `(n + d/2)/d`, one FMA beside the reciprocal.
//!   Accuracy is absolute: a tiny sigmoid (`x < −17`) comes out as a difference from
//!   1/2, with an error of about 3e-8 on its value.
//! - Limits: from where the `f32` function rounds to its limit ([`TANH_ONE_FROM`],
//!   [`SIGMOID_ONE_FROM`]; `±∞` included) the result is exactly ±1 (sigmoid 1 or 0), and
//!   rounding can leave a quotient an ulp outside the range below that, so it is held
//!   to it. Each function has two forms that give the same bits (a test compares them
//!   on 44 million inputs and the edges):
//!   - for throughput (`sigmoid_v`, `tanh_v`: batched rows, training, long slices):
//!     `x` is clamped to `±limit` first, where the rationals are exactly at their limits
//!     (checked at the constants), and the quotient held to the range by `min`/`max`;
//!     four operations in all.
//!   - for a dependency chain (`*_chain`: a single stream's steps, short slices): the
//!     polynomials run on `x` unclamped, the quotient is held to the range by one-cycle
//!     integer operations on its bits, and the lanes from the limit on are replaced by a
//!     mask computed beside the chain. Three more operations, but only three cycles
//!     after the division instead of sixteen before and after it.
//! - NaN: `min`/`max` with the constant first return their second operand when either is
//!   NaN, so both clamps pass it; the chain form's mask compares unordered, and takes
//!   the NaN from its limit expression.
//! - The rational form is what a single stream's step waits on: on the development
//!   machine (AVX-512, 16-lane vectors) a dependent chain of `tanh` takes about 42
//!   cycles and of `sigmoid` 43 (11 ns each), where the `expm1`-based formulas they
//!   replace (Cephes' `expf` polynomial after a Cody–Waite reduction, then a division)
//!   took 59 (16 ns); the LSTM update has two of them in a row (measured before the
//!   split into two forms; the chain form is one operation shorter on the chain since).
//!   Instruction count matters as much: 512-bit operations issue on two ports, and the
//!   gate activations of a batch of rows are bound by their count, which the
//!   throughput form cuts from 26 to 20 operations (sigmoid) and 23 to 19 (tanh) on AVX-512.
//! - The divisions: AVX-512 takes the estimate `vrcp14ps` (relative error below 2^-14)
//!   and one Newton step on the quotient, `y + y·(1 − d·r)` with `y = num·r`, because a
//!   512-bit division issues only every 10-16 cycles and the LSTM cell needs five per 16
//!   units; AVX2 divides (`vdivps` on 8 lanes issues every ~5 cycles, and the AVX
//!   `rcpps` estimate differs between vendors). So the two tiers agree to an ulp or two,
//!   not bit for bit.

pub(crate) mod avx2;
pub(crate) mod avx512;
/// Backward pointwise kernels (AVX2 + FMA); dispatched by `kernels::backward`.
pub(crate) mod backward_avx2;
/// Backward pointwise kernels (AVX-512F); dispatched by `kernels::backward`.
pub(crate) mod backward_avx512;

/// The input side of a fused stream kernel: `steps` rows of `k` inputs, `W_ihᵀ` packed
/// as one group (row stride `ldb`), the bias of every gate.
#[derive(Clone, Copy)]
pub(crate) struct StreamInput {
    pub x: *const f32,
    pub k: usize,
    pub w: *const f32,
    pub ldb: usize,
    pub bias: *const f32,
}

/// Streaming state values below this magnitude are stored as zero.
pub(crate) use super::reference::FLUSH_BELOW;
/// The smallest `f32` whose `tanh` rounds to 1 in `f32` (`scripts/fit_tanh.py`).
pub(crate) const TANH_ONE_FROM: f32 = 9.010_914;
/// The smallest `f32` whose sigmoid rounds to 1 in `f32`.
pub(crate) const SIGMOID_ONE_FROM: f32 = 17.328_68;
/// The bits of `1.0f32`.
pub(crate) const ONE_BITS: i32 = 0x3f80_0000;
/// The bits of `-1.0f32`, as a signed integer.
pub(crate) const MINUS_ONE_BITS: i32 = 0xbf80_0000_u32 as i32;
/// `tanh(a) ≈ a·P(a²)/Q(a²)` on `[0, TANH_ONE_FROM]`: `P`'s coefficients, constant first.
pub(crate) const TANH_P: [f32; 5] = [
    1.0,
    0.133_789_82,
    0.003_493_199_6,
    2.057_133_1e-5,
    1.330_529_1e-8,
];
/// ... and `Q`'s.
pub(crate) const TANH_Q: [f32; 5] = [
    1.0,
    0.467_122_97,
    0.025_867_796,
    3.281_795_4e-4,
    7.755_731e-7,
];
/// `tanh(a/2)/2 ≈ a·P'(a²)/Q'(a²)`: `P'ₖ = Pₖ/(4·4^k)` (one half from the argument,
/// one from the value) ...
pub(crate) const SIGMOID_P: [f32; 5] = scaled(TANH_P, 0.25);
/// ... and `Q'ₖ = Qₖ/4^k`. Scaling by powers of two is exact.
pub(crate) const SIGMOID_Q: [f32; 5] = scaled(TANH_Q, 1.0);

/// `c[k]·first/4^k`.
const fn scaled(c: [f32; 5], first: f32) -> [f32; 5] {
    [
        c[0] * first,
        c[1] * first / 4.0,
        c[2] * first / 16.0,
        c[3] * first / 64.0,
        c[4] * first / 256.0,
    ]
}

/// What the tiers' tests share: inputs for comparing an activation's two forms (for a
/// dependency chain and for throughput), which must agree bit for bit.
#[cfg(test)]
pub(crate) mod forms {
    use super::{SIGMOID_ONE_FROM, TANH_ONE_FROM};

    /// Every 97th `f32` bit pattern (44 million, both signs, NaNs included), then the
    /// limits, the floats beside them, infinities, zeros and NaNs of both signs.
    pub(crate) fn inputs() -> Vec<f32> {
        let mut xs: Vec<f32> = (0..u32::MAX / 97).map(|i| f32::from_bits(i * 97)).collect();
        for l in [TANH_ONE_FROM, SIGMOID_ONE_FROM, 1.0] {
            let near = [l.next_down(), l, l.next_up()];
            xs.extend(near.iter().flat_map(|&v| [v, -v]));
        }
        xs.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
        ]);
        xs.extend([f32::MAX, f32::MIN, f32::MIN_POSITIVE, -1e-45]);
        xs
    }

    /// Asserts `a` and `b` (one form's outputs each for `xs`) equal bit for bit, NaN
    /// where either is NaN.
    pub(crate) fn assert_same(name: &str, xs: &[f32], a: &[f32], b: &[f32]) {
        for ((&x, &p), &q) in xs.iter().zip(a).zip(b) {
            if p.is_nan() || q.is_nan() {
                assert!(p.is_nan() && q.is_nan(), "{name}({x:e}): {p:e} vs {q:e}");
            } else {
                assert_eq!(p.to_bits(), q.to_bits(), "{name}({x:e}): {p:e} vs {q:e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_coefficients_are_the_tanh_ones_scaled_exactly() {
        for k in 0..5 {
            let s = 4f64.powi(k as i32);
            assert_eq!(SIGMOID_P[k] as f64, TANH_P[k] as f64 / (4.0 * s));
            assert_eq!(SIGMOID_Q[k] as f64, TANH_Q[k] as f64 / s);
        }
    }

    #[test]
    fn the_limits_are_where_the_functions_round_to_one() {
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        for (from, f) in [
            (TANH_ONE_FROM, f64::tanh as fn(f64) -> f64),
            (SIGMOID_ONE_FROM, sigmoid),
        ] {
            let below = f32::from_bits(from.to_bits() - 1);
            assert_eq!(f(from as f64) as f32, 1.0);
            assert!((f(below as f64) as f32) < 1.0);
        }
        assert_eq!(ONE_BITS, 1.0f32.to_bits() as i32);
    }
}
