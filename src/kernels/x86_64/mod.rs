//! x86-64 activation kernels: [`avx2`] (AVX2 + FMA, 8 lanes) and [`avx512`] (AVX-512F,
//! 16 lanes). Every function here is `#[target_feature]`; the only caller is the
//! dispatcher in [`super::activation`], which calls a tier's functions only after
//! detecting its features at run time.
//!
//! Both files compute the same thing in the same order, lane for lane:
//!
//! - `exp(z)`, only ever for `z <= 0`, clamped below at [`EXP_MIN`]: `z = n·ln2 + r`
//!   with `n = round(z·log2 e)` (one FMA adding `1.5·2^23`, which leaves `n` in the low
//!   mantissa bits) and `|r| <= ln2/2` (Cody–Waite: `ln2` split in two, each
//!   product taken with an FMA), `expm1(r) ≈ q = r + r²·P(r)` (Cephes `expf`, degree 5,
//!   evaluated as `(r + r²·(P5 + P4 r)) + r⁴·((P3 + P2 r) + r²·(P1 + P0 r))`: three
//!   dependent operations after `r`, where Horner's form takes six), then
//!   `exp(z) = 2^n + 2^n·q` (one FMA), `2^n` built in the exponent field. `n` is in
//!   `[-127, 0]`; `n = -127` makes the exponent field 0 and the result `+0` (true values
//!   there are below `1.2e-38`). No argument overflows, so no infinity ever reaches a
//!   reciprocal.
//! - `sigmoid(x)`: `e = exp(-|x|)`, and `sigmoid = 1/(1 + e)` for `x >= 0`, `e/(1 + e)`
//!   for `x < 0` (relative accuracy kept for large negative `x`; `x → -∞` gives
//!   `0/1 = 0`, `x → +∞` gives `1/1 = 1`). The denominator `1 + e` is in `[1, 2]`.
//! - `tanh(x) = sign(x) · (−m/(2 + m))` with `m = expm1(−2|x|)` in `[−1, 0]`, from the
//!   same pieces: `−m = −2^n·q + (1 − 2^n)`, which is `−q` itself for `|x| < ln2/4`, so
//!   tanh keeps its relative accuracy near 0 without a second polynomial or a blend;
//!   the denominator `2 + m` is in `[1, 2]`.
//! - Every numerator and denominator is one FMA from `q` and `2^n` (`1 + e` is
//!   `2^n·q + (2^n + 1)`, `2 + m` the same), so the division does not wait for `e` or
//!   `m`, and the argument of `tanh`'s exponential, `−2|x|`, enters the first FMA as
//!   `|x|·(−2·log2 e)` (the same product: scaling by 2 is exact). These choices shorten
//!   the dependency chain of one LSTM state update by about a fifth, which is what a
//!   single stream's step waits on.
//! - The divisions, both by a denominator in `[1, 2]`: AVX-512 takes the estimate
//!   `vrcp14ps` (relative error below 2^-14) and one Newton step on the quotient,
//!   because a 512-bit division issues only every 10-16 cycles and the LSTM cell needs
//!   five per 16 units; AVX2 divides (`vdivps` on 8 lanes issues every ~5 cycles, and
//!   the AVX `rcpps` estimate differs between vendors). So the two tiers agree to an
//!   ulp or two, not bit for bit.
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

/// `exp`'s argument is clamped below at `EXP_MIN`: `round(EXP_MIN·log2 e) = -127`, the
/// smallest `n` whose `n + 127` fits the exponent field (as 0, giving `+0`).
pub(crate) const EXP_MIN: f32 = -88.0;
/// Streaming state values below this magnitude are stored as zero.
pub(crate) use super::reference::FLUSH_BELOW;
/// `1.5·2^23`: adding it to a float of magnitude below `2^22` rounds that to an integer.
pub(crate) const ROUND_MAGIC: f32 = 12_582_912.0;
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
        // n + 127 must fit the 8-bit exponent field: 0 (+0) ..= 127 (2^0).
        assert_eq!((EXP_MIN * LOG2E).round(), -127.0);
        // Below the clamp the true exp is subnormal: flushing it to 0 loses < 1.2e-38.
        assert!((EXP_MIN as f64).exp() < f32::MIN_POSITIVE as f64);
    }
}
