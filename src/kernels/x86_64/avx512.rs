//! AVX-512F activations, 16 lanes. The algorithm and its constants are described in
//! [`super`]; [`super::avx2`] is the same body on 8 lanes. Only AVX-512F instructions
//! are used (bitwise float operations go through the integer forms, which are
//! AVX-512F; the `_ps` forms would need AVX-512DQ).
//!
//! The tail (`len % 16` elements) is one masked load and masked store: masked-off
//! lanes are neither read nor written (and cannot fault).

use std::arch::x86_64::*;

use super::{
    EXP_MAX, EXP_MIN, EXP_P0, EXP_P1, EXP_P2, EXP_P3, EXP_P4, EXP_P5, LN2_HI, LN2_LO, LOG2E,
    TANH_Q0, TANH_Q1, TANH_Q2, TANH_Q3, TANH_Q4, TANH_SMALL,
};

/// `f32` lanes per vector.
pub(crate) const LANES: usize = 16;

/// `exp(z)` for `z` in `[EXP_MIN, EXP_MAX]` (or NaN, which gives NaN); `+∞` above 88.38.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_clamped(z: __m512) -> __m512 {
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(z, _mm512_set1_ps(LOG2E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), z);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P5));
    let r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0)));
    // 2^n: n + 127 in the exponent field; n in [-126, 128], where 128 gives +inf.
    let bias = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    let scale = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(bias));
    _mm512_mul_ps(p, scale)
}

/// Sigmoid of 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn sigmoid_v(x: __m512) -> __m512 {
    let neg = xor(x, _mm512_set1_ps(-0.0));
    // Constant first: a NaN lane passes through both clamps.
    let z = _mm512_max_ps(_mm512_set1_ps(EXP_MIN), neg);
    let z = _mm512_min_ps(_mm512_set1_ps(EXP_MAX), z);
    let one = _mm512_set1_ps(1.0);
    _mm512_div_ps(one, _mm512_add_ps(one, exp_clamped(z)))
}

/// Tanh of 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn tanh_v(x: __m512) -> __m512 {
    let sign_bit = _mm512_set1_ps(-0.0);
    let sign = and(x, sign_bit);
    let a = _mm512_abs_ps(x);
    // Large |x|: 1 - 2 / (exp(2a) + 1). 2a >= 0, so only the upper clamp is needed.
    let one = _mm512_set1_ps(1.0);
    let e = exp_clamped(_mm512_min_ps(_mm512_set1_ps(EXP_MAX), _mm512_add_ps(a, a)));
    let large = _mm512_sub_ps(
        one,
        _mm512_div_ps(_mm512_set1_ps(2.0), _mm512_add_ps(e, one)),
    );
    // Small |x|: a + a·z·Q(z), z = a².
    let z = _mm512_mul_ps(a, a);
    let mut q = _mm512_set1_ps(TANH_Q0);
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(TANH_Q1));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(TANH_Q2));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(TANH_Q3));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(TANH_Q4));
    let small = _mm512_fmadd_ps(_mm512_mul_ps(q, z), a, a);
    // A NaN lane compares false and keeps `large`, which is NaN.
    let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, _mm512_set1_ps(TANH_SMALL));
    or(_mm512_mask_blend_ps(is_small, large, small), sign)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn xor(a: __m512, b: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_xor_si512(
        _mm512_castps_si512(a),
        _mm512_castps_si512(b),
    ))
}

#[inline]
#[target_feature(enable = "avx512f")]
fn and(a: __m512, b: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_and_si512(
        _mm512_castps_si512(a),
        _mm512_castps_si512(b),
    ))
}

#[inline]
#[target_feature(enable = "avx512f")]
fn or(a: __m512, b: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(a),
        _mm512_castps_si512(b),
    ))
}

/// Applies `f` to `x` in place, 16 lanes at a time, the tail through a masked vector.
#[inline]
#[target_feature(enable = "avx512f")]
fn map(x: &mut [f32], f: impl Fn(__m512) -> __m512) {
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        let p = c.as_mut_ptr();
        // SAFETY: `c` is exactly LANES = 16 contiguous f32s (chunks_exact_mut), so
        // the unaligned 16-lane load reads only `c`.
        let v = unsafe { _mm512_loadu_ps(p) };
        // SAFETY: as for the load; `c` is writable (`&mut`).
        unsafe { _mm512_storeu_ps(p, f(v)) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let k: __mmask16 = (1u16 << tail.len()) - 1; // tail.len() < 16
        let p = tail.as_mut_ptr();
        // SAFETY: mask `k` enables lanes 0..tail.len() only, all inside `tail`; masked
        // loads do not access (or fault on) disabled lanes.
        let v = unsafe { _mm512_maskz_loadu_ps(k, p) };
        // SAFETY: as for the load, and `tail` is writable (`&mut`).
        unsafe { _mm512_mask_storeu_ps(p, k, f(v)) };
    }
}

/// `x <- sigmoid(x)` elementwise.
#[target_feature(enable = "avx512f")]
pub(crate) fn sigmoid(x: &mut [f32]) {
    map(x, |v| sigmoid_v(v));
}

/// `x <- tanh(x)` elementwise.
#[target_feature(enable = "avx512f")]
pub(crate) fn tanh(x: &mut [f32]) {
    map(x, |v| tanh_v(v));
}
