//! The vector operations every kernel body is written in, and the bodies of the
//! activations themselves: one body per operation, instantiated per instruction set.
//!
//! A tier is a zero-sized token type implementing [`Simd`] (`x86_64/avx2.rs`,
//! `x86_64/avx512.rs`): a value of it exists only once its features were detected (or
//! inside a `#[target_feature]` function of that tier), which is what makes its safe
//! methods sound. The bodies (here, in `cells.rs`, `backward.rs`, `outer.rs`,
//! `microkernel.rs`) are generic over `S: Simd` and `#[inline(always)]`; each tier's file
//! instantiates them inside thin `#[target_feature]` entry points ([`tier_entries`]),
//! so the compiler emits that tier's instructions for the whole body. A new tier (NEON
//! on aarch64) is one file: the trait's methods and one `tier_entries!` line.
//!
//! The operations are the ones the bodies need and no more; each names the x86 form it
//! maps to where the semantics matter (NaN in `min`/`max`, unordered compares).
//! Partial vectors ([`Simd::load_n`], [`Simd::store_n`]) touch only their `n` floats:
//! AVX-512 uses masked loads and stores, AVX2 a copy through a stack buffer, because
//! AVX's `vmaskmovps` is microcoded and slow on AMD Zen 1 and 2.

/// Streaming state values below this magnitude are stored as zero.
pub(crate) use super::reference::FLUSH_BELOW;
/// The smallest `f32` whose `tanh` rounds to 1 in `f32` (`scripts/fit_tanh.py`).
pub(crate) const TANH_ONE_FROM: f32 = 9.010_914;
/// The smallest `f32` whose sigmoid rounds to 1 in `f32`.
pub(crate) const SIGMOID_ONE_FROM: f32 = 17.328_68;
/// The bits of `1.0f32`.
pub(crate) const ONE_BITS: i32 = 0x3f80_0000;
/// The bits of `-1.0f32`, as a signed integer.
pub(crate) const MINUS_ONE_BITS: i32 = 0xbf80_0000_u32 as i32;
/// `tanh(a) ≈ a·P(a²)/Q(a²)` on `[0, TANH_ONE_FROM]`: `P`'s coefficients, constant first.
pub(crate) const TANH_P: [f32; 5] = [
    1.0,
    0.133_789_82,
    0.003_493_199_6,
    2.057_133_1e-5,
    1.330_529_1e-8,
];
/// ... and `Q`'s.
pub(crate) const TANH_Q: [f32; 5] = [
    1.0,
    0.467_122_97,
    0.025_867_796,
    3.281_795_4e-4,
    7.755_731e-7,
];
/// `tanh(a/2)/2 ≈ a·P'(a²)/Q'(a²)`: `P'ₖ = Pₖ/(4·4^k)` (one half from the argument,
/// one from the value) ...
pub(crate) const SIGMOID_P: [f32; 5] = scaled(TANH_P, 0.25);
/// ... and `Q'ₖ = Qₖ/4^k`. Scaling by powers of two is exact.
pub(crate) const SIGMOID_Q: [f32; 5] = scaled(TANH_Q, 1.0);

/// `c[k]·first/4^k`.
const fn scaled(c: [f32; 5], first: f32) -> [f32; 5] {
    [
        c[0] * first,
        c[1] * first / 4.0,
        c[2] * first / 16.0,
        c[3] * first / 64.0,
        c[4] * first / 256.0,
    ]
}

/// The widest vector any tier has, in `f32` lanes (AVX-512's).
const MAX_LANES: usize = 16;

/// A vector instruction set: `LANES` `f32` lanes per [`Simd::V`].
///
/// Every method is `#[inline(always)]` in the implementations; the loads and stores
/// are `unsafe` (raw pointers), the arithmetic is safe (the token proves the CPU has
/// the instructions).
pub(crate) trait Simd: Copy {
    /// `f32` lanes per vector.
    const LANES: usize;
    /// Vector registers (16 on AVX2, 32 on AVX-512): how many accumulators a kernel's
    /// blocks can hold.
    const REGISTERS: usize;
    /// A vector of `LANES` floats.
    type V: Copy;
    /// Whether [`Simd::fma`] rounds once (a fused multiply-add instruction) rather than
    /// after the product and again after the sum (SSE4.1).
    const FUSED: bool = true;
    /// The lanes of the tier whose dot products ([`super::cells::dense_narrow`]) this
    /// body's must match bit for bit: its own, but 16 for the AVX-512 tier's 8-lane body
    /// (`x86_64::avx2::vl256`), whose in-kernel heads then sum as the 16-lane ones do.
    const DOT_LANES: usize = Self::LANES;

    /// Whether a single stream's products (`cells::row_product`) spread `h` (and `x`)
    /// four floats a load ([`Simd::quad_splats`]) rather than one broadcast load a
    /// float. The 8-lane bodies do: a multiply-add there takes its weights from memory,
    /// so a broadcast load a row made the loads, not the multiply-adds, the bound (AMD
    /// Zen 4 has two 256-bit loads a cycle); one in-lane shuffle a float runs beside
    /// them. AMD EPYC Zen 4, against broadcast loads (`benches/c/ab.c`, 11 rounds, both
    /// orders, step / block), with two shuffles a float: `RNNCORE_KERNEL=avx2` LSTM H =
    /// 32 0.91-1.00 / 0.80-0.84, GRU H = 40-64 0.94-0.98 / 0.87-0.98; the `avx512` tier's
    /// 8-lane kernels at 40 units 0.87-0.97 / 0.91-0.96; 8-unit LSTM steps (AVX2's body
    /// on both tiers) 0.79-0.96; the rest level within what code placement moves (the
    /// untouched 16-lane kernels read 0.95-1.06); one shuffle a float (`vbroadcastf128`,
    /// `avx2::quad_both_halves`) 0.95-0.98 of that again on `avx2`.
    /// Not the other bodies: SSE4.1 took 1.08-1.23 of the time at H = 32 and 40 (it has
    /// no broadcast load to save); AVX-512's 16-lane body was level at 32-128 on this core,
    /// and Intel's server cores run 512-bit shuffles on the port of their second 512-bit
    /// multiply-add unit.
    const QUADS: bool = false;

    /// Every lane `v`.
    fn splat(self, v: f32) -> Self::V;
    /// The four floats at `p`, each in every lane of its own vector (by default four
    /// broadcasts; see [`Simd::QUADS`]).
    ///
    /// # Safety
    /// `p..p + 4` readable.
    #[inline(always)]
    unsafe fn quad_splats(self, p: *const f32) -> [Self::V; 4] {
        // SAFETY: the caller's extent. (No closure: the bodies avoid them, see
        // docs/ARCHITECTURE.md.)
        unsafe {
            [
                self.splat(*p),
                self.splat(*p.add(1)),
                self.splat(*p.add(2)),
                self.splat(*p.add(3)),
            ]
        }
    }
    /// Every lane `+0.0`.
    fn zero(self) -> Self::V;
    /// `LANES` floats from `p` (unaligned).
    ///
    /// # Safety
    /// `p..p + LANES` readable.
    unsafe fn load(self, p: *const f32) -> Self::V;
    /// `v` to `p..p + LANES` (unaligned).
    ///
    /// # Safety
    /// `p..p + LANES` writable.
    unsafe fn store(self, p: *mut f32, v: Self::V);
    /// Lanes `0..min(n, LANES)` from `p`, the others zero; reads nothing else. By
    /// default a partial vector goes through a stack buffer (not a masked load: AVX's
    /// `vmaskmovps` is microcoded on AMD Zen 1 and 2; SSE and NEON have none); AVX-512
    /// overrides it with its masked load.
    ///
    /// # Safety
    /// `p..p + min(n, LANES)` readable.
    #[inline(always)]
    unsafe fn load_n(self, p: *const f32, n: usize) -> Self::V {
        if n >= Self::LANES {
            // SAFETY: the caller's extent (LANES floats).
            return unsafe { self.load(p) };
        }
        debug_assert!(Self::LANES <= MAX_LANES);
        let mut buf = [0.0f32; MAX_LANES];
        // SAFETY: the caller's extent (n < LANES floats) into the buffer, which holds
        // LANES floats.
        unsafe {
            std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
            self.load(buf.as_ptr())
        }
    }
    /// Lanes `0..min(n, LANES)` of `v` to `p`; writes nothing else (by default through a
    /// stack buffer, as [`Simd::load_n`]).
    ///
    /// # Safety
    /// `p..p + min(n, LANES)` writable.
    #[inline(always)]
    unsafe fn store_n(self, p: *mut f32, n: usize, v: Self::V) {
        if n >= Self::LANES {
            // SAFETY: the caller's extent (LANES floats).
            return unsafe { self.store(p, v) };
        }
        debug_assert!(Self::LANES <= MAX_LANES);
        let mut buf = [0.0f32; MAX_LANES];
        // SAFETY: the buffer holds LANES floats; the caller's extent (n < LANES) from it.
        unsafe {
            self.store(buf.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n);
        }
    }

    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a − b`.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b + c`, rounded once where [`Simd::FUSED`], else the product rounded, then
    /// the sum.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `num / d` as the tier divides for the activations (`d >= 1` or NaN): exact on
    /// AVX2, a 14-bit estimate and one Newton step on AVX-512 (see `x86_64/mod.rs`).
    fn div(self, num: Self::V, d: Self::V) -> Self::V;
    /// x86 `min(a, b)`: `b` where either is NaN.
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    /// x86 `max(a, b)`: `b` where either is NaN.
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// `|v|` (the sign bit cleared).
    fn abs(self, v: Self::V) -> Self::V;
    /// `if_true` in the lanes where `!(a < b)` (unordered: NaN gives true), else
    /// `if_false`.
    fn select_not_lt(self, a: Self::V, b: Self::V, if_true: Self::V, if_false: Self::V) -> Self::V;
    /// `v` where `x > 0` (ordered: NaN gives false), else `+0.0`.
    fn keep_where_positive(self, x: Self::V, v: Self::V) -> Self::V;
    /// `+0.0` in the lanes where `|v| < t` (ordered: NaN stays), else `v`.
    fn zero_below(self, v: Self::V, t: f32) -> Self::V;
    /// The bits of `v` as `i32`, maximum with `b` (signed).
    fn max_bits_i32(self, v: Self::V, b: i32) -> Self::V;
    /// The bits of `v` as `i32`, minimum with `b` (signed).
    fn min_bits_i32(self, v: Self::V, b: i32) -> Self::V;
    /// The bits of `v` as `u32`, minimum with `b` (unsigned).
    fn min_bits_u32(self, v: Self::V, b: u32) -> Self::V;
    /// The sum of the lanes, in a fixed order (halves added pairwise).
    fn reduce_add(self, v: Self::V) -> f32;
    /// A hint to bring the cache line at `p` into L2; never faults. No-op by default.
    #[inline(always)]
    fn prefetch_l2(self, _p: *const f32) {}
}

/// Defines a tier's `#[target_feature]` entry points, each calling the one generic body
/// with the tier's token: `tier_entries!(Token, "features")`. The token's
/// `assume()` is only called inside these functions, whose features are the token's.
/// Vectors of a group the one-row products take at a time: a whole group (4 panels)
/// where 32 registers hold their 16 even and odd sums, a panel where there are 16.
pub(crate) const fn gemv_vectors<S: Simd>() -> usize {
    if S::REGISTERS >= 32 {
        8
    } else {
        4
    }
}

// SAFETY (every `unsafe { $S::assume() }` in the entry points): each is compiled with
// the tier's features (`#[target_feature]`), so it runs only on a CPU that has them.
macro_rules! tier_entries {
    ($S:ident, $feat:literal) => {
        use crate::kernels::simd::gemv_vectors;
        /// `x <- sigmoid(x)` elementwise ([`crate::kernels::simd::sigmoid_slice`]).
        #[target_feature(enable = $feat)]
        pub(crate) fn sigmoid(x: &mut [f32]) {
            crate::kernels::simd::sigmoid_slice(unsafe { $S::assume() }, x)
        }
        /// `x <- tanh(x)` elementwise ([`crate::kernels::simd::tanh_slice`]).
        #[target_feature(enable = $feat)]
        pub(crate) fn tanh(x: &mut [f32]) {
            crate::kernels::simd::tanh_slice(unsafe { $S::assume() }, x)
        }
        /// [`crate::kernels::cells::lstm_cell`] on this tier.
        #[target_feature(enable = $feat)]
        pub(crate) fn lstm_cell(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
            crate::kernels::cells::lstm_cell(unsafe { $S::assume() }, gates, c_prev, c, h)
        }
        /// [`crate::kernels::cells::gru_lbr_cell`] on this tier.
        #[target_feature(enable = $feat)]
        pub(crate) fn gru_lbr_cell(gates: &mut [f32], ghn: &[f32], h_prev: &[f32], h: &mut [f32]) {
            crate::kernels::cells::gru_lbr_cell(unsafe { $S::assume() }, gates, ghn, h_prev, h)
        }
        /// [`crate::kernels::cells::lstm_state`] on this tier.
        #[target_feature(enable = $feat)]
        pub(crate) fn lstm_state(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
            crate::kernels::cells::lstm_state(unsafe { $S::assume() }, gates, c, h)
        }
        /// [`crate::kernels::cells::gru_lbr_state`] on this tier.
        #[target_feature(enable = $feat)]
        pub(crate) fn gru_lbr_state(gates: &[f32], gh: &[f32], b_hn: &[f32], h: &mut [f32]) {
            crate::kernels::cells::gru_lbr_state(unsafe { $S::assume() }, gates, gh, b_hn, h)
        }
        /// Every activation form of `xs` on this tier
        /// ([`crate::kernels::simd::forms::of`]).
        #[cfg(test)]
        #[target_feature(enable = $feat)]
        pub(crate) fn activation_forms(xs: &[f32]) -> [Vec<f32>; 4] {
            crate::kernels::simd::forms::of(unsafe { $S::assume() }, xs)
        }
        /// [`crate::kernels::microkernel::gemm_group`] on this tier: chunks of 4 vectors
        /// (24 accumulators) with 32 registers, of 2 (12) with 16.
        ///
        /// # Safety
        /// As for the body.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn gemm_group(
            m: usize,
            kl: usize,
            p0: usize,
            k: usize,
            n: usize,
            a: *const f32,
            lda: usize,
            b: *const f32,
            group: usize,
            c: *mut f32,
            ldc: usize,
            acc: crate::kernels::packed::Init,
            g0: usize,
            g1: usize,
            pf: (*const f32, usize),
        ) {
            const VC: usize = if <$S as crate::kernels::simd::Simd>::REGISTERS >= 32 {
                4
            } else {
                2
            };
            let s = unsafe { $S::assume() };
            // SAFETY: the caller's contract is the body's.
            unsafe {
                crate::kernels::microkernel::gemm_group::<$S, VC>(
                    s, m, kl, p0, k, n, a, lda, b, group, c, ldc, acc, g0, g1, pf,
                )
            }
        }
        /// [`crate::kernels::microkernel::gemv`] on this tier (a group's vectors at a
        /// time where 32 registers hold their 16 sums, else a panel's).
        ///
        /// # Safety
        /// As for the body.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn gemv(
            k: usize,
            n: usize,
            x: *const f32,
            b: *const f32,
            group: usize,
            y: *mut f32,
            accumulate: bool,
            reverse: bool,
        ) {
            let s = unsafe { $S::assume() };
            // SAFETY: the caller's contract is the body's.
            unsafe {
                crate::kernels::microkernel::gemv::<$S, { gemv_vectors::<$S>() }>(
                    s, k, n, x, b, group, y, accumulate, reverse,
                )
            }
        }
        /// [`crate::kernels::microkernel::gemv_bias`] on this tier.
        ///
        /// # Safety
        /// As for the body.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn gemv_bias(
            n: usize,
            bias: *const f32,
            k: usize,
            x: *const f32,
            b: *const f32,
            group: usize,
            y: *mut f32,
        ) {
            let s = unsafe { $S::assume() };
            // SAFETY: the caller's contract is the body's.
            unsafe {
                crate::kernels::microkernel::gemv_bias::<$S, { gemv_vectors::<$S>() }>(
                    s, n, bias, k, x, b, group, y,
                )
            }
        }
        /// [`crate::kernels::microkernel::gemv2`] on this tier.
        ///
        /// # Safety
        /// As for the body.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn gemv2(
            n: usize,
            bias: *const f32,
            k1: usize,
            x1: *const f32,
            b1: *const f32,
            k2: usize,
            x2: *const f32,
            b2: *const f32,
            group: usize,
            y: *mut f32,
            reverse: bool,
        ) {
            let s = unsafe { $S::assume() };
            // SAFETY: the caller's contract is the body's.
            unsafe {
                crate::kernels::microkernel::gemv2::<$S, { gemv_vectors::<$S>() }>(
                    s, n, bias, k1, x1, b1, k2, x2, b2, group, y, reverse,
                )
            }
        }
        /// [`crate::kernels::cells::dense_narrow`] on this tier.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn dense_narrow(
            x: &[f32],
            rows: usize,
            k: usize,
            w: &[f32],
            o: usize,
            bias: &[f32],
            y: &mut [f32],
        ) {
            let s = unsafe { $S::assume() };
            crate::kernels::cells::dense_narrow(s, x, rows, k, w, o, bias, y)
        }
        /// [`crate::kernels::simd::dense_small`] on this tier.
        ///
        /// # Safety
        /// As for the body.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn dense_small(
            x: &[f32],
            rows: usize,
            k: usize,
            wt: &[f32],
            ldw: usize,
            bias: &[f32],
            act: crate::kernels::simd::DenseAct,
            y: &mut [f32],
        ) {
            let s = unsafe { $S::assume() };
            // SAFETY: the caller's contract is the body's.
            unsafe { crate::kernels::simd::dense_small(s, x, rows, k, wt, ldw, bias, act, y) }
        }
        /// [`crate::kernels::backward::body::lstm`] on this tier.
        #[target_feature(enable = $feat)]
        pub(crate) fn backward_lstm(
            gates: &[f32],
            c_prev: &[f32],
            tc: &[f32],
            dh: &[f32],
            dc: &mut [f32],
            dpre: &mut [f32],
        ) {
            let s = unsafe { $S::assume() };
            crate::kernels::backward::body::lstm(s, gates, c_prev, tc, dh, dc, dpre)
        }
        /// [`crate::kernels::backward::body::gru_lbr`] on this tier.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn backward_gru_lbr(
            gates: &[f32],
            ghn: &[f32],
            h_prev: &[f32],
            dh: &[f32],
            dgx: &mut [f32],
            dgh: &mut [f32],
            dh_prev: &mut [f32],
        ) {
            let s = unsafe { $S::assume() };
            crate::kernels::backward::body::gru_lbr(s, gates, ghn, h_prev, dh, dgx, dgh, dh_prev)
        }
        /// [`crate::kernels::backward::body::gru_notes_n`] on this tier.
        #[target_feature(enable = $feat)]
        pub(crate) fn backward_gru_notes_n(gates: &[f32], dh: &[f32], dpre: &mut [f32]) {
            let s = unsafe { $S::assume() };
            crate::kernels::backward::body::gru_notes_n(s, gates, dh, dpre)
        }
        /// [`crate::kernels::backward::body::gru_notes_rz`] on this tier.
        #[target_feature(enable = $feat)]
        pub(crate) fn backward_gru_notes_rz(
            gates: &[f32],
            h_prev: &[f32],
            dh: &[f32],
            drh: &[f32],
            dpre: &mut [f32],
            dh_prev: &mut [f32],
        ) {
            let s = unsafe { $S::assume() };
            crate::kernels::backward::body::gru_notes_rz(s, gates, h_prev, dh, drh, dpre, dh_prev)
        }
        /// [`crate::kernels::backward::body::rnn`] on this tier.
        #[target_feature(enable = $feat)]
        pub(crate) fn backward_rnn(h: &[f32], dh: &[f32], relu: bool, dpre: &mut [f32]) {
            let s = unsafe { $S::assume() };
            crate::kernels::backward::body::rnn(s, h, dh, relu, dpre)
        }
        /// [`crate::kernels::outer::body`] on this tier (`2·W` accumulators and 8 more
        /// registers: operands and broadcasts).
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn outer_sums_t(
            k: usize,
            a: &[f32],
            lda: usize,
            m: usize,
            b: &[f32],
            nb: usize,
            out: &mut [f32],
        ) {
            let s = unsafe { $S::assume() };
            const W: usize = (<$S as crate::kernels::simd::Simd>::REGISTERS - 8) / 2;
            crate::kernels::outer::body::<$S, W>(s, k, a, lda, m, b, nb, out)
        }
        crate::kernels::simd::stream_entries!($S, $feat);
    };
}
pub(crate) use tier_entries;

/// The fused single-stream kernels' entry points alone (`tier_entries!` defines them for
/// each tier; `avx2::vl256` for the AVX-512 tier's 8-lane bodies): `lstm_stream` and
/// `gru_lbr_stream` with the token `$S` (a type name) and the features `$feat`.
// SAFETY: as for `tier_entries!`.
macro_rules! stream_entries {
    ($S:ident, $feat:literal) => {
        /// [`crate::kernels::cells::lstm_stream`] on this tier.
        ///
        /// # Safety
        /// As for the body.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn lstm_stream<
            const U: usize,
            const CH: usize,
            const NV: usize,
            const PAIRS: bool,
            const CHAIN: bool,
            const PAD: bool,
            const WIDE: bool,
        >(
            steps: usize,
            inp: crate::kernels::cells::StreamInput,
            h: *mut f32,
            c: *mut f32,
            out: crate::kernels::cells::StreamOut,
        ) {
            let s = unsafe { $S::assume() };
            // SAFETY: the caller's contract is the body's.
            unsafe {
                crate::kernels::cells::lstm_stream::<$S, U, CH, NV, PAIRS, CHAIN, PAD, WIDE>(
                    s, steps, inp, h, c, out,
                )
            }
        }
        /// [`crate::kernels::cells::gru_lbr_stream`] on this tier.
        ///
        /// # Safety
        /// As for the body.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn gru_lbr_stream<
            const U: usize,
            const CH: usize,
            const NV: usize,
            const PAIRS: bool,
            const CHAIN: bool,
            const PAD: bool,
            const WIDE: bool,
        >(
            steps: usize,
            inp: crate::kernels::cells::StreamInput,
            b_hn: *const f32,
            h: *mut f32,
            out: crate::kernels::cells::StreamOut,
        ) {
            let s = unsafe { $S::assume() };
            // SAFETY: the caller's contract is the body's.
            unsafe {
                crate::kernels::cells::gru_lbr_stream::<$S, U, CH, NV, PAIRS, CHAIN, PAD, WIDE>(
                    s, steps, inp, b_hn, h, out,
                )
            }
        }
    };
}
pub(crate) use stream_entries;

// ---------------------------------------------------------------------------------------
// The activations (algorithm and constants: `x86_64/mod.rs`).

/// Which activation a vector of [`activate_rows`] gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Act {
    Sigmoid,
    Tanh,
}

impl Act {
    /// Where the function reaches its limit (±1, or 0 and 1) in `f32`.
    #[inline(always)]
    fn limit(self) -> f32 {
        match self {
            Act::Sigmoid => SIGMOID_ONE_FROM,
            Act::Tanh => TANH_ONE_FROM,
        }
    }

    /// The rational function's coefficients `P`, `Q`.
    #[inline(always)]
    fn coefficients(self) -> ([f32; 5], [f32; 5]) {
        match self {
            Act::Sigmoid => (SIGMOID_P, SIGMOID_Q),
            Act::Tanh => (TANH_P, TANH_Q),
        }
    }
}

/// `min(hi, max(lo, v))` by `min`/`max` with the constant first: a NaN lane passes
/// (both return their second operand when either is NaN).
#[inline(always)]
fn clamp<S: Simd>(s: S, v: S::V, lo: f32, hi: f32) -> S::V {
    s.max(s.splat(lo), s.min(s.splat(hi), v))
}

/// The activations of `N` rows of `M` vectors, `act[m]` on column `m`, each operation
/// done for every vector before the next: the vectors' dependency chains then sit side
/// by side in the instruction stream, where the processor overlaps them (a step's
/// units one after the other were as far apart as the reorder window is deep). Every
/// vector goes through exactly the operations of its function, so the bits are those of
/// one vector alone; the forms:
///
/// - for throughput (not `CHAIN`): `x` held to `±limit`, then `n/d = x·P(x²)/Q(x²)`
///   (Estrin's scheme: after `y = x²`, three dependent operations for each part, odd in
///   `x` bit for bit), sigmoid `(n + d/2)/d` held to `[0, 1]`, tanh `n/d` held to
///   `[-1, 1]`;
/// - for a dependency chain (`CHAIN`), bit for bit the same: no clamp before the
///   polynomials, the quotient held by one-cycle integer operations on its bits
///   (sigmoid: a signed max with +0 — negative floats are negative integers — then an
///   unsigned min with 1; tanh: a signed min with the bits of 1 holds the positive lanes,
///   an unsigned min with those of −1 the negative ones), and the lanes from the limit on
///   (and NaN, unordered) replaced by the input clamped to the range, computed beside
///   the chain.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // the lockstep is the point: index every array alike
pub(crate) fn activate_rows<S: Simd, const M: usize, const N: usize, const CHAIN: bool>(
    s: S,
    x: [[S::V; M]; N],
    act: [Act; M],
) -> [[S::V; M]; N] {
    let z = s.zero();
    let mut a = x;
    if !CHAIN {
        for r in 0..N {
            for m in 0..M {
                let l = act[m].limit();
                a[r][m] = clamp(s, x[r][m], -l, l);
            }
        }
    }
    let (mut y, mut y2) = ([[z; M]; N], [[z; M]; N]);
    for r in 0..N {
        for m in 0..M {
            y[r][m] = s.mul(a[r][m], a[r][m]);
        }
    }
    for r in 0..N {
        for m in 0..M {
            y2[r][m] = s.mul(y[r][m], y[r][m]);
        }
    }
    let (mut n, mut d) = ([[z; M]; N], [[z; M]; N]);
    for r in 0..N {
        for m in 0..M {
            let (p, q) = act[m].coefficients();
            let (y, y2) = (y[r][m], y2[r][m]);
            let p01 = s.fma(s.splat(p[1]), y, s.splat(p[0]));
            let p234 = s.fma(y2, s.splat(p[4]), s.fma(s.splat(p[3]), y, s.splat(p[2])));
            let q01 = s.fma(s.splat(q[1]), y, s.splat(q[0]));
            let q234 = s.fma(y2, s.splat(q[4]), s.fma(s.splat(q[3]), y, s.splat(q[2])));
            n[r][m] = s.mul(a[r][m], s.fma(y2, p234, p01));
            d[r][m] = s.fma(y2, q234, q01);
        }
    }
    let mut out = [[z; M]; N];
    for r in 0..N {
        for m in 0..M {
            if act[m] == Act::Sigmoid {
                n[r][m] = s.fma(s.splat(0.5), d[r][m], n[r][m]);
            }
            out[r][m] = s.div(n[r][m], d[r][m]);
        }
    }
    for r in 0..N {
        for m in 0..M {
            let (q, v) = (out[r][m], x[r][m]);
            out[r][m] = match (act[m], CHAIN) {
                // Without a fused multiply-add the rationals at `±limit` round an ulp
                // short of the limits: the lanes from the limit on take them as the
                // chain form does (the same bits in both forms again).
                (Act::Sigmoid, false) if !S::FUSED => {
                    let limit = s.splat(SIGMOID_ONE_FROM);
                    let q = clamp(s, q, 0.0, 1.0);
                    s.select_not_lt(s.abs(v), limit, clamp(s, v, 0.0, 1.0), q)
                }
                (Act::Tanh, false) if !S::FUSED => {
                    let limit = s.splat(TANH_ONE_FROM);
                    let q = clamp(s, q, -1.0, 1.0);
                    s.select_not_lt(s.abs(v), limit, clamp(s, v, -1.0, 1.0), q)
                }
                (Act::Sigmoid, false) => clamp(s, q, 0.0, 1.0),
                (Act::Tanh, false) => clamp(s, q, -1.0, 1.0),
                (Act::Sigmoid, true) => {
                    let q = s.max_bits_i32(q, 0);
                    let q = s.min_bits_u32(q, ONE_BITS as u32);
                    let limit = s.splat(SIGMOID_ONE_FROM);
                    s.select_not_lt(s.abs(v), limit, clamp(s, v, 0.0, 1.0), q)
                }
                (Act::Tanh, true) => {
                    let t = s.min_bits_i32(q, ONE_BITS);
                    let t = s.min_bits_u32(t, MINUS_ONE_BITS as u32);
                    let limit = s.splat(TANH_ONE_FROM);
                    s.select_not_lt(s.abs(v), limit, clamp(s, v, -1.0, 1.0), t)
                }
            };
        }
    }
    out
}

/// Sigmoid of one vector, the form for throughput ([`activate_rows`]).
#[inline(always)]
pub(crate) fn sigmoid_v<S: Simd>(s: S, x: S::V) -> S::V {
    activate_rows::<S, 1, 1, false>(s, [[x]], [Act::Sigmoid])[0][0]
}

/// [`sigmoid_v`] in the form for a dependency chain, bit for bit ([`activate_rows`]).
#[inline(always)]
pub(crate) fn sigmoid_chain<S: Simd>(s: S, x: S::V) -> S::V {
    activate_rows::<S, 1, 1, true>(s, [[x]], [Act::Sigmoid])[0][0]
}

/// Tanh of one vector, the form for throughput ([`activate_rows`]).
#[inline(always)]
pub(crate) fn tanh_v<S: Simd>(s: S, x: S::V) -> S::V {
    activate_rows::<S, 1, 1, false>(s, [[x]], [Act::Tanh])[0][0]
}

/// [`tanh_v`] in the form for a dependency chain, bit for bit ([`activate_rows`]).
#[inline(always)]
pub(crate) fn tanh_chain<S: Simd>(s: S, x: S::V) -> S::V {
    activate_rows::<S, 1, 1, true>(s, [[x]], [Act::Tanh])[0][0]
}

/// Zeroes the lanes of `v` smaller in magnitude than `FLUSH_BELOW` (NaN stays).
#[inline(always)]
pub(crate) fn flush<S: Simd>(s: S, v: S::V) -> S::V {
    s.zero_below(v, FLUSH_BELOW)
}

/// The activations [`map`] applies.
const SIGMOID_CHAIN: u8 = 0;
const SIGMOID: u8 = 1;
const TANH_CHAIN: u8 = 2;
const TANH: u8 = 3;

/// Activation `F` of one vector.
#[inline(always)]
fn activate<S: Simd, const F: u8>(s: S, v: S::V) -> S::V {
    match F {
        SIGMOID_CHAIN => sigmoid_chain(s, v),
        SIGMOID => sigmoid_v(s, v),
        TANH_CHAIN => tanh_chain(s, v),
        _ => tanh_v(s, v),
    }
}

/// Applies activation `F` to `x` in place, `LANES` at a time, the tail as a partial
/// vector. (A const parameter, not a closure: a closure is a function of its own, built
/// without the tier's features, and is not reliably inlined into the entry point that
/// has them.)
#[inline(always)]
fn map<S: Simd, const F: u8>(s: S, x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(S::LANES);
    for c in &mut chunks {
        let p = c.as_mut_ptr();
        // SAFETY: `c` is exactly LANES contiguous, writable floats (chunks_exact_mut).
        unsafe { s.store(p, activate::<S, F>(s, s.load(p))) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let (p, n) = (tail.as_mut_ptr(), tail.len());
        // SAFETY: the partial vector touches `tail`'s n floats only.
        unsafe { s.store_n(p, n, activate::<S, F>(s, s.load_n(p, n))) };
    }
}

/// The activation [`dense_small`] applies to its outputs in registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DenseAct {
    /// None (or one the caller applies to the stored outputs).
    Identity,
    /// [`sigmoid_slice`]'s bits.
    Sigmoid,
    /// [`tanh_slice`]'s bits.
    Tanh,
}

/// `y[r] = act(bias + x[r] · W)` for `rows` rows of `k` inputs and `o = bias.len()`
/// outputs, with `W` transposed: `wt` holds `k` rows of `ldw >= o` floats (output `j` of
/// input `p` at `p·ldw + j`), zero from `o` up to a multiple of the lanes. The outputs run
/// as vectors: the even inputs' products added in order to the bias, the odd ones' in
/// order from zero (two chains, half as long), the two added, then the activation on the
/// vector still in registers, stored once. A layer of few
/// inputs and outputs (RTNeural's `Dense` layers around an 8-unit LSTM) is then a few
/// instructions, where a dot product per output, a store each and the activation reading
/// them back took most of the layer's time. Rows are independent: a row's bits do not
/// depend on the call.
///
/// # Safety
/// `ldw` is at least `o` rounded up to a multiple of `S::LANES` and `wt` holds `k·ldw`
/// floats (checked); `x` holds `rows·k`, `y` `rows·o` (checked).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dense_small<S: Simd>(
    s: S,
    x: &[f32],
    rows: usize,
    k: usize,
    wt: &[f32],
    ldw: usize,
    bias: &[f32],
    act: DenseAct,
    y: &mut [f32],
) {
    let (l, o) = (S::LANES, bias.len());
    assert!(
        ldw >= o.div_ceil(l) * l
            && wt.len() >= k * ldw
            && x.len() >= rows * k
            && y.len() >= rows * o,
        "dense_small: shapes disagree"
    );
    let (xp, wp, yp, bp) = (x.as_ptr(), wt.as_ptr(), y.as_mut_ptr(), bias.as_ptr());
    for r in 0..rows {
        let mut j = 0;
        while j < o {
            let n = (o - j).min(l);
            // SAFETY: asserted above: row r of x holds k floats, each of the k rows of wt
            // holds the whole vector at j (ldw reaches j + LANES), bias and row r of y the
            // n floats from j.
            unsafe {
                let (mut acc, mut odd) = (s.load_n(bp.add(j), n), s.zero());
                let (xr, wj) = (xp.add(r * k), wp.add(j));
                let mut p = 0;
                while p + 1 < k {
                    acc = s.fma(s.splat(*xr.add(p)), s.load(wj.add(p * ldw)), acc);
                    odd = s.fma(s.splat(*xr.add(p + 1)), s.load(wj.add((p + 1) * ldw)), odd);
                    p += 2;
                }
                if p < k {
                    acc = s.fma(s.splat(*xr.add(p)), s.load(wj.add(p * ldw)), acc);
                }
                let acc = s.add(acc, odd);
                let v = match act {
                    DenseAct::Identity => acc,
                    DenseAct::Sigmoid => activate::<S, SIGMOID_CHAIN>(s, acc),
                    DenseAct::Tanh => activate::<S, TANH_CHAIN>(s, acc),
                };
                s.store_n(yp.add(r * o + j), n, v);
            }
            j += l;
        }
    }
}

/// Up to this many vectors a map is taken to be a single stream's row that the next step
/// waits on (an RNN's `h`), and runs the activations' form for a chain; longer ones the
/// form for throughput. The two give the same bits.
const CHAIN_UP_TO_VECTORS: usize = 2;

/// `x <- sigmoid(x)` elementwise.
#[inline(always)]
pub(crate) fn sigmoid_slice<S: Simd>(s: S, x: &mut [f32]) {
    if x.len() <= CHAIN_UP_TO_VECTORS * S::LANES {
        map::<S, SIGMOID_CHAIN>(s, x);
    } else {
        map::<S, SIGMOID>(s, x);
    }
}

/// `x <- tanh(x)` elementwise.
#[inline(always)]
pub(crate) fn tanh_slice<S: Simd>(s: S, x: &mut [f32]) {
    if x.len() <= CHAIN_UP_TO_VECTORS * S::LANES {
        map::<S, TANH_CHAIN>(s, x);
    } else {
        map::<S, TANH>(s, x);
    }
}

/// What the tiers' tests share: inputs for comparing an activation's two forms (for a
/// dependency chain and for throughput), which must agree bit for bit.
#[cfg(test)]
pub(crate) mod forms {
    use super::{SIGMOID_ONE_FROM, TANH_ONE_FROM};

    /// Every 97th `f32` bit pattern (44 million, both signs, NaNs included), then the
    /// limits, the floats beside them, infinities, zeros and NaNs of both signs.
    pub(crate) fn inputs() -> Vec<f32> {
        let mut xs: Vec<f32> = (0..u32::MAX / 97).map(|i| f32::from_bits(i * 97)).collect();
        for l in [TANH_ONE_FROM, SIGMOID_ONE_FROM, 1.0] {
            let near = [l.next_down(), l, l.next_up()];
            xs.extend(near.iter().flat_map(|&v| [v, -v]));
        }
        xs.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
        ]);
        xs.extend([f32::MAX, f32::MIN, f32::MIN_POSITIVE, -1e-45]);
        xs
    }

    /// `[sigmoid_v, sigmoid_chain, tanh_v, tanh_chain]` of `xs` (a multiple of `LANES`
    /// long) on tier `s`.
    #[inline(always)]
    pub(crate) fn of<S: super::Simd>(s: S, xs: &[f32]) -> [Vec<f32>; 4] {
        let mut out: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0.0; xs.len()]);
        for (f, o) in out.iter_mut().enumerate() {
            for (x, y) in xs.chunks_exact(S::LANES).zip(o.chunks_exact_mut(S::LANES)) {
                // SAFETY: both chunks are exactly LANES floats.
                unsafe {
                    let v = s.load(x.as_ptr());
                    let r = match f {
                        0 => super::sigmoid_v(s, v),
                        1 => super::sigmoid_chain(s, v),
                        2 => super::tanh_v(s, v),
                        _ => super::tanh_chain(s, v),
                    };
                    s.store(y.as_mut_ptr(), r);
                }
            }
        }
        out
    }

    /// Asserts `a` and `b` (one form's outputs each for `xs`) equal bit for bit, NaN
    /// where either is NaN.
    pub(crate) fn assert_same(name: &str, xs: &[f32], a: &[f32], b: &[f32]) {
        for ((&x, &p), &q) in xs.iter().zip(a).zip(b) {
            if p.is_nan() || q.is_nan() {
                assert!(p.is_nan() && q.is_nan(), "{name}({x:e}): {p:e} vs {q:e}");
            } else {
                assert_eq!(p.to_bits(), q.to_bits(), "{name}({x:e}): {p:e} vs {q:e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every SIMD tier's two forms of each activation (for a dependency chain and for
    /// throughput) give the same bits on 44 million inputs and the edges.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn chain_and_throughput_forms_agree_bit_for_bit() {
        use crate::kernels::activation::Tier;
        use crate::kernels::x86_64::{avx, avx2, avx512, sse};
        let mut xs = forms::inputs();
        xs.resize(xs.len().next_multiple_of(16), 0.5);
        let mut ran = 0;
        for tier in [Tier::Sse41, Tier::Avx, Tier::Avx2, Tier::Avx512] {
            if !tier.is_available() {
                continue; // this tier cannot run here; the dispatcher never picks it
            }
            // SAFETY: the tier's features were detected just above.
            let [s_v, s_chain, t_v, t_chain] = unsafe {
                match tier {
                    Tier::Sse41 => sse::activation_forms(&xs),
                    Tier::Avx => avx::activation_forms(&xs),
                    Tier::Avx2 => avx2::activation_forms(&xs),
                    _ => avx512::activation_forms(&xs),
                }
            };
            forms::assert_same("sigmoid", &xs, &s_v, &s_chain);
            forms::assert_same("tanh", &xs, &t_v, &t_chain);
            ran += 1;
        }
        assert!(ran > 0 || !Tier::Sse41.is_available());
    }

    /// NEON's two forms of each activation give the same bits.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn chain_and_throughput_forms_agree_bit_for_bit_on_neon() {
        use crate::kernels::aarch64::neon;
        use crate::kernels::activation::Tier;
        if !Tier::Neon.is_available() {
            return; // no NEON: the dispatcher never picks it
        }
        let mut xs = forms::inputs();
        xs.resize(xs.len().next_multiple_of(16), 0.5);
        // SAFETY: NEON was detected just above.
        let [s_v, s_chain, t_v, t_chain] = unsafe { neon::activation_forms(&xs) };
        forms::assert_same("sigmoid", &xs, &s_v, &s_chain);
        forms::assert_same("tanh", &xs, &t_v, &t_chain);
    }

    #[test]
    fn sigmoid_coefficients_are_the_tanh_ones_scaled_exactly() {
        for k in 0..5 {
            let s = 4f64.powi(k as i32);
            assert_eq!(SIGMOID_P[k] as f64, TANH_P[k] as f64 / (4.0 * s));
            assert_eq!(SIGMOID_Q[k] as f64, TANH_Q[k] as f64 / s);
        }
    }

    #[test]
    fn the_limits_are_where_the_functions_round_to_one() {
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        for (from, f) in [
            (TANH_ONE_FROM, f64::tanh as fn(f64) -> f64),
            (SIGMOID_ONE_FROM, sigmoid),
        ] {
            let below = f32::from_bits(from.to_bits() - 1);
            assert_eq!(f(from as f64) as f32, 1.0);
            assert!((f(below as f64) as f32) < 1.0);
        }
        assert_eq!(ONE_BITS, 1.0f32.to_bits() as i32);
    }
}
