//! AVX2 + FMA activations, 8 lanes. The algorithm and its constants are described in
//! [`super`]; [`super::avx512`] is the same body on 16 lanes.
//!
//! The tail (`len % 8` elements) is one masked load and masked store (AVX
//! `vmaskmovps`): masked-off lanes are neither read nor written (and cannot fault).

use std::arch::x86_64::*;

use super::{
    EXP_MIN, EXP_P0, EXP_P1, EXP_P2, EXP_P3, EXP_P4, EXP_P5, FLUSH_BELOW, LN2_HI, LN2_LO, LOG2E,
    ROUND_MAGIC,
};

/// `f32` lanes per vector.
pub(crate) const LANES: usize = 8;

/// `exp(z) = 2^n·(1 + q)` for `z` in `[EXP_MIN, 0]` (or NaN), given
/// `t = z·log2 e + ROUND_MAGIC` (one FMA, which callers may form from a multiple of `z`):
/// returns `(q, 2^n)` with `q ≈ expm1(r)`, `r = z − n·ln2`; `2^n` is `+0` below about
/// -87.68.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp_parts_t(z: __m256, t: __m256) -> (__m256, __m256) {
    // n = round(z·log2 e): the sum with 1.5·2^23 has ulp 1, so the FMA's rounding
    // rounds to an integer, whose value sits in the low mantissa bits of `t`.
    let n = _mm256_sub_ps(t, _mm256_set1_ps(ROUND_MAGIC));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), z);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    // q = r + r²·P(r) = (r + r²·(P5 + P4 r)) + r⁴·((P3 + P2 r) + r²·(P1 + P0 r)):
    // three dependent operations after r (r², then r⁴ and the inner sums, then q).
    let r2 = _mm256_mul_ps(r, r);
    let a = _mm256_fmadd_ps(_mm256_set1_ps(EXP_P4), r, _mm256_set1_ps(EXP_P5));
    let b = _mm256_fmadd_ps(_mm256_set1_ps(EXP_P2), r, _mm256_set1_ps(EXP_P3));
    let c = _mm256_fmadd_ps(_mm256_set1_ps(EXP_P0), r, _mm256_set1_ps(EXP_P1));
    let r4 = _mm256_mul_ps(r2, r2);
    let u = _mm256_fmadd_ps(r2, a, r);
    let v = _mm256_fmadd_ps(r2, c, b);
    let q = _mm256_fmadd_ps(r4, v, u);
    // 2^n: n + 127 in the exponent field; n in [-127, 0], where -127 gives +0. The low
    // bits of `t` are n plus a multiple of 512, which the shift discards.
    let bias = _mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127));
    (q, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(bias)))
}

/// Sigmoid of 8 lanes: `e = exp(−|x|)`, then `1/(1 + e)` for `x >= 0` and `e/(1 + e)`
/// for `x < 0`, with `1 + e = 2^n·q + (2^n + 1)` formed beside `e` rather than after it.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sigmoid_v(x: __m256) -> __m256 {
    let neg_abs = _mm256_or_ps(x, _mm256_set1_ps(-0.0));
    // Constant first: a NaN lane passes through the clamp.
    let z = _mm256_max_ps(_mm256_set1_ps(EXP_MIN), neg_abs);
    let t = _mm256_fmadd_ps(z, _mm256_set1_ps(LOG2E), _mm256_set1_ps(ROUND_MAGIC));
    let (q, scale) = exp_parts_t(z, t);
    let one = _mm256_set1_ps(1.0);
    let e = _mm256_fmadd_ps(scale, q, scale);
    let d = _mm256_fmadd_ps(scale, q, _mm256_add_ps(scale, one));
    // A NaN lane compares false and divides 1 by NaN.
    let is_neg = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
    // An exact division: a 256-bit one issues every ~5 cycles (AVX2 has no 14-bit
    // reciprocal estimate, and `rcpps` differs between vendors).
    _mm256_div_ps(_mm256_blendv_ps(one, e, is_neg), d)
}

/// Tanh of 8 lanes: `sign(x)·(−m/(2 + m))` with `m = expm1(−2|x|)` in `[−1, 0]`, the
/// numerator `−m = −2^n·q + (1 − 2^n)` and the denominator `2^n·q + (2^n + 1)` each
/// one FMA from the exponential's parts.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn tanh_v(x: __m256) -> __m256 {
    let sign_bit = _mm256_set1_ps(-0.0);
    let sign = _mm256_and_ps(x, sign_bit);
    // |x| clamped at -EXP_MIN/2 (constant first: a NaN lane passes), so z = −2|x| is in
    // [EXP_MIN, 0]. `t` takes |x| times −2·log2 e, a product equal to z·log2 e (scaling
    // by 2 is exact), so `exp_parts_t` need not wait for z.
    let a = _mm256_min_ps(
        _mm256_set1_ps(-0.5 * EXP_MIN),
        _mm256_andnot_ps(sign_bit, x),
    );
    let z = _mm256_mul_ps(a, _mm256_set1_ps(-2.0));
    let t = _mm256_fmadd_ps(a, _mm256_set1_ps(-2.0 * LOG2E), _mm256_set1_ps(ROUND_MAGIC));
    let (q, scale) = exp_parts_t(z, t);
    let one = _mm256_set1_ps(1.0);
    let neg_m = _mm256_fnmadd_ps(scale, q, _mm256_sub_ps(one, scale));
    let d = _mm256_fmadd_ps(scale, q, _mm256_add_ps(scale, one));
    // −m >= +0 (at x = ±0 it is +0 and so is the quotient); the sign is put back after.
    _mm256_or_ps(_mm256_div_ps(neg_m, d), sign)
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

/// Lanes `0..min(rem, 8)` on (all bits set), for `maskload`/`maskstore`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lanes(rem: usize) -> __m256i {
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(rem.min(LANES) as i32), lane)
}

/// Fused LSTM pointwise pass, as [`super::avx512::lstm_cell`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn lstm_cell(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
    let n = c.len();
    assert!(gates.len() == 4 * n && c_prev.len() == n && h.len() == n);
    let (gp, cpp, cp, hp) = (
        gates.as_mut_ptr(),
        c_prev.as_ptr(),
        c.as_mut_ptr(),
        h.as_mut_ptr(),
    );
    let mut j = 0;
    while j < n {
        let k = lanes(n - j);
        // SAFETY: the lanes enabled by `k` are units j..min(j+8, n); with the lengths
        // asserted above every access is inside its slice (gate q of unit j at q*n + j).
        unsafe {
            let i = sigmoid_v(_mm256_maskload_ps(gp.add(j), k));
            let f = sigmoid_v(_mm256_maskload_ps(gp.add(n + j), k));
            let g = tanh_v(_mm256_maskload_ps(gp.add(2 * n + j), k));
            let o = sigmoid_v(_mm256_maskload_ps(gp.add(3 * n + j), k));
            let cv = _mm256_add_ps(
                _mm256_mul_ps(f, _mm256_maskload_ps(cpp.add(j), k)),
                _mm256_mul_ps(i, g),
            );
            let hv = _mm256_mul_ps(o, tanh_v(cv));
            _mm256_maskstore_ps(gp.add(j), k, i);
            _mm256_maskstore_ps(gp.add(n + j), k, f);
            _mm256_maskstore_ps(gp.add(2 * n + j), k, g);
            _mm256_maskstore_ps(gp.add(3 * n + j), k, o);
            _mm256_maskstore_ps(cp.add(j), k, cv);
            _mm256_maskstore_ps(hp.add(j), k, hv);
        }
        j += LANES;
    }
}

/// Fused linear-before-reset GRU pointwise pass, as [`super::avx512::gru_lbr_cell`].
#[target_feature(enable = "avx2,fma")]
pub(crate) fn gru_lbr_cell(gates: &mut [f32], ghn: &[f32], h_prev: &[f32], h: &mut [f32]) {
    let n = h.len();
    assert!(gates.len() == 3 * n && ghn.len() == n && h_prev.len() == n);
    let (gp, np, pp, hp) = (
        gates.as_mut_ptr(),
        ghn.as_ptr(),
        h_prev.as_ptr(),
        h.as_mut_ptr(),
    );
    let mut j = 0;
    while j < n {
        let k = lanes(n - j);
        // SAFETY: as in `lstm_cell`: masked to units j..min(j+8, n) of slices whose
        // lengths are asserted above.
        unsafe {
            let r = sigmoid_v(_mm256_maskload_ps(gp.add(j), k));
            let z = sigmoid_v(_mm256_maskload_ps(gp.add(n + j), k));
            let pre = _mm256_add_ps(
                _mm256_maskload_ps(gp.add(2 * n + j), k),
                _mm256_mul_ps(r, _mm256_maskload_ps(np.add(j), k)),
            );
            let nv = tanh_v(pre);
            let hprev = _mm256_maskload_ps(pp.add(j), k);
            let hv = _mm256_add_ps(nv, _mm256_mul_ps(z, _mm256_sub_ps(hprev, nv)));
            _mm256_maskstore_ps(gp.add(j), k, r);
            _mm256_maskstore_ps(gp.add(n + j), k, z);
            _mm256_maskstore_ps(gp.add(2 * n + j), k, nv);
            _mm256_maskstore_ps(hp.add(j), k, hv);
        }
        j += LANES;
    }
}

/// Zeroes the lanes of `v` smaller in magnitude than `FLUSH_BELOW` (NaN compares false
/// and stays).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn flush(v: __m256) -> __m256 {
    let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), v);
    let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(a, _mm256_set1_ps(FLUSH_BELOW));
    _mm256_andnot_ps(tiny, v)
}

/// Streaming LSTM update in place, as [`super::avx512::lstm_state`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn lstm_state(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    let n = c.len();
    assert!(gates.len() == 4 * n && h.len() == n);
    let (gp, cp, hp) = (gates.as_ptr(), c.as_mut_ptr(), h.as_mut_ptr());
    let mut j = 0;
    while j < n {
        let k = lanes(n - j);
        // SAFETY: the lanes enabled by `k` are units j..min(j+8, n); with the lengths
        // asserted above every access is inside its slice (gate q of unit j at q*n + j).
        // Each lane of `c` is read before it is written.
        unsafe {
            let i = sigmoid_v(_mm256_maskload_ps(gp.add(j), k));
            let f = sigmoid_v(_mm256_maskload_ps(gp.add(n + j), k));
            let g = tanh_v(_mm256_maskload_ps(gp.add(2 * n + j), k));
            let o = sigmoid_v(_mm256_maskload_ps(gp.add(3 * n + j), k));
            let cv = _mm256_add_ps(
                _mm256_mul_ps(f, _mm256_maskload_ps(cp.add(j), k)),
                _mm256_mul_ps(i, g),
            );
            let hv = _mm256_mul_ps(o, tanh_v(cv));
            _mm256_maskstore_ps(cp.add(j), k, flush(cv));
            _mm256_maskstore_ps(hp.add(j), k, flush(hv));
        }
        j += LANES;
    }
}

/// Streaming linear-before-reset GRU update in place, as
/// [`super::avx512::gru_lbr_state`] on 8 lanes.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn gru_lbr_state(gates: &[f32], gh: &[f32], b_hn: &[f32], h: &mut [f32]) {
    let n = h.len();
    assert!(gates.len() == 3 * n && gh.len() == 3 * n && b_hn.len() == n);
    let (gp, ghp, bp, hp) = (gates.as_ptr(), gh.as_ptr(), b_hn.as_ptr(), h.as_mut_ptr());
    let mut j = 0;
    while j < n {
        let k = lanes(n - j);
        // SAFETY: as in `lstm_state`: masked to units j..min(j+8, n) of slices whose
        // lengths are asserted above; each lane of `h` is read before it is written.
        unsafe {
            let ld = |p: *const f32| _mm256_maskload_ps(p, k);
            let r = sigmoid_v(_mm256_add_ps(ld(gp.add(j)), ld(ghp.add(j))));
            let z = sigmoid_v(_mm256_add_ps(ld(gp.add(n + j)), ld(ghp.add(n + j))));
            let ghn = _mm256_add_ps(ld(ghp.add(2 * n + j)), ld(bp.add(j)));
            let nv = tanh_v(_mm256_add_ps(ld(gp.add(2 * n + j)), _mm256_mul_ps(r, ghn)));
            let hv = _mm256_add_ps(nv, _mm256_mul_ps(z, _mm256_sub_ps(ld(hp.add(j)), nv)));
            _mm256_maskstore_ps(hp.add(j), k, flush(hv));
        }
        j += LANES;
    }
}
