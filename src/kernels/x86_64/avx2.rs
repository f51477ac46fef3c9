//! The AVX2 + FMA tier: 8 `f32` lanes in a `__m256`. The kernels' bodies are generic
//! ([`crate::kernels::simd`]); this file is the tier's vector operations and its entry
//! points.
//!
//! Partial vectors go through a stack buffer (`Simd`'s default), not AVX's masked
//! `vmaskmovps`, which is microcoded on AMD Zen 1 and 2 (the profile of the single-stream
//! step on such a CPU had its masked loads among the hottest instructions). Divisions are exact (`vdivps`
//! issues every ~5 cycles on 8 lanes, and the `rcpps` estimate differs between vendors).

use std::arch::x86_64::*;

use crate::kernels::simd::{tier_entries, Simd};

/// The AVX2 + FMA tier's token: a value exists only where both were detected.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// The token without the check.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[inline(always)]
    pub(crate) unsafe fn assume() -> Avx2 {
        Avx2(())
    }
}

// SAFETY (every `unsafe` block in this impl that calls an intrinsic): a value of `Avx2`
// exists only where AVX2 and FMA were detected (`new`, or `assume` under its contract).
impl Simd for Avx2 {
    const REGISTERS: usize = 16;
    const LANES: usize = 8;
    type V = __m256;

    #[inline(always)]
    fn splat(self, v: f32) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    fn zero(self) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m256 {
        // SAFETY: the caller's extent; see the impl.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m256) {
        // SAFETY: the caller's extent; see the impl.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn div(self, num: __m256, d: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_div_ps(num, d) }
    }
    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn abs(self, v: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), v) }
    }
    #[inline(always)]
    fn select_not_lt(self, a: __m256, b: __m256, if_true: __m256, if_false: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_blendv_ps(if_false, if_true, _mm256_cmp_ps::<_CMP_NLT_UQ>(a, b)) }
    }
    #[inline(always)]
    fn keep_where_positive(self, x: __m256, v: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_setzero_ps()), v) }
    }
    #[inline(always)]
    fn zero_below(self, v: __m256, t: f32) -> __m256 {
        // SAFETY: see the impl.
        unsafe {
            let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(self.abs(v), _mm256_set1_ps(t));
            _mm256_andnot_ps(tiny, v)
        }
    }
    #[inline(always)]
    fn max_bits_i32(self, v: __m256, b: i32) -> __m256 {
        // SAFETY: see the impl.
        unsafe {
            let m = _mm256_max_epi32(_mm256_castps_si256(v), _mm256_set1_epi32(b));
            _mm256_castsi256_ps(m)
        }
    }
    #[inline(always)]
    fn min_bits_i32(self, v: __m256, b: i32) -> __m256 {
        // SAFETY: see the impl.
        unsafe {
            let m = _mm256_min_epi32(_mm256_castps_si256(v), _mm256_set1_epi32(b));
            _mm256_castsi256_ps(m)
        }
    }
    #[inline(always)]
    fn min_bits_u32(self, v: __m256, b: u32) -> __m256 {
        // SAFETY: see the impl.
        unsafe {
            let m = _mm256_min_epu32(_mm256_castps_si256(v), _mm256_set1_epi32(b as i32));
            _mm256_castsi256_ps(m)
        }
    }
    #[inline(always)]
    fn reduce_add(self, v: __m256) -> f32 {
        // SAFETY: see the impl.
        unsafe {
            let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
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

tier_entries!(Avx2, "avx2,fma");
