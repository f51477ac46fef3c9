//! The x86-64 tiers: [`sse`] (SSE4.1, 4 lanes, no fused multiply-add), [`avx`] (AVX, 8
//! lanes, no fused multiply-add: [`avx2`]'s body without AVX2 and FMA), [`avx2`] (AVX2 +
//! FMA, 8 lanes) and [`avx512`] (AVX-512F, 16 lanes), each a [`super::simd::Simd`]
//! implementation and its `#[target_feature]` entry points into the kernels' one generic
//! body (`super::simd`, `super::cells`, `super::backward`, `super::outer`). The
//! dispatchers call a tier's entry points only after detecting its features at run
//! time.
//!
//! The activations, as both tiers compute them (the same operations in the same order,
//! lane for lane; constants in [`super::simd`]):
//!
//! - `tanh(x) = x·P(x²)/Q(x²)`, `P` and `Q` of degree 4 (`TANH_P`, `TANH_Q`,
//!   `P(0) = Q(0) = 1`), fitted by `scripts/fit_tanh.py` (weighted minimax on
//!   `[0, 9.01]`: 2.0e-8 in `f64`; the `f32` evaluation brings the measured maximum to
//!   the figures in `activation.rs`). Each of `P` and `Q` is two FMAs in `y = x²` and
//!   one in `y²` (Estrin's scheme: three dependent operations after `y`), and the
//!   numerator is `x·P(y)`. Every step is odd or even in `x` exactly, so the result is
//!   odd bit for bit and carries the sign of `x` (−0 included) with no sign handling.
//!   Near 0, `x·(1 + O(x²))` keeps the relative accuracy of tanh without a second
//!   formula.
//! - `sigmoid(x) = 1/2 + tanh(x/2)/2`, from the same rational: halving the argument and
//!   the value only scales the coefficients by powers of two (`SIGMOID_P`,
//!   `SIGMOID_Q`, exact), so the quotient `n/d ≈ tanh(x/2)/2` costs what `tanh` costs,
//!   and `1/2` goes into the numerator, `(n + d/2)/d`, one FMA beside the reciprocal.
//!   Accuracy is absolute: a tiny sigmoid (`x < −17`) comes out as a difference from
//!   1/2, with an error of about 3e-8 on its value.
//! - Limits: from where the `f32` function rounds to its limit (`TANH_ONE_FROM`,
//!   `SIGMOID_ONE_FROM`; `±∞` included) the result is exactly ±1 (sigmoid 1 or 0), and
//!   rounding can leave a quotient an ulp outside the range below that, so it is held
//!   to it. Each function has two forms that give the same bits (a test compares them
//!   on 44 million inputs and the edges):
//!   - for throughput (`sigmoid_v`, `tanh_v`: batched rows, training, long slices):
//!     `x` is clamped to `±limit` first, where the rationals are exactly at their limits
//!     (checked at the constants), and the quotient held to the range by `min`/`max`;
//!     four operations in all.
//!   - for a dependency chain (`*_chain`: a single stream's steps, short slices): the
//!     polynomials run on `x` unclamped, the quotient is held to the range by one-cycle
//!     integer operations on its bits, and the lanes from the limit on are replaced by a
//!     mask computed beside the chain. Three more operations, but only three cycles
//!     after the division instead of sixteen before and after it.
//! - NaN: `min`/`max` with the constant first return their second operand when either is
//!   NaN, so both clamps pass it; the chain form's mask compares unordered, and takes
//!   the NaN from its limit expression.
//! - The rational form is what a single stream's step waits on: on the development
//!   machine (AVX-512, 16-lane vectors) a dependent chain of `tanh` takes about 42
//!   cycles and of `sigmoid` 43 (11 ns each), where the `expm1`-based formulas they
//!   replace (Cephes' `expf` polynomial after a Cody–Waite reduction, then a division)
//!   took 59 (16 ns); the LSTM update has two of them in a row (measured before the
//!   split into two forms; the chain form is one operation shorter on the chain since).
//!   Instruction count matters as much: 512-bit operations issue on two ports, and the
//!   gate activations of a batch of rows are bound by their count, which the
//!   throughput form cuts from 26 to 20 operations (sigmoid) and 23 to 19 (tanh) on AVX-512.
//! - The divisions: AVX-512 takes the estimate `vrcp14ps` (relative error below 2^-14)
//!   and one Newton step on the quotient, `y + y·(1 − d·r)` with `y = num·r`, because a
//!   512-bit division issues only every 10-16 cycles and the LSTM cell needs five per 16
//!   units; AVX2, AVX and SSE4.1 divide (`vdivps` on 8 lanes issues every ~5 cycles, and
//!   the `rcpps` estimate differs between vendors). So the two FMA tiers agree to an ulp
//!   or two, not bit for bit; SSE4.1 and AVX, whose multiply-adds round twice, to a few
//!   ulp (and with each other bit for bit: the same operations on each lane).

pub(crate) mod avx;
pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod sse;

/// Whether the CPU is AMD's (or Hygon's, the same cores), from CPUID's vendor string:
/// asked once, for the kernels' choices that were measured to differ between vendors
/// (`kernels::packed::stream`). Never a question of correctness: every choice it steers
/// gives the same bits.
pub(crate) fn amd_cpu() -> bool {
    static AMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AMD.get_or_init(|| {
        // Leaf 0 exists on every x86-64 CPU; the vendor string is EBX, EDX, ECX.
        let id = std::arch::x86_64::__cpuid(0);
        let mut vendor = [0u8; 12];
        for (i, r) in [id.ebx, id.edx, id.ecx].into_iter().enumerate() {
            vendor[4 * i..4 * i + 4].copy_from_slice(&r.to_le_bytes());
        }
        &vendor == b"AuthenticAMD" || &vendor == b"HygonGenuine"
    })
}
