//! x86-64 activation kernels: [`avx2`] (AVX2 + FMA, 8 lanes) and [`avx512`] (AVX-512F,
//! 16 lanes). Every function here is `#[target_feature]`; the only caller is the
//! dispatcher in [`super::activation`], which calls a tier's functions only after
//! detecting its features at run time.
//!
//! Both files compute the same thing in the same order, lane for lane:
//!
//! - `exp(z)` for `z` clamped to `[EXP_MIN, EXP_MAX]`: `z = n·ln2 + r` with
//!   `n = round(z·log2 e)` and `|r| <= ln2/2` (Cody–Waite: `ln2` split in two, each
//!   product taken with an FMA), `exp(r) ≈ 1 + r + r²·P(r)` (Cephes `expf`, degree 5),
//!   then scaled by `2^n`, built in the exponent field. The clamp keeps `n` in
//!   `[-126, 128]`: `2^n` is normal, except that `n = 128` is `+∞`, so `exp` overflows
//!   to `+∞` (for `z > 127.5·ln2 ≈ 88.38`, a little before `f32` itself must).
//! - `sigmoid(x) = 1 / (1 + exp(-x))`, an exact (IEEE) division: `x → -∞` gives
//!   `1/∞ = 0` exactly, `x → +∞` gives `1/(1 + 1.6e-38) = 1` exactly.
//! - `tanh(x) = sign(x) · t(|x|)`, where for `a = |x| < 0.625`
//!   `t(a) = a + a³·Q(a²)` (Cephes `tanhf`, an odd polynomial: relative accuracy near
//!   0, where `1 - 2/(e+1)` would cancel), and otherwise `t(a) = 1 - 2/(exp(2a) + 1)`.
//! - NaN propagates through the clamps: `min`/`max` return their second operand when
//!   either is NaN, and the clamp constants are always the first.

// The coefficients are Cephes' digits as published, so they can be checked against it.
#![allow(clippy::excessive_precision)]

pub(crate) mod avx2;
pub(crate) mod avx512;
/// Backward pointwise kernels (AVX2 + FMA); dispatched by `kernels::backward`.
pub(crate) mod backward_avx2;
/// Backward pointwise kernels (AVX-512F); dispatched by `kernels::backward`.
pub(crate) mod backward_avx512;

/// `exp`'s argument is clamped to `[EXP_MIN, EXP_MAX]`, so that `n = round(z·log2 e)`
/// is in `[-126, 128]`: `exp(EXP_MIN) ≈ 1.6e-38` is still a normal `f32`, and
/// `n = 128` (`z > 88.38`) makes the scale `+∞` (exponent field all ones).
pub(crate) const EXP_MIN: f32 = -87.0;
/// See [`EXP_MIN`].
pub(crate) const EXP_MAX: f32 = 89.0;
/// `log2(e)`.
pub(crate) const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` rounded to `f32`, ...
pub(crate) const LN2_HI: f32 = std::f32::consts::LN_2;
/// ... and the rest: `ln 2 - LN2_HI` (`-1.9046543e-9`).
pub(crate) const LN2_LO: f32 = -1.904_654_299_957_768e-9;
/// Cephes `expf`: `exp(r) ≈ 1 + r + r²·(((((P0·r + P1)·r + P2)·r + P3)·r + P4)·r + P5)`.
pub(crate) const EXP_P0: f32 = 1.987_569_15e-4;
pub(crate) const EXP_P1: f32 = 1.398_199_950_7e-3;
pub(crate) const EXP_P2: f32 = 8.333_451_907_3e-3;
pub(crate) const EXP_P3: f32 = 4.166_579_589_4e-2;
pub(crate) const EXP_P4: f32 = 1.666_666_545_9e-1;
pub(crate) const EXP_P5: f32 = 5.000_000_120_1e-1;

/// Below this `|x|`, tanh uses the odd polynomial.
pub(crate) const TANH_SMALL: f32 = 0.625;
/// Cephes `tanhf`: `tanh(a) ≈ a + a·z·((((Q0·z + Q1)·z + Q2)·z + Q3)·z + Q4)`, `z = a²`.
pub(crate) const TANH_Q0: f32 = -5.704_988_727_45e-3;
pub(crate) const TANH_Q1: f32 = 2.063_908_879_54e-2;
pub(crate) const TANH_Q2: f32 = -5.373_971_555_31e-2;
pub(crate) const TANH_Q3: f32 = 1.333_144_220_36e-1;
pub(crate) const TANH_Q4: f32 = -3.333_328_194_22e-1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln2_split_is_exact_enough() {
        let sum = LN2_HI as f64 + LN2_LO as f64;
        assert!((sum - std::f64::consts::LN_2).abs() < 1e-15);
    }

    #[test]
    fn exp_clamp_keeps_the_scale_in_range() {
        // n + 127 must fit the 8-bit exponent field: 1..=254 normal, 255 = +inf.
        assert_eq!((EXP_MIN * LOG2E).round(), -126.0);
        assert_eq!((EXP_MAX * LOG2E).round(), 128.0);
        assert!((EXP_MIN as f64).exp() > f32::MIN_POSITIVE as f64);
    }
}
