//! The packed GEMM: its entry points, the dispatch over tiers, the portable body, and
//! the chunking of the SIMD tiers over groups of panels and [`KC`] rows of `B`.

use super::layout::{panel_at, PackedB, NR};
use crate::kernels::activation::{kernel_tier, Tier};

/// Rows of `B` per pass over `C` (see `run`).
pub(super) const KC: usize = 256;

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

/// A tier's packed GEMM kernel over a range of groups (`simd::tier_entries!`'s
/// `gemm_group`): `(m, kl, p0, k, n, a, lda, b, group, c, ldc, acc, g0, g1, prefetch)`.
type GemmGroupFn = unsafe fn(
    usize,
    usize,
    usize,
    usize,
    usize,
    *const f32,
    usize,
    *const f32,
    usize,
    *mut f32,
    usize,
    Init,
    usize,
    usize,
    (*const f32, usize),
);

/// [`Init`] with a borrowed bias, checked against `B`'s width by [`run`].
#[derive(Clone, Copy, Debug)]
pub(super) enum Start<'a> {
    Zero,
    Acc,
    Bias(&'a [f32]),
}

impl Start<'_> {
    pub(super) fn of(accumulate: bool) -> Self {
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

/// `C[i][j] = bias[j] + Σ_p A[i·lda + p] · B[p][j]`: bit for bit `C = bias` row by row
/// followed by the plain packed GEMM with `accumulate`, without the separate pass that writes
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

/// The packed GEMM: `C[i][j] = (accumulate ? C[i][j] : 0) + Σ_p A[i·lda + p] · B[p][j]`
/// for `i < m`, `j < b.n()`, on `tier` (or the best available if the CPU lacks it). No
/// allocation; panics (a bug) if `A` or `C` is too short. The library calls the variants
/// below (bias start, reversed sweep); the kernel tests call this plain form.
#[cfg(test)]
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

/// the plain packed GEMM visiting B's groups of panels last to first when `reverse` (AVX-512
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

/// Packed B above this size is prefetched chunk by chunk into L2 (the L2 holds 2 MB on
/// the development machine; `W_hh` of an LSTM with H = 512 is 4 MB).
pub(super) const PREFETCH_ABOVE_BYTES: usize = 1 << 20;

/// The dispatch; `tier` must be one this CPU runs (`kernel_tier()` or checked).
#[allow(clippy::too_many_arguments)]
#[inline]
pub(super) fn run(
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
    // The tier's group kernel (`tier_entries!`), or none: the scalar tier.
    let kernel: Option<GemmGroupFn> = on_tier!(fn tier => gemm_group, _ => None);
    match kernel {
        Some(group) => {
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
                    group(
                        m, k, p0, kc, n, ap, lda, bp, b.group, cp, ldc, acc, g0, g1, pf,
                    )
                }
            })
        }
        None => {
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

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod x86 {
    //! The chunking of the packed GEMM over groups and `KC` rows for the SIMD tiers (the
    //! x86 ones and NEON; the name is older than NEON). The GEMM's body is
    //! `kernels::microkernel`.
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
