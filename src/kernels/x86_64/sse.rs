//! The SSE4.1 tier: 4 `f32` lanes in a `__m128`, for x86-64 CPUs without AVX (Intel
//! before Sandy Bridge, the Atom-class Celeron and Pentium Silver lines and the Pentium
//! and Celeron models of later cores that leave AVX out, AMD before Bulldozer, and hosts
//! that hide AVX from their guests); those with AVX but not AVX2 run the AVX tier
//! ([`super::avx`]). The kernels' bodies are
//! generic ([`crate::kernels::simd`]); this file is the tier's vector operations and its
//! entry points, as for the other tiers.
//!
//! SSE has no fused multiply-add: [`Simd::fma`] is a multiply and then an add, rounded
//! twice, so this tier's sums differ from the AVX2 and AVX-512 ones in the last bits
//! (every tier is checked against the reference within its stated bound, not bit for
//! bit against another tier). Divisions are exact (`divps`); partial vectors go through
//! a stack buffer. SSE4.1 (2008 on) brings the blend and the signed and unsigned 32-bit
//! minimum and maximum the activations' chain form uses.

use std::arch::x86_64::*;

use crate::kernels::simd::{tier_entries, Simd};

/// The SSE4.1 tier's token: a value exists only where SSE4.1 was detected.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sse41(());

impl Sse41 {
    /// The token without the check.
    ///
    /// # Safety
    /// The CPU must have SSE4.1.
    #[inline(always)]
    pub(crate) unsafe fn assume() -> Sse41 {
        Sse41(())
    }
}

// SAFETY (every `unsafe` block in this impl that calls an intrinsic): a value of `Sse41`
// exists only where SSE4.1 was detected (`assume` under its contract); SSE and SSE2 are
// part of every x86-64 CPU.
impl Simd for Sse41 {
    const REGISTERS: usize = 16;
    const LANES: usize = 4;
    type V = __m128;
    const FUSED: bool = false;

    #[inline(always)]
    fn splat(self, v: f32) -> __m128 {
        // SAFETY: see the impl.
        unsafe { _mm_set1_ps(v) }
    }
    #[inline(always)]
    fn zero(self) -> __m128 {
        // SAFETY: see the impl.
        unsafe { _mm_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m128 {
        // SAFETY: the caller's extent; see the impl.
        unsafe { _mm_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m128) {
        // SAFETY: the caller's extent; see the impl.
        unsafe { _mm_storeu_ps(p, v) }
    }
    #[inline(always)]
    fn add(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: see the impl.
        unsafe { _mm_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: see the impl.
        unsafe { _mm_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: see the impl.
        unsafe { _mm_mul_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m128, b: __m128, c: __m128) -> __m128 {
        // SAFETY: see the impl. Two roundings: SSE has no fused multiply-add.
        unsafe { _mm_add_ps(_mm_mul_ps(a, b), c) }
    }
    #[inline(always)]
    fn div(self, num: __m128, d: __m128) -> __m128 {
        // SAFETY: see the impl.
        unsafe { _mm_div_ps(num, d) }
    }
    #[inline(always)]
    fn min(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: see the impl.
        unsafe { _mm_min_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: see the impl.
        unsafe { _mm_max_ps(a, b) }
    }
    #[inline(always)]
    fn abs(self, v: __m128) -> __m128 {
        // SAFETY: see the impl.
        unsafe { _mm_andnot_ps(_mm_set1_ps(-0.0), v) }
    }
    #[inline(always)]
    fn select_not_lt(self, a: __m128, b: __m128, if_true: __m128, if_false: __m128) -> __m128 {
        // SAFETY: see the impl. `cmpnltps` is true where unordered, as the trait asks.
        unsafe { _mm_blendv_ps(if_false, if_true, _mm_cmpnlt_ps(a, b)) }
    }
    #[inline(always)]
    fn keep_where_positive(self, x: __m128, v: __m128) -> __m128 {
        // SAFETY: see the impl. `cmpltps` with the operands swapped: ordered, false on NaN.
        unsafe { _mm_and_ps(_mm_cmplt_ps(_mm_setzero_ps(), x), v) }
    }
    #[inline(always)]
    fn zero_below(self, v: __m128, t: f32) -> __m128 {
        // SAFETY: see the impl. `cmpltps` is ordered: a NaN lane is kept.
        unsafe {
            let tiny = _mm_cmplt_ps(self.abs(v), _mm_set1_ps(t));
            _mm_andnot_ps(tiny, v)
        }
    }
    #[inline(always)]
    fn max_bits_i32(self, v: __m128, b: i32) -> __m128 {
        // SAFETY: see the impl.
        unsafe { _mm_castsi128_ps(_mm_max_epi32(_mm_castps_si128(v), _mm_set1_epi32(b))) }
    }
    #[inline(always)]
    fn min_bits_i32(self, v: __m128, b: i32) -> __m128 {
        // SAFETY: see the impl.
        unsafe { _mm_castsi128_ps(_mm_min_epi32(_mm_castps_si128(v), _mm_set1_epi32(b))) }
    }
    #[inline(always)]
    fn min_bits_u32(self, v: __m128, b: u32) -> __m128 {
        // SAFETY: see the impl.
        unsafe {
            let m = _mm_min_epu32(_mm_castps_si128(v), _mm_set1_epi32(b as i32));
            _mm_castsi128_ps(m)
        }
    }
    #[inline(always)]
    fn reduce_add(self, v: __m128) -> f32 {
        // SAFETY: see the impl. Halves added pairwise, as the wider tiers end.
        unsafe {
            let d = _mm_add_ps(v, _mm_movehl_ps(v, v));
            _mm_cvtss_f32(_mm_add_ss(d, _mm_shuffle_ps::<0b01>(d, d)))
        }
    }
    #[inline(always)]
    fn prefetch_l2(self, p: *const f32) {
        // SAFETY: a prefetch reads nothing architecturally and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
}

tier_entries!(Sse41, "sse4.1");
