//! The AVX-512F tier: 16 `f32` lanes in a `__m512`. The kernels' bodies are generic
//! ([`crate::kernels::simd`]); this file is the tier's vector operations and its entry
//! points. Only AVX-512F instructions are used (bitwise float operations go through the
//! integer forms, which are AVX-512F; the `_ps` forms would need AVX-512DQ).
//!
//! Partial vectors are masked loads and stores: masked-off lanes are neither read nor
//! written (and cannot fault). The activations' divisions take the estimate `vrcp14ps`
//! and one Newton step (see `x86_64/mod.rs`).

use std::arch::x86_64::*;

use crate::kernels::simd::{tier_entries, Simd};

/// The AVX-512F tier's token: a value exists only where AVX-512F was detected.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// The token without the check.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[inline(always)]
    pub(crate) unsafe fn assume() -> Avx512 {
        Avx512(())
    }
}

/// Lanes `0..min(n, 16)` on.
#[inline(always)]
pub(crate) fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as u16
    }
}

// SAFETY (every `unsafe` block in this impl that calls an intrinsic): a value of
// `Avx512` exists only where AVX-512F was detected (`new`, or `assume` under its
// contract).
impl Simd for Avx512 {
    const REGISTERS: usize = 32;
    const LANES: usize = 16;
    type V = __m512;

    #[inline(always)]
    fn splat(self, v: f32) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    fn zero(self) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m512 {
        // SAFETY: the caller's extent; see the impl.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m512) {
        // SAFETY: the caller's extent; see the impl.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_n(self, p: *const f32, n: usize) -> __m512 {
        // SAFETY: the mask enables the caller's min(n, 16) floats only; masked-off lanes
        // are not accessed.
        unsafe { _mm512_maskz_loadu_ps(lanes(n), p) }
    }
    #[inline(always)]
    unsafe fn store_n(self, p: *mut f32, n: usize, v: __m512) {
        // SAFETY: as for `load_n`.
        unsafe { _mm512_mask_storeu_ps(p, lanes(n), v) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    /// `num/d` for `d >= 1` (or NaN): the 14-bit estimate `r` of `1/d`, then one Newton
    /// step applied to the quotient, `y + y·(1 − d·r)` with `y = num·r`, so the product
    /// with `num` runs beside the step instead of after it. A 512-bit division issues
    /// once per 10-16 cycles; this is four pipelined operations, three deep.
    #[inline(always)]
    fn div(self, num: __m512, d: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe {
            let r = _mm512_rcp14_ps(d);
            let y = _mm512_mul_ps(num, r);
            _mm512_fmadd_ps(y, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0)), y)
        }
    }
    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn abs(self, v: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_abs_ps(v) }
    }
    #[inline(always)]
    fn select_not_lt(self, a: __m512, b: __m512, if_true: __m512, if_false: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_mask_mov_ps(if_false, _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(a, b), if_true) }
    }
    #[inline(always)]
    fn keep_where_positive(self, x: __m512, v: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_setzero_ps()), v) }
    }
    #[inline(always)]
    fn zero_below(self, v: __m512, t: f32) -> __m512 {
        // SAFETY: see the impl.
        unsafe {
            let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(v), _mm512_set1_ps(t));
            _mm512_mask_mov_ps(v, tiny, _mm512_setzero_ps())
        }
    }
    #[inline(always)]
    fn max_bits_i32(self, v: __m512, b: i32) -> __m512 {
        // SAFETY: see the impl.
        unsafe {
            let m = _mm512_max_epi32(_mm512_castps_si512(v), _mm512_set1_epi32(b));
            _mm512_castsi512_ps(m)
        }
    }
    #[inline(always)]
    fn min_bits_i32(self, v: __m512, b: i32) -> __m512 {
        // SAFETY: see the impl.
        unsafe {
            let m = _mm512_min_epi32(_mm512_castps_si512(v), _mm512_set1_epi32(b));
            _mm512_castsi512_ps(m)
        }
    }
    #[inline(always)]
    fn min_bits_u32(self, v: __m512, b: u32) -> __m512 {
        // SAFETY: see the impl.
        unsafe {
            let m = _mm512_min_epu32(_mm512_castps_si512(v), _mm512_set1_epi32(b as i32));
            _mm512_castsi512_ps(m)
        }
    }
    #[inline(always)]
    fn reduce_add(self, v: __m512) -> f32 {
        // SAFETY: see the impl. Halves added pairwise, down to one lane (AVX-512F and
        // SSE only).
        unsafe {
            let lo = _mm512_castps512_ps256(v);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            let o = _mm256_add_ps(lo, hi);
            let q = _mm_add_ps(_mm256_castps256_ps128(o), _mm256_extractf128_ps::<1>(o));
            let d = _mm_add_ps(q, _mm_movehl_ps(q, q));
            _mm_cvtss_f32(_mm_add_ss(d, _mm_shuffle_ps::<0b01>(d, d)))
        }
    }
    #[inline(always)]
    fn prefetch_l2(self, p: *const f32) {
        // SAFETY: a prefetch reads nothing architecturally and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
}

tier_entries!(Avx512, "avx512f");
