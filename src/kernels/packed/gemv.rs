//! One row of `A` against a packed `B`: the streaming step's products.

use super::gemm::{gemm_packed_bias, run, Start};
use super::layout::PackedB;
use crate::kernels::activation::kernel_tier;

/// `y (+)= x · B` for a single row `x` (`[k]`), for the single-stream streaming step.
/// Unlike the packed GEMM, the inner dimension is summed in two interleaved partial sums
/// (even and odd `p`) to keep twice as many FMAs in flight: one row against a handful of
/// panels is otherwise bound by the FMA latency. The summation order therefore differs
/// from the packed GEMM's (results agree to rounding, not bit for bit), which is why the
/// batched paths, whose bits must not depend on how rows are grouped, do not use it.
#[cfg(test)] // the library calls the variants below; the kernel tests call this form
pub fn gemv_packed(x: &[f32], b: &PackedB, y: &mut [f32], accumulate: bool) {
    gemv_packed_sweep(x, b, y, accumulate, false);
}

/// `gemv_packed` visiting the groups of panels last to first when `reverse` (the SIMD
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
    // SAFETY: the process tier runs on this CPU (detected at run time); x holds k floats,
    // y n floats, B's panels `ceil(n/NR) * k * NR` (asserted above).
    on_tier!(unsafe kernel_tier() => gemv(k, n, xp, bp, b.group, yp, accumulate, reverse),
        t => run(t, 1, x, k, b, y, n, Start::of(accumulate), false))
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
    // SAFETY: the process tier runs on this CPU (detected at run time); bias and y hold
    // n floats, x its k, b its packed panels (asserted).
    on_tier!(unsafe kernel_tier() => gemv_bias(n, bsp, k, xp, bp, b.group, yp),
        _ => gemm_packed_bias(1, x, k, b, y, n, bias))
}

/// `y = bias + x1 · B1 + x2 · B2` (`B1`, `B2` with the same `n`): a layer's whole
/// pre-activation for one streaming step (`x · W_ihᵀ` and `h · W_hhᵀ`) in one pass.
/// Bit for bit [`gemm_packed_bias`] of `x1` (one row: what a block of steps computes for
/// its inputs), then `gemv_packed` with `x2` accumulating, in either sweep direction
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
    // SAFETY: the process tier runs on this CPU (detected at run time); bias and y hold
    // n floats, x1 and x2 their k, b1 and b2 their packed panels (asserted).
    on_tier!(
        unsafe kernel_tier() => gemv2(n, bsp, b1.k, x1p, b1p, b2.k, x2p, b2p, b1.group, yp, reverse),
        _ => {
            gemm_packed_bias(1, x1, b1.k, b1, y, n, bias);
            gemv_packed_sweep(x2, b2, y, true, reverse);
        }
    )
}
