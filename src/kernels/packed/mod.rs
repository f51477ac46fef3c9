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
//!
//! One idea per file: `layout` (the panels and `PackedB`), `gemm` (the GEMM's entry
//! points, tier dispatch, portable body and chunking), `gemv` (one row, the streaming
//! step's products), `dense` (dense layers on packed weights) and `stream` (the fused
//! single-stream step kernels); `tests` checks them all against naive products.

mod dense;
mod gemm;
mod gemv;
mod layout;
mod stream;
#[cfg(test)]
mod tests;

pub(crate) use dense::{
    dense_narrow_kernel, dense_rows, dense_small_stride, dot, DenseNarrowFn, DenseSmall,
};
pub(crate) use gemm::{gemm_packed_bias, gemm_packed_sweep, Init};
pub(crate) use gemv::{gemv2_packed, gemv_packed_bias, gemv_packed_sweep};
pub(crate) use layout::{panel_at, PackedB, NR};
pub(crate) use stream::StreamLayer;
