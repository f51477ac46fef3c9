//! The NEON tier: 4 `f32` lanes in a `float32x4_t`, on every AArch64 CPU (Apple
//! silicon, Raspberry Pi 3 and later, AWS Graviton, phones). The kernels' bodies are
//! generic ([`crate::kernels::simd`]); this file is the tier's vector operations and its
//! entry points, as for the x86 tiers.
//!
//! The operations are the AVX2 tier's, lane for lane: a fused multiply-add (`fmla`), an
//! exact division (`fdiv`), and `min`/`max` with x86's rule for NaN (the second operand
//! where either is NaN: NEON's own `fmin`/`fmax` return the NaN, so they are built from a
//! compare and a select here), so the activations and sums give AVX2's bits. 32 vector
//! registers, as AVX-512 has. Partial vectors go through a stack buffer.

use std::arch::aarch64::*;

use crate::kernels::simd::{tier_entries, Simd};

/// The NEON tier's token: a value exists only where NEON was detected (every AArch64
/// CPU that runs a mainstream OS has it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Neon(());

impl Neon {
    /// The token without the check.
    ///
    /// # Safety
    /// The CPU must have NEON (Advanced SIMD).
    #[inline(always)]
    pub(crate) unsafe fn assume() -> Neon {
        Neon(())
    }
}

// SAFETY (every `unsafe` block in this impl that calls an intrinsic): a value of `Neon`
// exists only where NEON was detected (`assume` under its contract).
impl Simd for Neon {
    const REGISTERS: usize = 32;
    const LANES: usize = 4;
    type V = float32x4_t;

    #[inline(always)]
    fn splat(self, v: f32) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vdupq_n_f32(v) }
    }
    #[inline(always)]
    fn zero(self) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> float32x4_t {
        // SAFETY: the caller's extent; see the impl.
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: float32x4_t) {
        // SAFETY: the caller's extent; see the impl.
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl. `vfmaq_f32(c, a, b)` is `c + a·b`, rounded once.
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    fn div(self, num: float32x4_t, d: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vdivq_f32(num, d) }
    }
    #[inline(always)]
    fn min(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl. `a` where `a < b` (false on NaN), else `b`: x86's rule.
        unsafe { vbslq_f32(vcltq_f32(a, b), a, b) }
    }
    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl. `a` where `a > b` (false on NaN), else `b`: x86's rule.
        unsafe { vbslq_f32(vcgtq_f32(a, b), a, b) }
    }
    #[inline(always)]
    fn abs(self, v: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vabsq_f32(v) }
    }
    #[inline(always)]
    fn select_not_lt(
        self,
        a: float32x4_t,
        b: float32x4_t,
        if_true: float32x4_t,
        if_false: float32x4_t,
    ) -> float32x4_t {
        // SAFETY: see the impl. `a < b` is false where unordered, so NaN takes `if_true`.
        unsafe { vbslq_f32(vcltq_f32(a, b), if_false, if_true) }
    }
    #[inline(always)]
    fn keep_where_positive(self, x: float32x4_t, v: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl. `x > 0` is false for NaN.
        unsafe { vbslq_f32(vcgtq_f32(x, vdupq_n_f32(0.0)), v, vdupq_n_f32(0.0)) }
    }
    #[inline(always)]
    fn zero_below(self, v: float32x4_t, t: f32) -> float32x4_t {
        // SAFETY: see the impl. `|v| < t` is false for NaN, which stays.
        unsafe { vbslq_f32(vcltq_f32(vabsq_f32(v), vdupq_n_f32(t)), vdupq_n_f32(0.0), v) }
    }
    #[inline(always)]
    fn max_bits_i32(self, v: float32x4_t, b: i32) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vreinterpretq_f32_s32(vmaxq_s32(vreinterpretq_s32_f32(v), vdupq_n_s32(b))) }
    }
    #[inline(always)]
    fn min_bits_i32(self, v: float32x4_t, b: i32) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vreinterpretq_f32_s32(vminq_s32(vreinterpretq_s32_f32(v), vdupq_n_s32(b))) }
    }
    #[inline(always)]
    fn min_bits_u32(self, v: float32x4_t, b: u32) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vreinterpretq_f32_u32(vminq_u32(vreinterpretq_u32_f32(v), vdupq_n_u32(b))) }
    }
    #[inline(always)]
    fn reduce_add(self, v: float32x4_t) -> f32 {
        // SAFETY: see the impl. Halves added pairwise, as the x86 tiers end: lanes 0 + 2
        // and 1 + 3, then those two.
        unsafe {
            let d = vadd_f32(vget_low_f32(v), vget_high_f32(v));
            vget_lane_f32::<0>(d) + vget_lane_f32::<1>(d)
        }
    }
}

tier_entries!(Neon, "neon");
