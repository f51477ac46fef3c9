//! AVX2 + FMA activations, 8 lanes. The algorithm and its constants are described in
//! [`super`]; [`super::avx512`] is the same body on 16 lanes.
//!
//! The tail (`len % 8` elements) is one masked load and masked store (AVX
//! `vmaskmovps`): masked-off lanes are neither read nor written (and cannot fault).

use std::arch::x86_64::*;

use super::{
    EXP_MAX, EXP_MIN, EXP_P0, EXP_P1, EXP_P2, EXP_P3, EXP_P4, EXP_P5, LN2_HI, LN2_LO, LOG2E,
    TANH_Q0, TANH_Q1, TANH_Q2, TANH_Q3, TANH_Q4, TANH_SMALL,
};

/// `f32` lanes per vector.
pub(crate) const LANES: usize = 8;

/// `exp(z)` for `z` in `[EXP_MIN, EXP_MAX]` (or NaN, which gives NaN); `+∞` above 88.38.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp_clamped(z: __m256) -> __m256 {
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        z,
        _mm256_set1_ps(LOG2E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), z);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P5));
    let r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
    // 2^n: n + 127 in the exponent field; n in [-126, 128], where 128 gives +inf.
    let bias = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    let scale = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(bias));
    _mm256_mul_ps(p, scale)
}

/// Sigmoid of 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sigmoid_v(x: __m256) -> __m256 {
    let neg = _mm256_xor_ps(x, _mm256_set1_ps(-0.0));
    // Constant first: a NaN lane passes through both clamps.
    let z = _mm256_max_ps(_mm256_set1_ps(EXP_MIN), neg);
    let z = _mm256_min_ps(_mm256_set1_ps(EXP_MAX), z);
    let one = _mm256_set1_ps(1.0);
    _mm256_div_ps(one, _mm256_add_ps(one, exp_clamped(z)))
}

/// Tanh of 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn tanh_v(x: __m256) -> __m256 {
    let sign_bit = _mm256_set1_ps(-0.0);
    let sign = _mm256_and_ps(x, sign_bit);
    let a = _mm256_andnot_ps(sign_bit, x);
    // Large |x|: 1 - 2 / (exp(2a) + 1). 2a >= 0, so only the upper clamp is needed.
    let one = _mm256_set1_ps(1.0);
    let e = exp_clamped(_mm256_min_ps(_mm256_set1_ps(EXP_MAX), _mm256_add_ps(a, a)));
    let large = _mm256_sub_ps(
        one,
        _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)),
    );
    // Small |x|: a + a·z·Q(z), z = a².
    let z = _mm256_mul_ps(a, a);
    let mut q = _mm256_set1_ps(TANH_Q0);
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(TANH_Q1));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(TANH_Q2));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(TANH_Q3));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(TANH_Q4));
    let small = _mm256_fmadd_ps(_mm256_mul_ps(q, z), a, a);
    // A NaN lane compares false and keeps `large`, which is NaN.
    let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(a, _mm256_set1_ps(TANH_SMALL));
    _mm256_or_ps(_mm256_blendv_ps(large, small, is_small), sign)
}

/// Applies `f` to `x` in place, 8 lanes at a time, the tail through a masked vector.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn map(x: &mut [f32], f: impl Fn(__m256) -> __m256) {
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        let p = c.as_mut_ptr();
        // SAFETY: `c` is exactly LANES = 8 contiguous f32s (chunks_exact_mut), so
        // the unaligned 8-lane load reads only `c`.
        let v = unsafe { _mm256_loadu_ps(p) };
        // SAFETY: as for the load; `c` is writable (`&mut`).
        unsafe { _mm256_storeu_ps(p, f(v)) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        // Lane i on (all bits set) iff i < tail.len() (which is in 1..8).
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let k = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail.len() as i32), lane);
        let p = tail.as_mut_ptr();
        // SAFETY: mask `k` enables lanes 0..tail.len() only, all inside `tail`; AVX
        // masked loads do not access (or fault on) disabled lanes.
        let v = unsafe { _mm256_maskload_ps(p, k) };
        // SAFETY: as for the load, and `tail` is writable (`&mut`).
        unsafe { _mm256_maskstore_ps(p, k, f(v)) };
    }
}

/// `x <- sigmoid(x)` elementwise.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn sigmoid(x: &mut [f32]) {
    map(x, |v| sigmoid_v(v));
}

/// `x <- tanh(x)` elementwise.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn tanh(x: &mut [f32]) {
    map(x, |v| tanh_v(v));
}
