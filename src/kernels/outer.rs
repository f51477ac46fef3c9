//! Sums of outer products, `Σ_r a_r ⊗ b_r` over many rows `r`: the weight gradients of a
//! layer after the backward time loop (`dW = dGᵀ · [x | h_{t-1} | 1]`, one row per
//! sequence and timestep). Both operands arrive row by row, `a_r` (the gate gradients)
//! contiguous along the output's rows, so a kernel can read them as they lie: no packing
//! (a general GEMM packs both operands first, which on a narrow layer costs as much
//! memory traffic as the product), and one pass over `dG` gives `dW_ih`, `dW_hh` and
//! the bias gradient together when `b` holds `[x | h_{t-1} | 1]`.
//!
//! Each output element is one chain from zero over the rows in order, so the bits do not
//! depend on how the output is split between threads or on the row blocking. The SIMD
//! tiers use one fused multiply-add per term (a multiply by `1` is exact, so a column of
//! ones gives plain sums); the scalar tier, the spec, a product and a sum.

use super::activation::{kernel_tier, Tier};
use super::simd::Simd;

/// Output columns (of `b`) per kernel block; `b`'s width must be a multiple.
pub const COLS: usize = 4;

/// Rows of the operands per block: a block of `a`'s rows stays in L1/L2 while every
/// column block of `b` passes over it.
const ROWS: usize = 256;

/// `out[n][i] = Σ_{r<k} a[r·lda + i] · b[r·nb + n]` for `i < m`, `n < nb`: `out` is the
/// transposed product `(aᵀ b)ᵀ`, `[nb][m]`. `nb` must be a multiple of [`COLS`] (pad `b`
/// with zero columns). On the process-wide kernel tier.
pub fn outer_sums_t(
    k: usize,
    a: &[f32],
    lda: usize,
    m: usize,
    b: &[f32],
    nb: usize,
    out: &mut [f32],
) {
    outer_sums_t_on(kernel_tier(), k, a, lda, m, b, nb, out);
}

/// [`outer_sums_t`] on `tier` (or the best available tier if this CPU lacks it).
#[cfg(test)] // only the kernel tests pick a tier explicitly
#[allow(clippy::too_many_arguments)]
pub fn outer_sums_t_with(
    tier: Tier,
    k: usize,
    a: &[f32],
    lda: usize,
    m: usize,
    b: &[f32],
    nb: usize,
    out: &mut [f32],
) {
    outer_sums_t_on(tier.available_or_best(), k, a, lda, m, b, nb, out);
}

fn check(k: usize, a: &[f32], lda: usize, m: usize, b: &[f32], nb: usize, out: &[f32]) {
    assert!(
        nb.is_multiple_of(COLS),
        "outer sums: b's width {nb} is not a multiple of {COLS}"
    );
    assert!(m <= lda, "outer sums: m {m} above lda {lda}");
    assert!(
        out.len() == nb * m,
        "outer sums: out holds {} floats, not {nb}·{m}",
        out.len()
    );
    assert!(b.len() >= k * nb, "outer sums: b is short");
    assert!(
        k == 0 || a.len() >= (k - 1) * lda + m,
        "outer sums: a is short"
    );
}

#[allow(clippy::too_many_arguments)]
fn outer_sums_t_on(
    tier: Tier,
    k: usize,
    a: &[f32],
    lda: usize,
    m: usize,
    b: &[f32],
    nb: usize,
    out: &mut [f32],
) {
    check(k, a, lda, m, b, nb, out);
    if m == 0 || nb == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    // SAFETY: `tier` is `kernel_tier()` or `available_or_best()`, which only give tiers whose
    // features were detected at run time; the extents are checked above.
    on_tier!(unsafe tier => outer_sums_t(k, a, lda, m, b, nb, out),
        _ => outer_sums_t_ref(k, a, lda, m, b, nb, out))
}

/// The spec (and the scalar tier): each element a chain from zero, a product and a sum
/// per row.
pub fn outer_sums_t_ref(
    k: usize,
    a: &[f32],
    lda: usize,
    m: usize,
    b: &[f32],
    nb: usize,
    out: &mut [f32],
) {
    out[..nb * m].fill(0.0);
    for r in 0..k {
        let (ar, br) = (&a[r * lda..r * lda + m], &b[r * nb..(r + 1) * nb]);
        for (&bv, orow) in br.iter().zip(out.chunks_exact_mut(m)) {
            for (o, &av) in orow.iter_mut().zip(ar) {
                *o += av * bv;
            }
        }
    }
}

/// The row blocks of `0..k`, and whether each is the first (its chains start at zero).
fn row_blocks(k: usize) -> impl Iterator<Item = (usize, usize, bool)> {
    (0..k)
        .step_by(ROWS)
        .map(move |r0| (r0, (r0 + ROWS).min(k), r0 == 0))
}

/// The column blocks of `0..nb` (a multiple of [`COLS`]): as wide as `widest` (a
/// multiple of `COLS`), the rest in blocks of `COLS`.
fn col_blocks(nb: usize, widest: usize) -> impl Iterator<Item = (usize, usize)> {
    let wide = nb / widest * widest;
    (0..wide)
        .step_by(widest)
        .map(move |n0| (n0, widest))
        .chain((wide..nb).step_by(COLS).map(|n0| (n0, COLS)))
}

/// What a block fetches ahead: for its rows below `rows`, the same row of the next row
/// block ([`ROWS`] further) of `a` (vector `a` of its two: the first two column blocks of
/// those columns take one each, so the requests spread over the passes) and of `b` (its
/// first line, when `b`: the first columns of `a`). Measured on a 16384 x 128 x 36 sum
/// with operands in L3: 104 GFLOP/s without, 130 with.
#[derive(Clone, Copy)]
struct Ahead {
    rows: usize,
    a: Option<usize>,
    b: bool,
}

impl Ahead {
    /// Prefetches into L2 per [`Ahead`]: `a + v·lanes` for `Some(v)`, and `b`.
    #[inline(always)]
    fn fetch<S: Simd>(self, s: S, a: *const f32, b: *const f32) {
        // `a + lanes`, the row's second vector, may lie past a short row: formed with
        // `wrapping_add`, never dereferenced (a prefetch does not fault).
        if let Some(v) = self.a {
            s.prefetch_l2(a.wrapping_add(v * S::LANES));
        }
        if self.b {
            s.prefetch_l2(b);
        }
    }
}

/// The SIMD tiers' body: output rows in blocks of two vectors (`2·LANES` of `a`'s
/// columns), output columns in blocks of `W` (as many as the registers hold: `2·W`
/// accumulators; 12 on AVX-512's 32 registers, 4 on AVX2's 16) and of [`COLS`].
/// A safe entry point, so it checks the extents itself ([`check`], once a call; the
/// dispatcher has handled `m == 0`, `nb == 0` and `k == 0`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn body<S: Simd, const W: usize>(
    s: S,
    k: usize,
    a: &[f32],
    lda: usize,
    m: usize,
    b: &[f32],
    nb: usize,
    out: &mut [f32],
) {
    check(k, a, lda, m, b, nb, out);
    let l = S::LANES;
    for (r0, r1, first) in row_blocks(k) {
        // The next row block is fetched into L2 while this one is multiplied.
        let ahead = (k - r1).min(r1 - r0);
        for i0 in (0..m).step_by(2 * l) {
            let cnt = [(m - i0).min(l), (m - i0).saturating_sub(l).min(l)];
            for (nbk, (n0, w)) in col_blocks(nb, W).enumerate() {
                let pf = Ahead {
                    rows: ahead,
                    a: (nbk < 2).then_some(nbk),
                    b: i0 == 0,
                };
                // SAFETY: rows r0..r1 < k of `a` from column i0, rows of `b` from column
                // n0 (w columns, n0 + w <= nb), `out` rows n0..n0+w from column i0: the
                // counts cover columns below m only (`check`). The prefetched rows
                // r1..r1+ahead are below k.
                unsafe {
                    let (ap, bp) = (a.as_ptr().add(r0 * lda + i0), b.as_ptr().add(r0 * nb + n0));
                    let op = out.as_mut_ptr().add(n0 * m + i0);
                    let rows = r1 - r0;
                    if w == W {
                        block::<S, W>(s, rows, ap, lda, bp, nb, op, m, cnt, first, pf)
                    } else {
                        debug_assert_eq!(w, COLS);
                        block::<S, COLS>(s, rows, ap, lda, bp, nb, op, m, cnt, first, pf)
                    }
                }
            }
        }
    }
}

/// One block: `W` columns of `b` against two vectors of `a`'s columns (`cnt` valid
/// lanes each), over `rows` rows; the accumulators start at zero (`first`) or at
/// `out`'s values.
///
/// # Safety
/// `ap`/`bp` address `rows` rows at strides `lda`/`ldb`, with the counted lanes of two
/// vectors of `a` and `W` floats of `b` in bounds; `op` addresses `W` rows of `ldo`
/// floats with the counted lanes in bounds.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block<S: Simd, const W: usize>(
    s: S,
    rows: usize,
    ap: *const f32,
    lda: usize,
    bp: *const f32,
    ldb: usize,
    op: *mut f32,
    ldo: usize,
    [n0, n1]: [usize; 2],
    first: bool,
    pf: Ahead,
) {
    let l = S::LANES;
    let mut acc = [[s.zero(); 2]; W];
    if !first {
        for (j, c) in acc.iter_mut().enumerate() {
            // SAFETY: the caller's contract (counted lanes of row j of `op`).
            unsafe {
                c[0] = s.load_n(op.add(j * ldo), n0);
                c[1] = s.load_n(op.add(j * ldo + l), n1);
            }
        }
    }
    for r in 0..rows {
        // SAFETY: the caller's contract (row r of each operand).
        unsafe {
            let arow = ap.add(r * lda);
            let (a0, a1) = (s.load_n(arow, n0), s.load_n(arow.add(l), n1));
            let brow = bp.add(r * ldb);
            if r < pf.rows {
                pf.fetch(
                    s,
                    arow.wrapping_add(ROWS * lda),
                    brow.wrapping_add(ROWS * ldb),
                );
            }
            for (j, c) in acc.iter_mut().enumerate() {
                let bv = s.splat(*brow.add(j));
                c[0] = s.fma(a0, bv, c[0]);
                c[1] = s.fma(a1, bv, c[1]);
            }
        }
    }
    for (j, c) in acc.iter().enumerate() {
        // SAFETY: the caller's contract (counted lanes of row j of `op`).
        unsafe {
            s.store_n(op.add(j * ldo), n0, c[0]);
            s.store_n(op.add(j * ldo + l), n1, c[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((((i + 17 * seed) * 7919) % 2003) as f32 / 1001.0 - 1.0) * 1.37)
            .collect()
    }

    /// Each element as one chain from zero in row order: the SIMD tiers' exact bits, with
    /// `fused` by `mul_add` (one rounding, as the FMA instruction; AVX2, AVX-512), else a
    /// product and then a sum (SSE4.1).
    fn fma_chain(
        k: usize,
        a: &[f32],
        lda: usize,
        m: usize,
        b: &[f32],
        nb: usize,
        fused: bool,
    ) -> Vec<f32> {
        let mut out = vec![0.0f32; nb * m];
        for n in 0..nb {
            for i in 0..m {
                let mut s = 0.0f32;
                for r in 0..k {
                    s = if fused {
                        a[r * lda + i].mul_add(b[r * nb + n], s)
                    } else {
                        a[r * lda + i] * b[r * nb + n] + s
                    };
                }
                out[n * m + i] = s;
            }
        }
        out
    }

    #[test]
    fn every_tier_is_the_chain_of_its_arithmetic() {
        // m across the vector and block edges, lda > m (a window of wider rows), row
        // counts across the row blocks, widths with and without the widest blocks.
        for &(k, m, lda, nb) in &[
            (1, 1, 1, 4),
            (3, 5, 7, 4),
            (40, 16, 16, 8),
            (257, 33, 40, 12),
            (300, 128, 128, 36),
            (513, 96, 100, 16),
            (600, 47, 64, 28),
            (0, 8, 8, 4),
        ] {
            let a = vals(k.max(1) * lda, 1);
            let b = vals(k.max(1) * nb, 2);
            let chain = fma_chain(k, &a, lda, m, &b, nb, true);
            // SSE4.1 has no fused multiply-add: a product, then a sum.
            let two_roundings = fma_chain(k, &a, lda, m, &b, nb, false);
            for tier in Tier::ALL {
                if !tier.is_available() {
                    continue;
                }
                let mut out = vec![f32::NAN; nb * m];
                outer_sums_t_with(tier, k, &a, lda, m, &b, nb, &mut out);
                if tier == Tier::Scalar {
                    let mut want = vec![0.0; nb * m];
                    outer_sums_t_ref(k, &a, lda, m, &b, nb, &mut want);
                    assert_eq!(out, want, "scalar k {k} m {m} nb {nb}");
                    // The spec against the exact sum, loosely (two roundings per term).
                    for n in 0..nb {
                        for i in 0..m {
                            let e: f64 = (0..k)
                                .map(|r| a[r * lda + i] as f64 * b[r * nb + n] as f64)
                                .sum();
                            let got = out[n * m + i] as f64;
                            assert!((got - e).abs() <= 1e-5 * (1.0 + e.abs()) * (k as f64).sqrt());
                        }
                    }
                } else {
                    let want = if matches!(tier, Tier::Sse41 | Tier::Avx) {
                        &two_roundings
                    } else {
                        &chain
                    };
                    let same = out
                        .iter()
                        .zip(want)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{} k {k} m {m} lda {lda} nb {nb}", tier.name());
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "multiple of")]
    fn refuses_a_ragged_width() {
        let mut out = vec![0.0; 3];
        outer_sums_t(1, &[1.0], 1, 1, &[1.0, 2.0, 3.0], 3, &mut out);
    }
}
