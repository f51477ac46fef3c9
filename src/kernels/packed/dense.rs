//! Dense layers on packed weights: dot products for few outputs, else the packed GEMM.

use super::gemm::gemm_packed_bias;
use super::layout::PackedB;
use crate::kernels::activation::{kernel_tier, Tier};
use crate::kernels::simd::DenseAct;

/// Up to this many outputs [`dense_rows`] takes a dot product per output instead of the
/// packed GEMM (whose panels are 32 columns wide).
const NARROW_OUTPUTS: usize = 8;

/// A dense layer's kernel for few outputs: `(x, rows, k, w, o, bias, y)`, see
/// [`crate::kernels::cells::dense_narrow`].
pub(crate) type DenseNarrowFn = unsafe fn(&[f32], usize, usize, &[f32], usize, &[f32], &mut [f32]);

/// The dot-product kernel of the process tier for a dense layer of `o` outputs, where it
/// runs (the SIMD tiers, up to [`NARROW_OUTPUTS`]); chosen once, with the weights.
pub(crate) fn dense_narrow_kernel(o: usize) -> Option<DenseNarrowFn> {
    if o > NARROW_OUTPUTS {
        return None;
    }
    on_tier!(fn kernel_tier() => dense_narrow, _ => None)
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

/// A small dense layer's kernel: `(x, rows, k, wt, ldw, bias, act, y)`, see
/// [`crate::kernels::simd::dense_small`].
pub(crate) type DenseSmallFn =
    unsafe fn(&[f32], usize, usize, &[f32], usize, &[f32], DenseAct, &mut [f32]);

/// The row stride of a layer's transposed weights for [`dense_small_kernel`]: its outputs
/// rounded up to the widest tier's vector (16), so every tier's loads stay in the row.
pub(crate) fn dense_small_stride(outputs: usize) -> usize {
    outputs.div_ceil(16) * 16
}

/// `b + w . x` in f32, the dense layers' dot product (`layers::dot_row`, and a dense
/// layer after the stack in a per-sample step, `StreamLayer::run_post`): eight
/// interleaved partial sums over whole groups of eight (they vectorize; a single
/// running sum was a chain of dependent adds), added pairwise, then the bias and the
/// rest in order. Each lane's operations are fixed, vectorized or not: the same bits
/// in any caller.
#[inline]
pub(crate) fn dot(b: f32, w: &[f32], x: &[f32]) -> f32 {
    let split = w.len().min(x.len()) / 8 * 8;
    let (w8, wt) = w.split_at(split);
    let (x8, xt) = x.split_at(split);
    let mut acc = [0f32; 8];
    for (wc, xc) in w8.chunks_exact(8).zip(x8.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += wc[k] * xc[k];
        }
    }
    let s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    wt.iter().zip(xt).fold(b + s, |s, (w, x)| s + w * x)
}

/// Whether a dense layer of `inputs -> outputs` runs as [`dense_small_kernel`] on a SIMD
/// tier: few inputs (each output vector is a chain of multiply-adds over them) and more
/// than one output (one output is a single dot product, shorter as `dense_narrow`'s
/// reduction). RTNeural's layers around an 8-unit LSTM are 1 -> 8 and 8 -> 8.
pub(crate) fn dense_is_small(inputs: usize, outputs: usize) -> bool {
    inputs <= 16 && (2..=64).contains(&outputs)
}

/// The tier whose small dense kernel a layer of `outputs` outputs runs on this process
/// tier: AVX2's up to 8 outputs (one AVX2 vector), on either x86 tier, else the process
/// tier's. Steps of RTNeural's `lstm.json`, `gru.json` and `gru_1d.json` (layers of 8
/// outputs around an 8-unit stream, whose fused kernel is AVX2's on both tiers) took
/// 0.91-0.92 of the time with the AVX2 kernel (medians of 8 alternated pairs, 23 of the
/// 24 pairs faster; a first run of 4 pairs on `lstm.json` read 0.68-0.78;
/// `benches/c/model_step.c`, Intel Xeon Emerald Rapids): one masked 16-lane vector for 8
/// outputs, between 256-bit code, cost more than the 8-lane vector that holds them.
pub(crate) fn dense_small_tier(outputs: usize) -> Tier {
    match kernel_tier() {
        Tier::Avx512 if outputs <= 8 => Tier::Avx2,
        t => t,
    }
}

/// The small dense kernel for a layer of `outputs` outputs ([`dense_small_tier`]; the
/// SIMD tiers).
fn dense_small_kernel(outputs: usize) -> Option<DenseSmallFn> {
    on_tier!(fn dense_small_tier(outputs) => dense_small, _ => None)
}

/// The process tier's `dense_small` for one small layer, chosen once (with a model's
/// weights) instead of at every call; a value exists only for a tier this CPU runs, so
/// calling it is safe.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DenseSmall(DenseSmallFn);

impl DenseSmall {
    /// The kernel for a layer of `inputs -> outputs`, where it is small
    /// ([`dense_is_small`]) and the tier has one (the SIMD tiers; [`dense_small_tier`]).
    pub(crate) fn for_layer(inputs: usize, outputs: usize) -> Option<DenseSmall> {
        if !dense_is_small(inputs, outputs) {
            return None;
        }
        dense_small_kernel(outputs).map(DenseSmall)
    }

    /// `y[r] = act(bias + x[r] · W)`, `wt` being `W` transposed with rows of
    /// [`dense_small_stride`]`(bias.len())`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn rows(
        self,
        x: &[f32],
        rows: usize,
        k: usize,
        wt: &[f32],
        bias: &[f32],
        act: DenseAct,
        y: &mut [f32],
    ) {
        // SAFETY: made only from `dense_small_kernel` (the detected tier's kernel); the
        // stride is the one the layout promises, and the kernel checks the slices'
        // lengths against it.
        unsafe { (self.0)(x, rows, k, wt, dense_small_stride(bias.len()), bias, act, y) };
    }
}
