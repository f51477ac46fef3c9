//! The AVX2 + FMA tier: 8 `f32` lanes in a `__m256`. The kernels' bodies are generic
//! ([`crate::kernels::simd`]); this file is the 8-lane vector operations ([`Ymm`]) and
//! the tier's entry points. The AVX tier ([`super::avx`]) and the AVX-512 tier's 8-lane
//! kernels ([`vl256`]) run the same operations with their own few differences.
//!
//! Partial vectors go through a stack buffer (`Simd`'s default), not AVX's masked
//! `vmaskmovps`, which is microcoded on AMD Zen 1 and 2 (the profile of the single-stream
//! step on such a CPU had its masked loads among the hottest instructions). Divisions are exact (`vdivps`
//! issues every ~5 cycles on 8 lanes, and the `rcpps` estimate differs between vendors).
//!
//! [`Ymm<true, true>`](Ymm) is the same 8-lane body for the AVX-512 tier ([`vl256`]): its
//! division is AVX-512's (`vrcp14ps` on 8 lanes, AVX-512VL, and the same Newton step),
//! every other operation gives AVX-512's bits lane for lane already, so a kernel body run
//! on it gives the AVX-512 tier's bits in 256-bit registers. [`Ymm<false,
//! false>`](Ymm) is the AVX tier's: a multiply, then an add, where the others fuse them,
//! and the activations' integer operations on 128-bit halves.

use std::arch::x86_64::*;

use crate::kernels::simd::{tier_entries, Simd};

/// The AVX2 + FMA tier's token: a value exists only where both were detected.
pub(crate) type Avx2 = Ymm<false, true>;

/// An 8-lane body's token: a value exists only where AVX was detected; with `AVX2` only
/// where AVX2 and FMA were too (the AVX2 tier, whose multiply-adds are fused), and with
/// `AVX512` (the AVX-512 tier's 8-lane body, [`vl256`], always with `AVX2`) only where
/// AVX-512F and AVX-512VL were as well. Without `AVX2` it is the AVX tier's
/// ([`super::avx`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ymm<const AVX512: bool, const AVX2: bool>(());

impl<const AVX512: bool, const AVX2: bool> Ymm<AVX512, AVX2> {
    /// The token without the check.
    ///
    /// # Safety
    /// The CPU must have AVX; with `AVX2` AVX2 and FMA; with `AVX512` AVX-512F and
    /// AVX-512VL.
    #[inline(always)]
    pub(crate) unsafe fn assume() -> Ymm<AVX512, AVX2> {
        Ymm(())
    }
}

// SAFETY (every `unsafe` block in this impl that calls an intrinsic): a value of `Ymm`
// exists only where AVX was detected (`assume` under its contract), with `AVX2` only
// where AVX2 and FMA were too, and with `AVX512` only where AVX-512F and AVX-512VL were
// too; every intrinsic of AVX2, FMA or AVX-512 sits in a branch on those constants.
// SSE4.1's 128-bit integer operations (the AVX tier's halves) come with every CPU that
// has AVX (the AVX tier checks for SSE4.1 as well).
impl<const AVX512: bool, const AVX2: bool> Simd for Ymm<AVX512, AVX2> {
    // AVX-512VL encodes 32 vector registers for 256-bit operations too.
    const REGISTERS: usize = if AVX512 { 32 } else { 16 };
    const LANES: usize = 8;
    const DOT_LANES: usize = if AVX512 { 16 } else { 8 };
    const QUADS: bool = true;
    // AVX alone has no fused multiply-add.
    const FUSED: bool = AVX2;
    type V = __m256;

    #[inline(always)]
    fn splat(self, v: f32) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn quad_splats(self, p: *const f32) -> [__m256; 4] {
        // SAFETY: the caller's extent (4 floats); AVX (see the impl).
        unsafe {
            // One load, then one in-lane shuffle a float (`Simd::QUADS`).
            let q = quad_both_halves(p);
            [
                _mm256_permute_ps::<0x00>(q),
                _mm256_permute_ps::<0x55>(q),
                _mm256_permute_ps::<0xAA>(q),
                _mm256_permute_ps::<0xFF>(q),
            ]
        }
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
        // SAFETY: see the impl (FMA with `AVX2`).
        unsafe {
            if AVX2 {
                _mm256_fmadd_ps(a, b, c)
            } else {
                // Two roundings, as SSE4.1's.
                _mm256_add_ps(_mm256_mul_ps(a, b), c)
            }
        }
    }
    /// Exact, or with `AVX512` the AVX-512 tier's estimate and Newton step (`avx512.rs`):
    /// the same bits as its 16-lane division, lane for lane.
    #[inline(always)]
    fn div(self, num: __m256, d: __m256) -> __m256 {
        // SAFETY: see the impl (`AVX512`: AVX-512F and AVX-512VL were detected).
        unsafe {
            if AVX512 {
                let r = _mm256_rcp14_ps(d);
                let y = _mm256_mul_ps(num, r);
                _mm256_fmadd_ps(y, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(1.0)), y)
            } else {
                _mm256_div_ps(num, d)
            }
        }
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
        unsafe { Self::bits_op::<MAX_I32>(v, b) }
    }
    #[inline(always)]
    fn min_bits_i32(self, v: __m256, b: i32) -> __m256 {
        // SAFETY: see the impl.
        unsafe { Self::bits_op::<MIN_I32>(v, b) }
    }
    #[inline(always)]
    fn min_bits_u32(self, v: __m256, b: u32) -> __m256 {
        // SAFETY: see the impl.
        unsafe { Self::bits_op::<MIN_U32>(v, b as i32) }
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

/// [`Ymm::bits_op`]'s operations: signed maximum, signed minimum, unsigned minimum.
const MAX_I32: u8 = 0;
const MIN_I32: u8 = 1;
const MIN_U32: u8 = 2;

impl<const AVX512: bool, const AVX2: bool> Ymm<AVX512, AVX2> {
    /// `OP` ([`MAX_I32`], [`MIN_I32`] or [`MIN_U32`]) of `v`'s bits and `b` in every
    /// lane, as 32-bit integers: one AVX2 instruction, or without `AVX2` (the AVX tier:
    /// AVX has no 256-bit integer instructions) SSE4.1's on each 128-bit half.
    ///
    /// # Safety
    /// A value of this type exists (its features detected, see the `Simd` impl).
    #[inline(always)]
    unsafe fn bits_op<const OP: u8>(v: __m256, b: i32) -> __m256 {
        // SAFETY: AVX2 with `AVX2`, else AVX and SSE4.1, the caller's.
        unsafe {
            let bits = _mm256_castps_si256(v);
            if AVX2 {
                let bv = _mm256_set1_epi32(b);
                _mm256_castsi256_ps(match OP {
                    MAX_I32 => _mm256_max_epi32(bits, bv),
                    MIN_I32 => _mm256_min_epi32(bits, bv),
                    _ => _mm256_min_epu32(bits, bv),
                })
            } else {
                let bv = _mm_set1_epi32(b);
                let lo = half_op::<OP>(_mm256_castsi256_si128(bits), bv);
                let hi = half_op::<OP>(_mm256_extractf128_si256::<1>(bits), bv);
                _mm256_castsi256_ps(_mm256_insertf128_si256::<1>(_mm256_castsi128_si256(lo), hi))
            }
        }
    }
}

/// [`Ymm::bits_op`]'s `OP` on one 128-bit half (no closure: the bodies avoid them).
///
/// # Safety
/// SSE4.1 detected.
#[inline(always)]
unsafe fn half_op<const OP: u8>(x: __m128i, b: __m128i) -> __m128i {
    // SAFETY: SSE4.1, the caller's.
    unsafe {
        match OP {
            MAX_I32 => _mm_max_epi32(x, b),
            MIN_I32 => _mm_min_epi32(x, b),
            _ => _mm_min_epu32(x, b),
        }
    }
}

/// The four floats at `p` in both 128-bit halves (`vbroadcastf128`, a load alone), in
/// `asm!` so that LLVM knows nothing of the halves being equal: it turned each in-lane
/// shuffle of [`Simd::quad_splats`] into a broadcast load of its float from an
/// intrinsic's load, and into two shuffles (one across the halves) from a 128-bit `asm!`
/// load. Four in-lane shuffles a quad against seven measured 0.95-0.98 of the time on
/// `RNNCORE_KERNEL=avx2` at 8-64 units, level on the AVX-512 tier's 8-lane kernels (AMD
/// EPYC Zen 4, ab.c, 9 rounds, both orders); Intel runs shuffles on one port.
///
/// # Safety
/// `p..p + 4` readable; AVX detected.
#[target_feature(enable = "avx")]
#[inline]
unsafe fn quad_both_halves(p: *const f32) -> __m256 {
    let q: __m256;
    // SAFETY: reads the caller's 4 floats at `p` and nothing else; no stack, no flags.
    unsafe {
        std::arch::asm!(
            "vbroadcastf128 {q}, [{p}]",
            p = in(reg) p,
            q = out(ymm_reg) q,
            options(pure, readonly, nostack, preserves_flags)
        );
    }
    q
}

tier_entries!(Avx2, "avx2,fma");

/// The AVX-512 tier's kernels in 256-bit registers ([`Ymm<true, true>`](Ymm)): the same bits
/// as its 16-lane ones, for the sizes where AMD's cores, which split a 512-bit operation
/// in two, ran them faster (`kernels::packed::stream`).
pub(crate) mod vl256 {
    /// The AVX-512 tier's 8-lane token.
    type Avx512In256 = super::Ymm<true, true>;

    crate::kernels::simd::stream_entries!(Avx512In256, "avx2,fma,avx512f,avx512vl");
}
