//! GEMM against a weight matrix packed once: `C (+)= A · B` where `B` (`[k][n]`) is
//! cut into panels of `NR = 32` columns (zero-padded at the right edge), and groups of
//! panels are stored row-interleaved: group `g` is `k` rows of its panels' columns side
//! by side. AVX-512 packs groups of `GROUP = 4` panels (`[k][4·32]`): a single row of `A`
//! (the streaming step) then reads each group as one contiguous stream, which the
//! prefetcher keeps up with (measured on the H=128 LSTM step product: 98 GB/s from L2).
//! The other tiers pack single panels (`[k][32]`), which their one-row product (a panel's
//! sums in 16 registers) reads as one stream (`group_for`). The bodies are
//! `kernels::microkernel`: rows of `A` in blocks of 6 broadcast one element at a time
//! into 2 (AVX2) or 4 (AVX-512) vectors of accumulators per row, reading `A` in place.
//!
//! This serves every product whose `B` is a weight matrix reused many times: the
//! per-step recurrent product (`h · W_hhᵀ`), its backward (`dG · W_hh`), and every
//! product of the streaming step. Unlike `matrixmultiply::sgemm`, it neither allocates
//! nor re-packs per call (sgemm re-packs `B` on every call: for a 32×512×2048 step
//! product that copy costs as much as the arithmetic).
//!
//! A `B` larger than about half an L2 (`W_hh` from H = 512 on) comes from L3 at every
//! step; the kernel then prefetches the next chunk of `B` (128 KB) into L2 while
//! it works through the current one, spread over the chunk's calls (one cache line or
//! more per step of their inner loops). On the
//! development machine (2 MB L2) that took the 32 x 512 x 2048 step product from 142 to
//! 180 GFLOP/s and 64 x 1024 x 4096 from 162 to 185, where `B` in L2 gives 187-190.
//!
//! Each element of `C` is one dot product accumulated over `p = 0..k` in order, started
//! from zero, then added to `C` (or stored): the result for a row does not depend on
//! which other rows are in the same call. That makes batch chunking invisible in the
//! output bits.

use super::activation::{kernel_tier, Tier};
use super::aligned::LineAligned;
use super::cells::{StreamInput, StreamWeights};
use crate::config::CellKind;

/// Panel width in floats.
pub const NR: usize = 32;
/// Panels per interleaved group.
pub const GROUP: usize = 4;
/// Rows of `B` per pass over `C` (see `run`).
const KC: usize = 256;

/// Where panel `jp` starts in the packed data, and the row stride of its group, for
/// `panels` panels of `k` rows interleaved `group` at a time.
#[inline(always)]
pub(crate) fn panel_at(jp: usize, k: usize, panels: usize, group: usize) -> (usize, usize) {
    let g = jp / group;
    let in_group = (panels - g * group).min(group);
    (g * group * k * NR + (jp % group) * NR, in_group * NR)
}

/// Panels per interleaved group for `tier`: [`GROUP`] on AVX-512, whose one-row products
/// read a whole group row (512 bytes) per step of `k`; 1 elsewhere. AVX2's one-row
/// product holds a panel's sums (16 registers), and reading a quarter of each 512-byte
/// group row, four passes per group, ran at 65 GB/s from L2 on an AMD Zen 3 core where
/// contiguous panels ran at 103 (`k = 128`, `n = 512`: the H = 128 LSTM step's product).
fn group_for(tier: Tier) -> usize {
    match tier {
        Tier::Avx512 => GROUP,
        _ => 1,
    }
}

/// `B` (`[k][n]`) packed into `ceil(n / NR)` panels of `[k][NR]`.
///
/// The panels start on a 64-byte boundary ([`LineAligned`]), so that every 16-float row
/// of a panel is one cache line.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedB {
    k: usize,
    n: usize,
    /// Panels per interleaved group ([`group_for`] the process tier when packed).
    group: usize,
    data: LineAligned,
}

impl Default for PackedB {
    /// An empty `[0][0]` matrix.
    fn default() -> PackedB {
        PackedB::zeroed(0, 0, 1)
    }
}

impl PackedB {
    /// Packs `B = Wᵀ` for a row-major `W` of `n` rows and `k` columns (a weight matrix
    /// `[out][in]` used as `x · Wᵀ`).
    pub fn from_transposed(w: &[f32], n: usize, k: usize) -> PackedB {
        assert!(w.len() >= n * k, "PackedB::from_transposed: W too short");
        PackedB::pack(k, n, |p, j| w[j * k + p])
    }

    /// Packs a row-major `B` of `k` rows and `n` columns with row stride `ldb`.
    pub fn from_rows(b: &[f32], k: usize, n: usize, ldb: usize) -> PackedB {
        assert!(
            k == 0 || n == 0 || b.len() >= (k - 1) * ldb + n,
            "PackedB::from_rows: B too short"
        );
        PackedB::pack(k, n, |p, j| b[p * ldb + j])
    }

    /// Zero panels for `[k][n]`, aligned.
    fn zeroed(k: usize, n: usize, group: usize) -> PackedB {
        let data = LineAligned::zeroed(n.div_ceil(NR) * k * NR);
        PackedB { k, n, group, data }
    }

    /// The packed panels.
    fn panels(&self) -> &[f32] {
        self.data.as_slice()
    }

    fn pack(k: usize, n: usize, at: impl Fn(usize, usize) -> f32) -> PackedB {
        let panels = n.div_ceil(NR);
        let group = group_for(kernel_tier());
        #[cfg(test)]
        let group = tests::GROUP_OVERRIDE.with(|g| g.get()).unwrap_or(group);
        let mut out = PackedB::zeroed(k, n, group);
        let data = out.data.as_mut_slice();
        for jp in 0..panels {
            let (off, ldb) = panel_at(jp, k, panels, group);
            for p in 0..k {
                let dst = &mut data[off + p * ldb..off + p * ldb + NR];
                for (c, d) in dst.iter_mut().enumerate() {
                    let j = jp * NR + c;
                    if j < n {
                        *d = at(p, j);
                    }
                }
            }
        }
        out
    }

    /// Rows of `B` (the inner dimension).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of `B`.
    pub fn n(&self) -> usize {
        self.n
    }
}

/// What each element of `C` starts from before the product is added.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Init {
    /// Zero: `C` is only written.
    Zero,
    /// `C`'s own value.
    Acc,
    /// `bias[j]` for column `j` (the pointer addresses column 0 of the current columns).
    Bias(*const f32),
}

/// [`Init`] with a borrowed bias, checked against `B`'s width by [`run`].
#[derive(Clone, Copy, Debug)]
enum Start<'a> {
    Zero,
    Acc,
    Bias(&'a [f32]),
}

impl Start<'_> {
    fn of(accumulate: bool) -> Self {
        if accumulate {
            Start::Acc
        } else {
            Start::Zero
        }
    }
}

impl Init {
    /// The same start for the columns from `col` on.
    #[inline(always)]
    pub(crate) fn at(self, col: usize) -> Init {
        match self {
            Init::Bias(p) => Init::Bias(p.wrapping_add(col)),
            other => other,
        }
    }
}

/// `C[i][j] = (accumulate ? C[i][j] : 0) + Σ_p A[i·lda + p] · B[p][j]` for `i < m`,
/// `j < b.n()`, on the process-wide kernel tier. No allocation.
///
/// Panics (a bug, caught at the FFI boundary) if `A` or `C` is too short.
// The plain entry point its variants are described against; no caller since the
// kernels stopped being public API.
#[allow(dead_code)]
pub fn gemm_packed(
    m: usize,
    a: &[f32],
    lda: usize,
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    run(
        kernel_tier(),
        m,
        a,
        lda,
        b,
        c,
        ldc,
        Start::of(accumulate),
        false,
    )
}

/// `C[i][j] = bias[j] + Σ_p A[i·lda + p] · B[p][j]`: bit for bit `C = bias` row by row
/// followed by [`gemm_packed`] with `accumulate`, without the separate pass that writes
/// the bias rows (on a hoisted input product that pass alone was 5 % of an LSTM
/// forward). Panics if `bias` is shorter than `b.n()`.
pub fn gemm_packed_bias(
    m: usize,
    a: &[f32],
    lda: usize,
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    bias: &[f32],
) {
    run(
        kernel_tier(),
        m,
        a,
        lda,
        b,
        c,
        ldc,
        Start::Bias(bias),
        false,
    )
}

/// [`gemm_packed`] on a given tier (falls back to the best available if the CPU lacks it).
#[cfg(test)] // only the kernel tests pick a tier explicitly
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed_with(
    tier: Tier,
    m: usize,
    a: &[f32],
    lda: usize,
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    run(
        tier.available_or_best(),
        m,
        a,
        lda,
        b,
        c,
        ldc,
        Start::of(accumulate),
        false,
    )
}

/// [`gemm_packed`] visiting B's groups of panels last to first when `reverse` (AVX-512
/// and AVX2; the scalar tier ignores it). Every element is the same sum either way (each group's
/// chunks of the inner dimension are still added in order), so the result is bit for bit
/// the same. The per-step recurrent product alternates the direction: a `W_hhᵀ` larger
/// than L2 is otherwise read in the same order every step and least-recently-used
/// replacement evicts each line before the next step needs it; reversed, a step starts
/// on the part the previous step read last, still in L2.
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed_sweep(
    m: usize,
    a: &[f32],
    lda: usize,
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    reverse: bool,
) {
    run(
        kernel_tier(),
        m,
        a,
        lda,
        b,
        c,
        ldc,
        Start::of(accumulate),
        reverse,
    )
}

/// `y (+)= x · B` for a single row `x` (`[k]`), for the single-stream streaming step.
/// Unlike [`gemm_packed`], the inner dimension is summed in two interleaved partial sums
/// (even and odd `p`) to keep twice as many FMAs in flight: one row against a handful of
/// panels is otherwise bound by the FMA latency. The summation order therefore differs
/// from [`gemm_packed`]'s (results agree to rounding, not bit for bit), which is why the
/// batched paths, whose bits must not depend on how rows are grouped, do not use it.
// The plain entry point its variants are described against; no caller since the
// kernels stopped being public API.
#[allow(dead_code)]
pub fn gemv_packed(x: &[f32], b: &PackedB, y: &mut [f32], accumulate: bool) {
    gemv_packed_sweep(x, b, y, accumulate, false);
}

/// [`gemv_packed`] visiting the groups of panels last to first when `reverse` (the SIMD
/// tiers; the scalar one ignores it). Every column is the same sum either way, so the result is bit
/// for bit the same. A streaming step alternates the direction: `B` larger than L1 is
/// otherwise read in the same order every step, and least-recently-used replacement
/// then evicts each line just before it is needed again; reversed, the step starts on
/// the panels the previous step read last, still in L1.
pub fn gemv_packed_sweep(x: &[f32], b: &PackedB, y: &mut [f32], accumulate: bool, reverse: bool) {
    let (k, n) = (b.k, b.n);
    assert!(
        x.len() >= k && y.len() >= n,
        "gemv_packed: x or y too short"
    );
    let (xp, bp, yp) = (x.as_ptr(), b.panels().as_ptr(), y.as_mut_ptr());
    match kernel_tier() {
        // SAFETY: the process tier is Avx512 only when AVX-512F was detected; x holds
        // k floats, y n floats, B's panels `ceil(n/NR) * k * NR` (asserted above).
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => unsafe {
            super::x86_64::avx512::gemv(k, n, xp, bp, b.group, yp, accumulate, reverse)
        },
        // SAFETY: as above, AVX2 and FMA detected.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => unsafe {
            super::x86_64::avx2::gemv(k, n, xp, bp, b.group, yp, accumulate, reverse)
        },
        t => run(t, 1, x, k, b, y, n, Start::of(accumulate), false),
    }
}

/// `y = bias + x · B` for a single row, bit for bit [`gemm_packed_bias`] on one row (the
/// sums a block of steps computes for its inputs), without the GEMM's dispatch, which
/// cost a GRU step at H = 64 a seventh: the input side of a streaming step where the
/// fused kernels do not run and the recurrent product goes elsewhere.
pub fn gemv_packed_bias(bias: &[f32], x: &[f32], b: &PackedB, y: &mut [f32]) {
    let (k, n) = (b.k, b.n);
    assert!(
        bias.len() >= n && x.len() >= k && y.len() >= n,
        "gemv_packed_bias: shapes disagree"
    );
    let (bsp, xp, bp, yp) = (
        bias.as_ptr(),
        x.as_ptr(),
        b.panels().as_ptr(),
        y.as_mut_ptr(),
    );
    match kernel_tier() {
        // SAFETY: the process tier is Avx512 only when AVX-512F was detected; bias and y
        // hold n floats, x its k, b its packed panels (asserted).
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => unsafe { super::x86_64::avx512::gemv_bias(n, bsp, k, xp, bp, b.group, yp) },
        // SAFETY: as above, AVX2 and FMA detected.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => unsafe { super::x86_64::avx2::gemv_bias(n, bsp, k, xp, bp, b.group, yp) },
        _ => gemm_packed_bias(1, x, k, b, y, n, bias),
    }
}

/// `y = bias + x1 · B1 + x2 · B2` (`B1`, `B2` with the same `n`): a layer's whole
/// pre-activation for one streaming step (`x · W_ihᵀ` and `h · W_hhᵀ`) in one pass.
/// Bit for bit [`gemm_packed_bias`] of `x1` (one row: what a block of steps computes for
/// its inputs), then [`gemv_packed`] with `x2` accumulating, in either sweep direction
/// (see [`gemv_packed_sweep`]).
pub fn gemv2_packed(
    bias: &[f32],
    x1: &[f32],
    b1: &PackedB,
    x2: &[f32],
    b2: &PackedB,
    y: &mut [f32],
    reverse: bool,
) {
    let n = b1.n;
    assert!(
        b2.n == n
            && b1.group == b2.group
            && bias.len() >= n
            && y.len() >= n
            && x1.len() >= b1.k
            && x2.len() >= b2.k,
        "gemv2_packed: shapes disagree"
    );
    let (bsp, yp) = (bias.as_ptr(), y.as_mut_ptr());
    let (x1p, b1p, x2p, b2p) = (
        x1.as_ptr(),
        b1.panels().as_ptr(),
        x2.as_ptr(),
        b2.panels().as_ptr(),
    );
    match kernel_tier() {
        // SAFETY: the process tier is Avx512 only when AVX-512F was detected; bias and y
        // hold n floats, x1 and x2 their k, b1 and b2 their packed panels (asserted).
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => unsafe {
            super::x86_64::avx512::gemv2(
                n, bsp, b1.k, x1p, b1p, b2.k, x2p, b2p, b1.group, yp, reverse,
            )
        },
        // SAFETY: as above, AVX2 and FMA detected.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => unsafe {
            super::x86_64::avx2::gemv2(
                n, bsp, b1.k, x1p, b1p, b2.k, x2p, b2p, b1.group, yp, reverse,
            )
        },
        _ => {
            gemm_packed_bias(1, x1, b1.k, b1, y, n, bias);
            gemv_packed_sweep(x2, b2, y, true, reverse);
        }
    }
}

/// Up to this many outputs [`dense_rows`] takes a dot product per output instead of the
/// packed GEMM (whose panels are 32 columns wide).
const NARROW_OUTPUTS: usize = 8;

/// A dense layer's kernel for few outputs: `(x, rows, k, w, o, bias, y)`, see
/// [`super::cells::dense_narrow`].
pub(crate) type DenseNarrowFn = unsafe fn(&[f32], usize, usize, &[f32], usize, &[f32], &mut [f32]);

/// The dot-product kernel of the process tier for a dense layer of `o` outputs, where it
/// runs (the SIMD tiers, up to [`NARROW_OUTPUTS`]); chosen once, with the weights.
pub(crate) fn dense_narrow_kernel(o: usize) -> Option<DenseNarrowFn> {
    if o > NARROW_OUTPUTS {
        return None;
    }
    match kernel_tier() {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => Some(super::x86_64::avx2::dense_narrow),
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => Some(super::x86_64::avx512::dense_narrow),
        _ => None,
    }
}

/// `y = bias + x · wᵀ` for `rows` rows of `k` inputs and `o` outputs (`w` is `[o][k]`,
/// `w_t` the same weights packed as `B`): a dense head. Few outputs run as dot products
/// (`narrow`, from [`dense_narrow_kernel`]), the rest (and the scalar tier) as
/// [`gemm_packed_bias`]. Rows are independent either way, so a row's bits do not depend
/// on the call it is in (a single step and a block agree).
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn dense_rows(
    narrow: Option<DenseNarrowFn>,
    x: &[f32],
    rows: usize,
    k: usize,
    w: &[f32],
    w_t: &PackedB,
    bias: &[f32],
    y: &mut [f32],
) {
    let o = bias.len();
    match narrow {
        // SAFETY: `dense_narrow_kernel` gives only kernels of the process tier
        // (detected); the kernel checks the slices' lengths itself.
        Some(f) => unsafe { f(x, rows, k, w, o, bias, y) },
        None => {
            assert!(w_t.k == k && w_t.n == o, "dense_rows: shapes disagree");
            gemm_packed_bias(rows, x, k, w_t, y, o, bias)
        }
    }
}

/// Whether a fused stream kernel runs for `units` hidden units and `k` inputs: `H` = 8,
/// 16 or 32 on the SIMD tiers (the audio-model sizes, whose per-step work is small
/// enough for calls and round trips through memory to matter), `k <= KC` (the packed
/// GEMM's input product in one chunk, whose order the kernels follow).
pub(crate) fn stream_fused(units: usize, k: usize) -> bool {
    let tier_has = match kernel_tier() {
        Tier::Avx512 | Tier::Avx2 => matches!(units, 8 | 16 | 32),
        Tier::Scalar => false,
    };
    tier_has && k <= KC
}

/// The tier whose cell kernels a fused stream of `units` units matches bit for bit:
/// the AVX2 ones for 8 units (their kernel is AVX2's, on either tier), else the
/// process tier's.
#[cfg(test)]
pub(crate) fn stream_cell_tier(units: usize) -> Tier {
    if units == 8 && kernel_tier() == Tier::Avx512 {
        Tier::Avx2
    } else {
        kernel_tier()
    }
}

/// A fused single-stream kernel of the process tier for one layer's cell and size.
#[derive(Clone, Copy, Debug)]
enum StreamKernel {
    /// An LSTM layer: `(steps, input, h, c, out)`.
    Lstm(LstmStreamFn),
    /// A linear-before-reset GRU layer: `(steps, input, b_hn, h, out)`.
    GruLbr(GruStreamFn),
}

type LstmStreamFn = unsafe fn(usize, StreamInput, *mut f32, *mut f32, *mut f32);
type GruStreamFn = unsafe fn(usize, StreamInput, *const f32, *mut f32, *mut f32);

/// One layer's fused single-stream kernel and its weights in the kernel's order, chosen
/// and laid out once (with the packed weights) for the layer's cell and size on the
/// process tier: the unit vectors and the products' accumulators fixed at compile time,
/// as RTNeural's compile-time models fix them. Each kernel sums `W_hh h` as its tier's
/// GEMV does (`PAIRS`), so a fused step is bit for bit the general path's.
#[derive(Clone, Debug)]
pub(crate) struct StreamLayer {
    kernel: StreamKernel,
    gates: usize,
    w: StreamWeights,
}

impl StreamLayer {
    /// The fused kernel for a layer of `cell` with `units` hidden units and `k` inputs
    /// (PyTorch's `w_ih` `[G·H][k]`, `w_hh` `[G·H][H]`, the folded bias `[G·H]`), where
    /// [`stream_fused`]; `None` elsewhere.
    pub(crate) fn new(
        cell: CellKind,
        units: usize,
        k: usize,
        w_ih: &[f32],
        w_hh: &[f32],
        bias: &[f32],
    ) -> Option<StreamLayer> {
        if !stream_fused(units, k) {
            return None;
        }
        let (kernel, lanes, ch) = stream_kernel(cell, units)?;
        let gates = cell.gates();
        let w = StreamWeights::new(gates, units, k, lanes, ch, w_ih, w_hh, bias);
        Some(StreamLayer { kernel, gates, w })
    }

    /// Runs the timesteps of one stream: per step the gate pre-activations (`bias + x ·
    /// W_ihᵀ`, then `+ h · W_hhᵀ`) and the state update, in one kernel; `x` holds `steps`
    /// rows of inputs, `h` (and for the LSTM `c`) is the state (updated), `b_hn` the
    /// GRU's hidden bias of the candidate gate (unused for the LSTM), `out` receives each
    /// step's `h` (rows of `H`). Bit for bit what [`gemm_packed_bias`] of the inputs into
    /// gate rows, [`gemv_packed`] into each row (or a scratch row, GRU) and
    /// `activation::lstm_state` / `gru_lbr_state` give, step by step.
    #[inline]
    pub(crate) fn run(
        &self,
        x: &[f32],
        steps: usize,
        b_hn: &[f32],
        h: &mut [f32],
        c: &mut [f32],
        out: &mut [f32],
    ) {
        let units = h.len();
        assert!(
            units * self.gates == self.w.gates_units()
                && Some(x.len()) == steps.checked_mul(self.w.k())
                && out.len() >= steps * units,
            "stream kernel: shapes disagree"
        );
        let (inp, hp, op) = (self.w.input(x.as_ptr()), h.as_mut_ptr(), out.as_mut_ptr());
        // SAFETY: the kernel was chosen by `stream_kernel` for the process tier
        // (detected), this cell and these units, with `k <= KC`, and the weights laid
        // out for it (`StreamWeights::new`); x, h and out were checked just above, c and
        // b_hn below.
        unsafe {
            match self.kernel {
                StreamKernel::Lstm(f) => {
                    assert!(c.len() == units, "lstm stream: c and h differ in length");
                    f(steps, inp, hp, c.as_mut_ptr(), op)
                }
                StreamKernel::GruLbr(f) => {
                    assert!(
                        b_hn.len() == units,
                        "gru stream: b_hn and h differ in length"
                    );
                    f(steps, inp, b_hn.as_ptr(), hp, op)
                }
            }
        }
    }
}

/// The kernel for a layer of `cell` with `units` hidden units on the process tier, where
/// [`stream_fused`], with the lanes and unit vectors per chunk its weights are laid out
/// for.
fn stream_kernel(cell: CellKind, units: usize) -> Option<(StreamKernel, usize, usize)> {
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86_64::{avx2, avx512};
        use StreamKernel::{GruLbr, Lstm};
        // `stream_fused` admits AVX2 (or AVX-512) for these sizes; 8 units run the AVX2
        // body on either tier (half an AVX-512 vector), summed as the process tier's
        // GEMV (PAIRS on both). AVX2's 16 registers hold one unit vector's gate sums per
        // pass, except the GRU's two (three gate vectors each: measured faster).
        let kernel = match (kernel_tier(), cell, units) {
            (Tier::Avx512, CellKind::Lstm, 8) => (Lstm(avx2::lstm_stream::<1, 1, 4, true>), 8, 1),
            (Tier::Avx512, CellKind::Lstm, 16) => {
                (Lstm(avx512::lstm_stream::<1, 1, 4, true>), 16, 1)
            }
            (Tier::Avx512, CellKind::Lstm, 32) => {
                (Lstm(avx512::lstm_stream::<2, 2, 8, true>), 16, 2)
            }
            (Tier::Avx512, CellKind::GruLbr, 8) => {
                (GruLbr(avx2::gru_lbr_stream::<1, 1, 3, true>), 8, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 16) => {
                (GruLbr(avx512::gru_lbr_stream::<1, 1, 3, true>), 16, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 32) => {
                (GruLbr(avx512::gru_lbr_stream::<2, 2, 6, true>), 16, 2)
            }
            (Tier::Avx2, CellKind::Lstm, 8) => (Lstm(avx2::lstm_stream::<1, 1, 4, true>), 8, 1),
            (Tier::Avx2, CellKind::Lstm, 16) => (Lstm(avx2::lstm_stream::<2, 1, 4, true>), 8, 1),
            (Tier::Avx2, CellKind::Lstm, 32) => (Lstm(avx2::lstm_stream::<4, 1, 4, true>), 8, 1),
            (Tier::Avx2, CellKind::GruLbr, 8) => {
                (GruLbr(avx2::gru_lbr_stream::<1, 1, 3, true>), 8, 1)
            }
            (Tier::Avx2, CellKind::GruLbr, 16) => {
                (GruLbr(avx2::gru_lbr_stream::<2, 2, 6, true>), 8, 2)
            }
            (Tier::Avx2, CellKind::GruLbr, 32) => {
                (GruLbr(avx2::gru_lbr_stream::<4, 2, 6, true>), 8, 2)
            }
            _ => return None,
        };
        Some(kernel)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (cell, units);
        None
    }
}

/// Packed B above this size is prefetched chunk by chunk into L2 (the L2 holds 2 MB on
/// the development machine; `W_hh` of an LSTM with H = 512 is 4 MB).
const PREFETCH_ABOVE_BYTES: usize = 1 << 20;

/// The dispatch; `tier` must be one this CPU runs (`kernel_tier()` or checked).
#[allow(clippy::too_many_arguments)]
#[inline]
fn run(
    tier: Tier,
    m: usize,
    a: &[f32],
    lda: usize,
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    start: Start<'_>,
    reverse: bool,
) {
    let (k, n) = (b.k, b.n);
    if m == 0 || n == 0 {
        return;
    }
    let init = match start {
        Start::Zero => Init::Zero,
        Start::Acc => Init::Acc,
        Start::Bias(bias) => {
            assert!(bias.len() >= n, "gemm_packed: bias too short");
            Init::Bias(bias.as_ptr())
        }
    };
    assert!(
        ldc >= n && c.len() >= (m - 1) * ldc + n,
        "gemm_packed: C too short"
    );
    assert!(
        k == 0 || (lda >= k && a.len() >= (m - 1) * lda + k),
        "gemm_packed: A too short"
    );
    match tier {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 | Tier::Avx2 => {
            let (ap, bp, cp) = (a.as_ptr(), b.panels().as_ptr(), c.as_mut_ptr());
            let panels = n.div_ceil(NR);
            // B larger than about half an L2 is read from L3 (or memory) at every call:
            // the kernel then fetches the next chunk into L2 while it works on this one.
            let far = b.panels().len() * 4 > PREFETCH_ABOVE_BYTES;
            x86::group_chunks(k, n, b.group, init, reverse, |g0, g1, p0, kc, acc, next| {
                // The next chunk's rows of its group: contiguous in the packing.
                let pf = match next {
                    Some((ng0, np0, nk)) if far => {
                        let (off, ldb) = panel_at(ng0, k, panels, b.group);
                        (off + np0 * ldb, nk * ldb)
                    }
                    _ => (0, 0),
                };
                // SAFETY: both callers pass a tier this CPU runs (`kernel_tier()` is
                // detected, `available_or_best` checks), so its features are present; the
                // asserts above bound every row of A (columns p0..p0+kc <= k) and C the
                // kernels touch, B's panels hold `panels * k * NR` floats (rows
                // p0..p0+kc of panels g0..g1 are read, and the prefetched range is a
                // chunk of them), and a bias holds n floats.
                unsafe {
                    let ap = ap.add(p0);
                    let pf = (bp.add(pf.0), pf.1);
                    if tier == Tier::Avx512 {
                        super::x86_64::avx512::gemm_group(
                            m, k, p0, kc, n, ap, lda, bp, b.group, cp, ldc, acc, g0, g1, pf,
                        )
                    } else {
                        super::x86_64::avx2::gemm_group(
                            m, k, p0, kc, n, ap, lda, bp, b.group, cp, ldc, acc, g0, g1, pf,
                        )
                    }
                }
            })
        }
        _ => {
            let bias = match start {
                Start::Bias(bias) => Some(bias),
                _ => None,
            };
            gemm_scalar(
                m,
                k,
                n,
                a,
                lda,
                b.panels(),
                b.group,
                c,
                ldc,
                matches!(start, Start::Acc),
                bias,
            )
        }
    }
}

/// The portable tier and the reference for the others.
#[allow(clippy::too_many_arguments)]
fn gemm_scalar(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    bd: &[f32],
    group: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    bias: Option<&[f32]>,
) {
    let panels = n.div_ceil(NR);
    for jp in 0..panels {
        let ncols = (n - jp * NR).min(NR);
        let (off, ldb) = panel_at(jp, k, panels, group);
        for i in 0..m {
            let mut acc = [0.0f32; NR];
            let arow = &a[i * lda..i * lda + k];
            for (p, &av) in arow.iter().enumerate() {
                for (s, &bv) in acc.iter_mut().zip(&bd[off + p * ldb..off + p * ldb + NR]) {
                    *s += av * bv;
                }
            }
            let crow = &mut c[i * ldc + jp * NR..i * ldc + jp * NR + ncols];
            for (j, (cv, s)) in crow.iter_mut().zip(acc).enumerate() {
                *cv = match bias {
                    Some(bv) => bv[jp * NR + j] + s,
                    None if accumulate => *cv + s,
                    None => s,
                };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The chunking of the packed GEMM over groups and `KC` rows, and the AVX-512 GEMV.
    //! The GEMM's body is `kernels::microkernel`.
    use super::{Init, KC, NR};
    use crate::kernels::microkernel::groups;

    /// Calls `f(g0, g1, p0, k, start, next)` for every interleaved group of panels `g0..g1` of
    /// an `n`-column B (last to first when `reverse`), and in each group for the inner
    /// dimension `0..kl` in chunks `p0..p0 + k` of `KC` rows, the first started from
    /// `init`, the others from the partial sums (`Init::Acc`). Every row of A meets a
    /// chunk before the next: the chunk's slice of B (128 KB) is read from memory once
    /// and then from L2, also for the rows left over after the row blocks (a second pass
    /// over all of B would read it again from L3 when B is larger than L2, as `W_hh` is
    /// for `H >= 512`). Each element adds its chunks in order from its start, so neither
    /// the group order nor the chunking shows in the bits. `next` is the chunk after this
    /// one (its first panel, first row and rows), which the kernel may prefetch.
    pub fn group_chunks(
        kl: usize,
        n: usize,
        group: usize,
        init: Init,
        reverse: bool,
        mut f: impl FnMut(usize, usize, usize, usize, Init, Option<(usize, usize, usize)>),
    ) {
        let panels = n.div_ceil(NR);
        let mut chunks = groups(panels, group, reverse)
            .flat_map(|g| {
                let (g0, g1) = (g * group, (g * group + group).min(panels));
                // One chunk (of no rows) even when kl == 0: the start still applies.
                (0..kl.div_ceil(KC).max(1)).map(move |c| (g0, g1, c * KC, (kl - c * KC).min(KC)))
            })
            .peekable();
        while let Some((g0, g1, p0, k)) = chunks.next() {
            let next = chunks.peek().map(|&(g0, _, p0, k)| (g0, p0, k));
            f(g0, g1, p0, k, if p0 == 0 { init } else { Init::Acc }, next);
        }
    }
}

#[cfg(test)]
mod tests {
    thread_local! {
        /// The group size this thread's tests pack with, where set ([`in_every_layout`]).
        pub(super) static GROUP_OVERRIDE: std::cell::Cell<Option<usize>> =
            const { std::cell::Cell::new(None) };
    }

    /// Runs `f` with `B` packed as the process tier packs it, then in groups of one panel
    /// and of [`GROUP`]: every tier must handle both layouts (AVX-512 packs groups, the
    /// others single panels), and this CPU may not run the tier that packs the other.
    fn in_every_layout(f: impl Fn()) {
        for g in [None, Some(1), Some(GROUP)] {
            GROUP_OVERRIDE.with(|c| c.set(g));
            f();
        }
        GROUP_OVERRIDE.with(|c| c.set(None));
    }
    use super::*;
    use crate::kernels::activation::available_tiers;

    /// Values in [-0.5, 0.5) from a linear congruential sequence.
    fn uniform(mut seed: u32) -> impl FnMut() -> f32 {
        move || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        }
    }

    fn naive(m: usize, k: usize, n: usize, a: &[f32], lda: usize, b: &[f32]) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a[i * lda + p] as f64 * b[p * n + j] as f64)
                    .sum();
            }
        }
        c
    }

    /// The fused stream kernels against the products and steps they replace, on the
    /// process tier (where it has none, they must decline and change nothing). Large
    /// weights drive the gates into saturation; one unit's state is tiny every step and
    /// flushed.
    #[test]
    fn fused_stream_steps_are_the_step_by_step_bits() {
        in_every_layout(|| {
            use crate::kernels::activation::{gru_lbr_state_with, lstm_state_with};
            let mut rnd = uniform(13u32);
            let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for (units, k) in [
                (16, 1),
                (32, 1),
                (32, 3),
                (16, 20),
                (8, 1),
                (8, 5),
                (24, 1),
                (32, 300),
            ] {
                let expect = match kernel_tier() {
                    Tier::Avx512 | Tier::Avx2 => units != 24 && k <= KC,
                    Tier::Scalar => false,
                };
                // The cells the fused kernel must match.
                let cells = stream_cell_tier(units);
                let lstm_state =
                    |g: &[f32], c: &mut [f32], h: &mut [f32]| lstm_state_with(cells, g, c, h);
                let gru_lbr_state = |g: &[f32], gh: &[f32], b: &[f32], h: &mut [f32]| {
                    gru_lbr_state_with(cells, g, gh, b, h)
                };
                for (steps, scale) in [(1, 1.0), (2, 6.0), (37, 1.0)] {
                    let mut v = |n: usize, s: f32| (0..n).map(|_| rnd() * s).collect::<Vec<f32>>();
                    let mut h0 = v(units, 2.0);
                    h0[3] = 1e-35;
                    let c0 = v(units, 4.0);
                    let x = v(steps * k, 2.0);

                    // LSTM; unit 5's i, f and o saturate off, so its c and h are flushed.
                    let gw = 4 * units;
                    let w_hh = v(gw * units, scale);
                    let wp = PackedB::from_transposed(&w_hh, gw, units);
                    let w_ih = v(gw * k, 1.0);
                    let wi = PackedB::from_transposed(&w_ih, gw, k);
                    let mut bias = v(gw, 1.0);
                    for q in [0, 1, 3] {
                        bias[q * units + 5] = -150.0;
                    }
                    let mut gates = vec![f32::NAN; steps * gw];
                    gemm_packed_bias(steps, &x, k, &wi, &mut gates, gw, &bias);
                    let (mut h, mut c) = (h0.clone(), c0.clone());
                    let mut want = vec![f32::NAN; steps * units];
                    for s in 0..steps {
                        let g = &mut gates[s * gw..(s + 1) * gw];
                        gemv_packed(&h, &wp, g, true);
                        lstm_state(g, &mut c, &mut h);
                        want[s * units..(s + 1) * units].copy_from_slice(&h);
                    }
                    let (mut hf, mut cf) = (h0.clone(), c0.clone());
                    let mut got = vec![f32::NAN; steps * units];
                    let fused = StreamLayer::new(CellKind::Lstm, units, k, &w_ih, &w_hh, &bias);
                    assert_eq!(fused.is_some(), expect);
                    if let Some(f) = &fused {
                        f.run(&x, steps, &[], &mut hf, &mut cf, &mut got);
                    }
                    let what = format!("lstm H={units} I={k} steps={steps}");
                    if expect {
                        assert_eq!(bits_of(&got), bits_of(&want), "{what}");
                        assert_eq!(bits_of(&hf), bits_of(&h), "{what}");
                        assert_eq!(bits_of(&cf), bits_of(&c), "{what}");
                    } else {
                        assert!(
                            hf == h0 && cf == c0 && got.iter().all(|x| x.is_nan()),
                            "{what}"
                        );
                    }

                    // GRU; unit 5's r and z saturate off and its candidate is tiny: flushed.
                    let gw = 3 * units;
                    let w_hh = v(gw * units, scale);
                    let wp = PackedB::from_transposed(&w_hh, gw, units);
                    let mut w_ih = v(gw * k, 1.0);
                    w_ih[(2 * units + 5) * k..(2 * units + 6) * k].fill(0.0);
                    let wi = PackedB::from_transposed(&w_ih, gw, k);
                    let mut bias = v(gw, 1.0);
                    (bias[5], bias[units + 5], bias[2 * units + 5]) = (-150.0, -150.0, 1e-35);
                    let b_hn = v(units, 1.0);
                    let mut gates = vec![f32::NAN; steps * gw];
                    gemm_packed_bias(steps, &x, k, &wi, &mut gates, gw, &bias);
                    let mut h = h0.clone();
                    let mut gh = vec![0.0; gw];
                    for s in 0..steps {
                        gemv_packed(&h, &wp, &mut gh, false);
                        gru_lbr_state(&gates[s * gw..(s + 1) * gw], &gh, &b_hn, &mut h);
                        want[s * units..(s + 1) * units].copy_from_slice(&h);
                    }
                    let mut hf = h0.clone();
                    let mut got = vec![f32::NAN; steps * units];
                    let fused = StreamLayer::new(CellKind::GruLbr, units, k, &w_ih, &w_hh, &bias);
                    assert_eq!(fused.is_some(), expect);
                    if let Some(f) = &fused {
                        f.run(&x, steps, &b_hn, &mut hf, &mut [], &mut got);
                    }
                    let what = format!("gru H={units} I={k} steps={steps}");
                    if expect {
                        assert_eq!(bits_of(&got), bits_of(&want), "{what}");
                        assert_eq!(bits_of(&hf), bits_of(&h), "{what}");
                    } else {
                        assert!(hf == h0 && got.iter().all(|x| x.is_nan()), "{what}");
                    }
                }
            }
        });
    }

    #[test]
    fn reversed_group_order_gives_the_same_bits() {
        in_every_layout(|| {
            let mut rnd = uniform(11u32);
            let tiers = available_tiers();
            // Several groups (n > GROUP * NR), a partial last group, inner sizes past KC.
            for &(m, k, n) in &[(1, 40, 300), (7, 300, 260), (13, 600, 513), (32, 257, 129)] {
                let (lda, ldc) = (k + 3, n + 1);
                let a: Vec<f32> = (0..m * lda).map(|_| rnd()).collect();
                let w: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
                let bias: Vec<f32> = (0..n).map(|_| rnd()).collect();
                let c0: Vec<f32> = (0..m * ldc).map(|_| rnd()).collect();
                let packed = PackedB::from_rows(&w, k, n, n);
                for start in [Start::Zero, Start::Acc, Start::Bias(&bias)] {
                    let mut simd = Vec::new();
                    for &tier in &tiers {
                        let mut fwd = c0.clone();
                        run(tier, m, &a, lda, &packed, &mut fwd, ldc, start, false);
                        let mut rev = c0.clone();
                        run(tier, m, &a, lda, &packed, &mut rev, ldc, start, true);
                        let what = format!("{tier:?} {start:?} m={m} k={k} n={n}");
                        assert_eq!(bits(&rev), bits(&fwd), "{what}");
                        if tier != Tier::Scalar {
                            simd.push((tier, fwd));
                        }
                    }
                    // AVX2 walks the inner chunks outside the groups, AVX-512 inside: each
                    // element is still the same FMAs in the same order.
                    for (tier, c) in &simd[1.min(simd.len())..] {
                        assert_eq!(bits(c), bits(&simd[0].1), "{tier:?} vs {:?}", simd[0].0);
                    }
                }
            }
        });
    }

    #[test]
    fn bias_start_is_fill_then_accumulate_bit_for_bit() {
        in_every_layout(|| {
            let mut rnd = uniform(7u32);
            for tier in available_tiers() {
                // Row counts past each tier's row block, widths with partial panels and
                // groups, inner sizes past KC (later chunks accumulate).
                for &(m, k, n) in &[
                    (1, 3, 5),
                    (2, 0, 40),
                    (5, 17, 33),
                    (8, 64, 128),
                    (9, 300, 70),
                    (14, 5, 260),
                    (31, 129, 97),
                ] {
                    let (lda, ldc) = (k + 1, n + 2);
                    let a: Vec<f32> = (0..m * lda).map(|_| rnd()).collect();
                    let w: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
                    let bias: Vec<f32> = (0..n).map(|_| rnd()).collect();
                    let packed = PackedB::from_rows(&w, k, n, n);
                    let mut want = vec![f32::NAN; m * ldc];
                    for row in want.chunks_mut(ldc) {
                        row[..n].copy_from_slice(&bias);
                    }
                    gemm_packed_with(tier, m, &a, lda, &packed, &mut want, ldc, true);
                    let mut got = vec![f32::NAN; m * ldc];
                    run(
                        tier,
                        m,
                        &a,
                        lda,
                        &packed,
                        &mut got,
                        ldc,
                        Start::Bias(&bias),
                        false,
                    );
                    for i in 0..m {
                        let (g, w) = (&got[i * ldc..][..n], &want[i * ldc..][..n]);
                        assert_eq!(bits(g), bits(w), "{tier:?} m={m} k={k} n={n} row {i}");
                        // The padding between rows is not touched.
                        assert!(got[i * ldc + n..(i + 1) * ldc].iter().all(|v| v.is_nan()));
                    }
                }
            }
        });
    }

    #[test]
    fn every_tier_matches_the_naive_product() {
        in_every_layout(|| {
            let mut rnd = uniform(1u32);
            for tier in available_tiers() {
                for &(m, k, n) in &[
                    (1, 1, 1),
                    (1, 8, 32),
                    (3, 5, 7),
                    (8, 13, 33),
                    (9, 32, 64),
                    (17, 40, 100),
                    (2, 0, 5),
                    (5, 64, 31),
                    (11, 3, 96),
                    (1, 128, 512),
                    (1, 7, 200),
                    (2, 9, 130),
                    (3, 4, 97),
                    (4, 6, 260),
                    (12, 5, 160),
                    (13, 3, 64),
                    (8, 19, 300),
                    (31, 7, 520),
                    (7, 300, 70),
                    (6, 260, 16),
                    (20, 17, 24),
                ] {
                    let lda = k + 3;
                    let a: Vec<f32> = (0..m * lda).map(|_| rnd()).collect();
                    let b: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
                    let want = naive(m, k, n, &a, lda, &b);
                    let packed = PackedB::from_rows(&b, k, n, n);
                    // Same B given as Wᵀ.
                    let w: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
                    assert_eq!(PackedB::from_transposed(&w, n, k), packed);
                    let ldc = n + 2;
                    for accumulate in [false, true] {
                        let mut c = vec![f32::NAN; m * ldc];
                        for i in 0..m {
                            for j in 0..n {
                                c[i * ldc + j] = if accumulate { 1.0 } else { f32::NAN };
                            }
                        }
                        gemm_packed_with(tier, m, &a, lda, &packed, &mut c, ldc, accumulate);
                        for i in 0..m {
                            for j in 0..n {
                                let w = want[i * n + j] + if accumulate { 1.0 } else { 0.0 };
                                let got = c[i * ldc + j] as f64;
                                assert!(
                                    (got - w).abs() < 1e-5 * (1.0 + k as f64),
                                    "{tier:?} {m}x{k}x{n} ({i},{j}): {got} vs {w}"
                                );
                            }
                            // Padding columns untouched.
                            for j in n..ldc {
                                assert!(
                                    c[i * ldc + j].is_nan() || i == m - 1,
                                    "{tier:?} wrote past n"
                                );
                            }
                        }
                    }
                }
            }
        });
    }

    #[test]
    fn gemv_matches_the_naive_product() {
        in_every_layout(|| {
            for &(k, n) in &[
                (1, 1),
                (2, 32),
                (7, 33),
                (8, 128),
                (33, 130),
                (128, 512),
                (13, 97),
                (0, 5),
            ] {
                let x: Vec<f32> = (0..k).map(|i| (i as f32 * 0.37).sin()).collect();
                let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
                let want = naive(1, k, n, &x, k, &b);
                let packed = PackedB::from_rows(&b, k, n, n);
                for accumulate in [false, true] {
                    let mut y = vec![if accumulate { 0.5 } else { f32::NAN }; n + 3];
                    y[n..].fill(7.0);
                    gemv_packed(&x, &packed, &mut y, accumulate);
                    for j in 0..n {
                        let w = want[j] + if accumulate { 0.5 } else { 0.0 };
                        assert!(
                            (y[j] as f64 - w).abs() < 1e-5 * (1.0 + k as f64),
                            "{k}x{n} col {j}"
                        );
                    }
                    assert!(y[n..].iter().all(|&v| v == 7.0), "wrote past n");
                }
            }
        });
    }

    #[test]
    fn gemv2_is_the_input_gemm_then_the_gemv_bit_for_bit() {
        in_every_layout(|| {
            for &(k1, k2, n) in &[
                (1, 8, 32),
                (1, 16, 64),
                (3, 32, 96),
                (16, 64, 256),
                (2, 7, 33),
                (5, 128, 384),
                (1, 33, 520),
            ] {
                let x1: Vec<f32> = (0..k1).map(|i| (i as f32 * 0.7).sin()).collect();
                let x2: Vec<f32> = (0..k2).map(|i| (i as f32 * 0.37).cos()).collect();
                let w1: Vec<f32> = (0..k1 * n).map(|i| (i as f32 * 0.11).cos()).collect();
                let w2: Vec<f32> = (0..k2 * n).map(|i| (i as f32 * 0.13).sin()).collect();
                let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 1.0).collect();
                let (p1, p2) = (
                    PackedB::from_rows(&w1, k1, n, n),
                    PackedB::from_rows(&w2, k2, n, n),
                );
                let mut want = vec![f32::NAN; n];
                gemm_packed_bias(1, &x1, k1, &p1, &mut want, n, &bias);
                let mut first = vec![f32::NAN; n + 3];
                gemv_packed_bias(&bias, &x1, &p1, &mut first);
                assert_eq!(bits(&first[..n]), bits(&want), "input side {k1},{n}");
                assert!(first[n..].iter().all(|v| v.is_nan()), "wrote past n");
                gemv_packed(&x2, &p2, &mut want, true);
                for reverse in [false, true] {
                    let mut y = vec![7.0f32; n + 3];
                    gemv2_packed(&bias, &x1, &p1, &x2, &p2, &mut y, reverse);
                    assert_eq!(bits(&y[..n]), bits(&want), "{k1},{k2},{n}");
                    assert!(y[n..].iter().all(|&v| v == 7.0), "wrote past n");
                    let mut z = vec![f32::NAN; n];
                    gemm_packed_bias(1, &x1, k1, &p1, &mut z, n, &bias);
                    gemv_packed_sweep(&x2, &p2, &mut z, true, reverse);
                    assert_eq!(bits(&z), bits(&want), "sweep {reverse}: {k1},{k2},{n}");
                }
            }
        });
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// A packed B over `PREFETCH_ABOVE_BYTES`: the AVX-512 kernel prefetches each next
    /// chunk of B while it works (in the row blocks' calls, or in the leftover rows' first
    /// call when there is no row block), one line or several per inner step. The
    /// prefetch is a hint: every row must have the bits it has alone, the AVX-512 bits
    /// must be AVX2's (which never prefetches), and all must match the naive product.
    #[test]
    fn prefetching_a_large_b_changes_no_bit() {
        in_every_layout(|| {
            let mut rnd = uniform(23u32);
            // 1.2 MB of panels (1000 columns pad to 1024); inner size past KC; 13 rows: two
            // row blocks and a leftover (several lines a step), 4 rows: leftover only;
            // several groups, walked both ways.
            let (k, n) = (300, 1000);
            let b: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
            let packed = PackedB::from_rows(&b, k, n, n);
            assert!(packed.panels().len() * 4 > PREFETCH_ABOVE_BYTES);
            for m in [13, 4] {
                let a: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
                let want = naive(m, k, n, &a, k, &b);
                for reverse in [false, true] {
                    let mut simd: Vec<(Tier, Vec<f32>)> = Vec::new();
                    for tier in available_tiers() {
                        let mut all = vec![f32::NAN; m * n];
                        run(tier, m, &a, k, &packed, &mut all, n, Start::Zero, reverse);
                        for i in 0..m {
                            let mut one = vec![f32::NAN; n];
                            run(
                                tier,
                                1,
                                &a[i * k..],
                                k,
                                &packed,
                                &mut one,
                                n,
                                Start::Zero,
                                reverse,
                            );
                            let row = &all[i * n..(i + 1) * n];
                            assert_eq!(bits(row), bits(&one), "{tier:?} m={m} row {i}");
                            for (j, &v) in row.iter().enumerate() {
                                let w = want[i * n + j];
                                assert!(
                                    (v as f64 - w).abs() < 1e-5 * k as f64,
                                    "{tier:?} ({i},{j})"
                                );
                            }
                        }
                        if tier != Tier::Scalar {
                            simd.push((tier, all));
                        }
                    }
                    for (tier, c) in &simd[1.min(simd.len())..] {
                        assert_eq!(
                            bits(c),
                            bits(&simd[0].1),
                            "m={m}: {tier:?} vs {:?}",
                            simd[0].0
                        );
                    }
                }
            }
        });
    }

    #[test]
    fn rows_do_not_depend_on_the_rest_of_the_call() {
        in_every_layout(|| {
            let (k, n) = (37, 70);
            let a: Vec<f32> = (0..20 * k)
                .map(|i| ((i * 31) % 17) as f32 * 0.1 - 0.8)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 7) % 13) as f32 * 0.05 - 0.3)
                .collect();
            let packed = PackedB::from_rows(&b, k, n, n);
            for tier in available_tiers() {
                let mut all = vec![0.0; 20 * n];
                gemm_packed_with(tier, 20, &a, k, &packed, &mut all, n, false);
                for i in 0..20 {
                    let mut one = vec![0.0; n];
                    gemm_packed_with(tier, 1, &a[i * k..], k, &packed, &mut one, n, false);
                    assert!(one
                        .iter()
                        .zip(&all[i * n..])
                        .all(|(x, y)| x.to_bits() == y.to_bits()));
                }
            }
        });
    }
}
