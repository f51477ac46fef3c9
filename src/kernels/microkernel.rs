//! The packed GEMM's one body ([`super::packed`]): rows `p0..p0 + k` of one interleaved
//! group of `B`'s panels against `m` rows of `A`, generic over the vector tier.
//!
//! Rows of `A` run in blocks of [`MR`] against the group's columns in chunks of `VC`
//! vectors (`MR·VC` accumulators: 24 of AVX-512's 32 registers with 4 vectors, 12 of
//! AVX2's 16 with 2), so a chunk of `B` stays in L1 while every block of rows streams
//! past it. Within a group, row `p` of its panels lies contiguous (`[4·32]` floats), so a
//! chunk may span panels. The rows left over after the blocks (all of them for a
//! streaming step with one or two streams) run wider chunks instead: one row against a
//! few vectors has too few accumulators to hide the FMA latency.
//!
//! AVX2 ran this with 3 rows against a whole panel (4 vectors, 12 accumulators): with
//! its four `B` vectors and a broadcast that is 17 registers of 16, and the compiler
//! kept two accumulators in memory, a store and a reload on every step's dependency
//! chain; the packed GEMM ran at 40 GFLOP/s on an AMD Zen 3 core where
//! `matrixmultiply`'s sgemm (6 x 16) reached 65-80.
//!
//! Each element of `C` is one chain of fused multiply-adds over `p` in order, from zero,
//! then added to its start (`C`, a bias, or nothing): the bits do not depend on the
//! blocking, the tier's vector width or which rows share a call.

use super::aligned::LINE;
use super::packed::{panel_at, Init, NR};
use super::simd::Simd;

/// Rows of `A` per block in the main loop.
pub(crate) const MR: usize = 6;

/// A microkernel's prefetch (`PF`): none, one line per inner step, or as many as its
/// range needs.
const NONE: u8 = 0;
const ONE: u8 = 1;
const MANY: u8 = 2;

/// Rows `p0..p0 + k` of `B`'s panels `g0..g1` (one group, `kl` rows in all) against
/// columns `p0..p0 + k` of `A` (`a` points at column `p0`), started from `acc`; `pf` a
/// range of the next chunk of `B` to bring into L2 meanwhile (`(null, 0)` for none),
/// spread over the calls. `VC` vectors per chunk in the main loop (a multiple or a
/// divisor of a panel's `NR / LANES`).
///
/// # Safety
/// `a` (at column `p0`) must hold `m` rows of `k` at stride `lda`, `c` `m` rows of `n` at
/// stride `ldc`, `b` `ceil(n/NR)` panels of `kl · NR`; a bias start holds `n` floats from
/// `acc`'s pointer; `pf..pf + pf_len` lies inside `B`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_group<S: Simd, const VC: usize>(
    s: S,
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
    acc: Init,
    g0: usize,
    g1: usize,
    (pf, pf_len): (*const f32, usize),
) {
    let l = S::LANES;
    let full = m / MR * MR;
    let panels = n.div_ceil(NR);
    let (off, ldb) = panel_at(g0, kl, panels, group);
    let bg = b.wrapping_add(off + p0 * ldb);
    // The group's columns from g0's first, in vectors (whole panels, padding included),
    // and the valid ones.
    let (gv, valid) = ((g1 - g0) * NR / l, n - g0 * NR);
    let col0 = g0 * NR;
    // The prefetch, in cache lines, shared among the main loop's calls.
    let calls = (full / MR) * gv.div_ceil(VC);
    let lines = pf_len / LINE;
    let per_call = if calls == 0 { 0 } else { lines.div_ceil(calls) };
    let mut pf_at = 0;
    // Row blocks of `mc` rows (`row_block`), each swept against every column block of
    // the group while it is in L2.
    let mc = row_block(k);
    let mut r0 = 0;
    while r0 < full {
        let r1 = (r0 + mc).min(full);
        let mut v = 0;
        while v < gv {
            let mut i = r0;
            while i < r1 {
                let pl = per_call.min(lines - pf_at);
                // SAFETY: rows i..i + MR < m, columns v..v + VC of the group (VC divides a
                // panel's vectors or the group holds VC more from v: `gv` counts whole
                // panels, and v advances by VC), inside the extents; lines pf_at..pf_at + pl
                // of the prefetch range lie inside it.
                unsafe {
                    let (ai, ci) = (a.add(i * lda), c.add(i * ldc + col0 + v * l));
                    let pfl = (pf.wrapping_add(pf_at * LINE), pl);
                    let cols = valid.saturating_sub(v * l);
                    let start = acc.at(col0 + v * l);
                    if v + VC <= gv {
                        micro_pf::<S, MR, VC>(
                            s,
                            k,
                            ai,
                            lda,
                            bg.add(v * l),
                            ldb,
                            ci,
                            ldc,
                            cols,
                            start,
                            pfl,
                        )
                    } else {
                        // The group's last panel, alone (VC is two panels here).
                        micro_pf::<S, MR, 2>(
                            s,
                            k,
                            ai,
                            lda,
                            bg.add(v * l),
                            ldb,
                            ci,
                            ldc,
                            cols,
                            start,
                            pfl,
                        )
                    }
                }
                pf_at += pl;
                i += MR;
            }
            v += VC.min(gv - v);
        }
        r0 = r1;
    }
    // Under one row block the main loop made no call: the leftover rows' first call
    // prefetches the whole next chunk.
    let pf = if calls == 0 { (pf, lines) } else { (pf, 0) };
    let (a, c) = (a.wrapping_add(full * lda), c.wrapping_add(full * ldc));
    let wide = S::REGISTERS >= 32;
    // SAFETY: the leftover rows full..m, the same columns and extents.
    unsafe {
        let args = Left {
            s,
            k,
            a,
            lda,
            bg,
            ldb,
            c,
            ldc,
            col0,
            gv,
            valid,
            acc,
            pf,
        };
        match (m - full, wide) {
            (0, _) => {}
            (1, _) => args.run::<1, 8>(),
            (2, true) => args.run::<2, 8>(),
            (2, false) => args.run::<2, 4>(),
            (3, true) => args.run::<3, 4>(),
            (3, false) => args.run::<3, 2>(),
            (4, true) => args.run::<4, 4>(),
            (_, true) => args.run::<5, 2>(),
            (4, false) => args.run::<4, 2>(),
            (_, false) => args.run::<5, 2>(),
        }
    }
}

/// Bytes of `A` (rows of a `k`-column chunk) that [`gemm_group`]'s main loop keeps in
/// L2 while it sweeps them against each column block of the group.
const ROW_BLOCK_BYTES: usize = 128 << 10;

/// Rows of `A` per row block of [`gemm_group`]'s main loop for a chunk of `k` columns
/// ([`ROW_BLOCK_BYTES`]), a multiple of [`MR`].
///
/// Without the blocks, every column block swept all of `A`'s rows: an input product of
/// 2048 rows (`B·T`) at `k = 256` is 2 MiB of `A` per sweep, more than an L2, read from
/// L3 two times per panel on AVX2 (16 columns a sweep) and four per group on AVX-512.
/// AMD EPYC Zen 4 (family 25 model 17), 4 rounds alternated, GFLOP/s: `avx2` 2048 x 256
/// x 2048 71-74 -> 80-84, 2048 x 512 x 4096 76-81 -> 80-88; `avx512` 90-98 -> 95-100;
/// 64 KiB blocks did no better, 256 KiB worse (69-71 on `avx2`: with `B`'s chunk it
/// passes half this core's L2). Each element still adds its terms in the same order: no
/// bit changes.
fn row_block(k: usize) -> usize {
    (ROW_BLOCK_BYTES / (4 * k.max(1)) / MR).max(1) * MR
}

/// The leftover rows of [`gemm_group`] and what they run against.
struct Left<S: Simd> {
    s: S,
    k: usize,
    a: *const f32,
    lda: usize,
    bg: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    col0: usize,
    gv: usize,
    valid: usize,
    acc: Init,
    pf: (*const f32, usize),
}

impl<S: Simd> Left<S> {
    /// `R` rows against the group, `V` vectors per call where the group has them, else a
    /// panel at a time; the first call takes the prefetch range.
    ///
    /// # Safety
    /// As for [`gemm_group`] (these are its rows and columns).
    #[inline(always)]
    unsafe fn run<const R: usize, const V: usize>(&self) {
        let (s, l) = (self.s, S::LANES);
        let per_panel = NR / l;
        let mut pf = self.pf;
        let mut v = 0;
        while v < self.gv {
            let cols = self.valid.saturating_sub(v * l);
            let start = self.acc.at(self.col0 + v * l);
            // SAFETY: columns v.. of the group (V more, or a whole panel more: `gv`
            // counts whole panels) for R rows, inside the caller's extents.
            unsafe {
                let (bv, cv) = (self.bg.add(v * l), self.c.add(self.col0 + v * l));
                let (a, lda, ldb, ldc) = (self.a, self.lda, self.ldb, self.ldc);
                if v + V <= self.gv {
                    micro_pf::<S, R, V>(s, self.k, a, lda, bv, ldb, cv, ldc, cols, start, pf);
                    v += V;
                } else if per_panel == 4 {
                    micro_pf::<S, R, 4>(s, self.k, a, lda, bv, ldb, cv, ldc, cols, start, pf);
                    v += 4;
                } else {
                    micro_pf::<S, R, 2>(s, self.k, a, lda, bv, ldb, cv, ldc, cols, start, pf);
                    v += 2;
                }
            }
            pf.1 = 0;
        }
    }
}

/// [`micro`] with its prefetch variant for `pf.1` lines over its `k` steps: none, one
/// line a step, or several.
///
/// # Safety
/// As for [`micro`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_pf<S: Simd, const R: usize, const V: usize>(
    s: S,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    ncols: usize,
    init: Init,
    pf: (*const f32, usize),
) {
    // SAFETY: the caller's contract, which is micro's.
    unsafe {
        if pf.1 > k {
            micro::<S, R, V, MANY>(s, k, a, lda, b, ldb, c, ldc, ncols, init, pf)
        } else if pf.1 > 0 {
            micro::<S, R, V, ONE>(s, k, a, lda, b, ldb, c, ldc, ncols, init, pf)
        } else {
            micro::<S, R, V, NONE>(s, k, a, lda, b, ldb, c, ldc, ncols, init, pf)
        }
    }
}

/// `R` rows of `A` against `V` consecutive vectors of `B`'s columns; `ncols` counts the
/// valid columns of C from the first (the last vectors may be partial or past the end).
///
/// # Safety
/// `a` holds `R` rows of `k` at stride `lda`; `b` `k` rows of `V·LANES` floats at stride
/// `ldb`; `c` `R` rows of `min(ncols, V·LANES)` floats at stride `ldc`; a bias start
/// those columns; `pf.0..` `pf.1` lines inside `B`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn micro<S: Simd, const R: usize, const V: usize, const PF: u8>(
    s: S,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    ncols: usize,
    init: Init,
    (pf, pf_lines): (*const f32, usize),
) {
    let l = S::LANES;
    let mut acc = [[s.zero(); V]; R];
    if PF == NONE {
        // Without a prefetch (every B up to `PREFETCH_ABOVE_BYTES`: the recurrent
        // products of H <= 256): the rows of A as pointers the compiler may not relate
        // (`black_box`), so each broadcast addresses `row + p` and B's row advances by a
        // pointer. Left to itself LLVM rebuilt the rows' addresses from one another every
        // step (five adds) and B's with a multiply: 8 integer operations per 12
        // multiply-adds on AVX2, some on the FMA ports. Intel Xeon Emerald Rapids,
        // `avx2`, alternated: 64 x 128 x 512 75-78 -> 83-86 GFLOP/s (MKL held to AVX2:
        // 84), `avx512` level. The prefetching variants keep the plain loop: there LLVM
        // then loaded all six broadcasts ahead of the multiply-adds and spilled
        // accumulators (8-30 % slower on both tiers). The same sums in the same order.
        let mut rows = [a; R];
        for (r, row) in rows.iter_mut().enumerate() {
            *row = a.wrapping_add(r * lda);
        }
        let rows = std::hint::black_box(rows);
        let mut bp = b;
        for p in 0..k {
            // SAFETY: p < k, so row p of B's V vectors (at `bp`) and A element (r, p)
            // are inside the extents.
            unsafe {
                let mut bv = [s.zero(); V];
                for (q, x) in bv.iter_mut().enumerate() {
                    *x = s.load(bp.add(q * l));
                }
                for (ar, row) in acc.iter_mut().zip(rows) {
                    let av = s.splat(*row.add(p));
                    for q in 0..V {
                        ar[q] = s.fma(av, bv[q], ar[q]);
                    }
                }
            }
            bp = bp.wrapping_add(ldb);
        }
    } else {
        // SAFETY: the caller's contract, which is micro_prefetching's.
        unsafe { micro_prefetching::<S, R, V, PF>(s, &mut acc, k, a, lda, b, ldb, (pf, pf_lines)) };
    }
    for (r, ar) in acc.iter().enumerate() {
        for (q, &x) in ar.iter().enumerate() {
            let cols = ncols.saturating_sub(q * l).min(l);
            if cols == 0 {
                break;
            }
            // SAFETY: the `cols` valid columns of vector q in row r of C (and of the
            // bias, which covers C's columns).
            unsafe {
                let cr = c.add(r * ldc + q * l);
                let v = match init {
                    Init::Zero => x,
                    Init::Acc => s.add(s.load_n(cr, cols), x),
                    Init::Bias(bp) => s.add(s.load_n(bp.add(q * l), cols), x),
                };
                s.store_n(cr, cols, v);
            }
        }
    }
}

/// [`micro`]'s sums with its prefetch (`PF` is `ONE` or `MANY`): one step of p at a time,
/// the rows of A addressed as `r·lda + p`.
///
/// # Safety
/// As for [`micro`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_prefetching<S: Simd, const R: usize, const V: usize, const PF: u8>(
    s: S,
    acc: &mut [[S::V; V]; R],
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    (pf, pf_lines): (*const f32, usize),
) {
    let l = S::LANES;
    for p in 0..k {
        // Line p of the prefetch range (into L2: data for a later call), and with
        // `PF == MANY` also lines p + k, p + 2k, ..., so that few calls (few row blocks)
        // still cover a whole chunk (the loop costs 2 % where one line a step is enough).
        if PF == ONE && p < pf_lines {
            s.prefetch_l2(pf.wrapping_add(p * LINE));
        } else if PF == MANY {
            let mut q = p;
            while q < pf_lines {
                s.prefetch_l2(pf.wrapping_add(q * LINE));
                q += k;
            }
        }
        // SAFETY: p < k, so row p of B's V vectors and A element (r, p) are inside the
        // extents.
        unsafe {
            let bp = b.add(p * ldb);
            let mut bv = [s.zero(); V];
            for (q, x) in bv.iter_mut().enumerate() {
                *x = s.load(bp.add(q * l));
            }
            for (r, ar) in acc.iter_mut().enumerate() {
                let av = s.splat(*a.add(r * lda + p));
                for q in 0..V {
                    ar[q] = s.fma(av, bv[q], ar[q]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// One row of A: the streaming step's products.

/// The groups of `panels` panels, first to last or last to first.
#[inline(always)]
pub(crate) fn groups(panels: usize, group: usize, reverse: bool) -> impl Iterator<Item = usize> {
    let n = panels.div_ceil(group);
    (0..n).map(move |g| if reverse { n - 1 - g } else { g })
}

/// The start of each group's columns in `B`'s packing, its row stride, first column and
/// vectors (whole panels).
#[inline(always)]
fn group_at<S: Simd>(
    g: usize,
    k: usize,
    panels: usize,
    group: usize,
) -> (usize, usize, usize, usize) {
    let jp = g * group;
    let (off, ldb) = panel_at(jp, k, panels, group);
    (off, ldb, jp * NR, ldb / S::LANES)
}

/// `x · B` for one row against `V` consecutive vectors of a group's columns (row stride
/// `ldb`) over `k` rows: with `PAIRS` the even and odd rows in separate accumulators,
/// then added (the GEMV's order: twice the FMAs in flight on one row); without, one
/// accumulator per column in row order (the GEMM's order).
///
/// # Safety
/// `x` holds `k` floats and `b` `k` rows of `V·LANES` floats at stride `ldb`.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // s0 and s1 are indexed in step
unsafe fn dot<S: Simd, const V: usize, const PAIRS: bool>(
    s: S,
    k: usize,
    x: *const f32,
    b: *const f32,
    ldb: usize,
) -> [S::V; V] {
    let l = S::LANES;
    let mut s0 = [s.zero(); V];
    let mut s1 = [s.zero(); V];
    let mut p = 0;
    // Row p of B, advanced with p (indexing by `p * ldb` kept two integer multiplies
    // in the loop); one past the last row at the end, never read.
    let mut row = b;
    if PAIRS {
        while p + 1 < k {
            // SAFETY: p + 1 < k: rows p and p + 1 (at `row`, `row + ldb`) and x[p],
            // x[p + 1] are inside.
            unsafe {
                let (a0, a1) = (s.splat(*x.add(p)), s.splat(*x.add(p + 1)));
                let (r0, r1) = (row, row.add(ldb));
                for q in 0..V {
                    s0[q] = s.fma(a0, s.load(r0.add(q * l)), s0[q]);
                    s1[q] = s.fma(a1, s.load(r1.add(q * l)), s1[q]);
                }
            }
            row = row.wrapping_add(2 * ldb);
            p += 2;
        }
    }
    while p < k {
        // SAFETY: p < k: row p (at `row`) and x[p] are inside.
        unsafe {
            let a0 = s.splat(*x.add(p));
            for q in 0..V {
                s0[q] = s.fma(a0, s.load(row.add(q * l)), s0[q]);
            }
        }
        row = row.wrapping_add(ldb);
        p += 1;
    }
    if PAIRS {
        for q in 0..V {
            s0[q] = s.add(s0[q], s1[q]);
        }
    }
    s0
}

/// What a one-row product does with its sums `s` of the `ncols` valid columns at `y`.
#[derive(Clone, Copy)]
enum Out {
    /// `y = s`.
    Store,
    /// `y = y + s`.
    Add,
    /// `y = base + s` (`base` at the same columns).
    Base(*const f32),
    /// `y = (base + first) + s`: the input side summed apart, then the recurrent one.
    BaseThen(*const f32, *const f32),
}

/// Writes `V` vectors of sums to the `ncols` valid columns at `y` per `out`.
///
/// # Safety
/// `y` (and `out`'s pointers, at the same offsets) hold the `min(ncols, V·LANES)`
/// columns.
#[inline(always)]
unsafe fn put<S: Simd, const V: usize>(s: S, sums: [S::V; V], y: *mut f32, ncols: usize, out: Out) {
    let l = S::LANES;
    for (q, &v) in sums.iter().enumerate() {
        let cols = ncols.saturating_sub(q * l).min(l);
        if cols == 0 {
            break;
        }
        // SAFETY: the `cols` valid columns of vector q.
        unsafe {
            let yq = y.add(q * l);
            let r = match out {
                Out::Add => s.add(s.load_n(yq, cols), v),
                Out::Base(bp) => s.add(s.load_n(bp.add(q * l), cols), v),
                // `one_row` adds the base and the first sums itself.
                Out::Store | Out::BaseThen(..) => v,
            };
            s.store_n(yq, cols, r);
        }
    }
}

/// `y (op)= x · B` for one row over every group (last to first when `reverse`), `VG`
/// vectors of a group at a time (`2·VG` accumulators), summed per `PAIRS` ([`dot`]);
/// `first` (with `Out::BaseThen`) a second row and `B` whose chain-order sums go first.
///
/// # Safety
/// `x` holds `k` floats, `y` and a base `n`, `b` the packed panels of `[k][n]`; with
/// `BaseThen`, its second pointer `x1` holds `k1` floats and `b1` packs `[k1][n]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn one_row<S: Simd, const VG: usize, const PAIRS: bool>(
    s: S,
    k: usize,
    n: usize,
    x: *const f32,
    b: *const f32,
    group: usize,
    y: *mut f32,
    out: Out,
    first: Option<(usize, *const f32)>,
    reverse: bool,
) {
    let l = S::LANES;
    let panels = n.div_ceil(NR);
    for g in groups(panels, group, reverse) {
        let (off, ldb, col0, gv) = group_at::<S>(g, k, panels, group);
        let mut v = 0;
        while v < gv {
            let take = VG.min(gv - v);
            let c0 = col0 + v * l;
            if c0 >= n {
                // Only the last panel's zero padding is left (a group takes several
                // chunks where a panel is wider than `VG` vectors: 4-lane tiers).
                break;
            }
            let ncols = n - c0;
            // SAFETY: vectors v..v + take of the group are whole panels' columns inside
            // B; columns from c0 are inside y and the base.
            unsafe {
                let bq = b.add(off + v * l);
                let yq = y.add(c0);
                let o = match out {
                    Out::Base(bp) => Out::Base(bp.add(c0)),
                    Out::BaseThen(bp, b1) => Out::BaseThen(bp.add(c0), b1),
                    other => other,
                };
                macro_rules! chunk {
                    ($V:literal) => {{
                        let mut sums = dot::<S, $V, PAIRS>(s, k, x, bq, ldb);
                        if let (Out::BaseThen(bp, b1), Some((k1, x1))) = (o, first) {
                            // The input side: bias plus its chain-order sums, then the
                            // recurrent sums added.
                            let (off1, ldb1) = panel_at(g * group, k1, panels, group);
                            let s1 = dot::<S, $V, false>(s, k1, x1, b1.add(off1 + v * l), ldb1);
                            let mut firsts = [s.zero(); $V];
                            for q in 0..$V {
                                let cols = ncols.saturating_sub(q * l).min(l);
                                firsts[q] = s.add(s.load_n(bp.add(q * l), cols), s1[q]);
                                sums[q] = s.add(firsts[q], sums[q]);
                            }
                            put::<S, $V>(s, sums, yq, ncols, Out::Store)
                        } else {
                            put::<S, $V>(s, sums, yq, ncols, o)
                        }
                    }};
                }
                match take {
                    8 => chunk!(8),
                    6 => chunk!(6),
                    4 => chunk!(4),
                    _ => chunk!(2),
                }
            }
            v += take;
        }
    }
}

/// `y (+)= x · B` for a single row `x` (`[k]`): the streaming step's recurrent product,
/// the even and odd rows of `B` in separate sums (see [`dot`]), groups last to first
/// when `reverse` (the same bits). `VG`: vectors of a group at a time.
///
/// # Safety
/// `x` holds `k` floats, `y` `n`, `b` the packed panels of `[k][n]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemv<S: Simd, const VG: usize>(
    s: S,
    k: usize,
    n: usize,
    x: *const f32,
    b: *const f32,
    group: usize,
    y: *mut f32,
    accumulate: bool,
    reverse: bool,
) {
    let out = if accumulate { Out::Add } else { Out::Store };
    // SAFETY: the caller's contract.
    unsafe { one_row::<S, VG, true>(s, k, n, x, b, group, y, out, None, reverse) }
}

/// `y = bias + x · B` for one row, summed as the packed GEMM sums it (one chain per
/// column, rows in order, then added to the bias): the input side of a step.
///
/// # Safety
/// `bias` and `y` hold `n` floats, `x` `k`, `b` the packed panels of `[k][n]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemv_bias<S: Simd, const VG: usize>(
    s: S,
    n: usize,
    bias: *const f32,
    k: usize,
    x: *const f32,
    b: *const f32,
    group: usize,
    y: *mut f32,
) {
    // SAFETY: the caller's contract.
    unsafe { one_row::<S, VG, false>(s, k, n, x, b, group, y, Out::Base(bias), None, false) }
}

/// `y = (bias + x1 · B1) + x2 · B2` for two packed matrices with the same `n`: the
/// same sums, in the same order, as [`gemv_bias`] of `x1` then [`gemv`] of `x2`
/// accumulating, without the round trip through `y`.
///
/// # Safety
/// `bias` and `y` hold `n` floats, `x1` `k1` and `x2` `k2`, `b1` and `b2` the packed
/// panels of `[k1][n]` and `[k2][n]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemv2<S: Simd, const VG: usize>(
    s: S,
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
    let out = Out::BaseThen(bias, b1);
    // SAFETY: the caller's contract.
    unsafe { one_row::<S, VG, true>(s, k2, n, x2, b2, group, y, out, Some((k1, x1)), reverse) }
}
