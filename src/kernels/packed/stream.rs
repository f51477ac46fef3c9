//! The fused single-stream kernels: a whole recurrent step of one layer (both products
//! and the cell) in one call, for the small audio-model sizes.

use super::dense::dot;
use super::gemm::KC;
use crate::config::CellKind;
use crate::kernels::activation::{kernel_tier, Tier};
use crate::kernels::cells::{
    sweep_bytes, sweeps, wide_bytes, StreamHead, StreamInput, StreamOut, StreamWeights,
};

/// Whether a fused stream kernel runs for a layer with `units` hidden units and `k`
/// inputs (LSTM or linear-before-reset GRU): `k <= KC` (the packed GEMM's input product
/// in one chunk, whose order the kernels follow) and sizes where the fused step was
/// measured faster than the general one (a GEMV into a gates row, then the cell): on
/// AVX-512 H = 8 to 128 (at 64 and 128 they save the gates' round trip through memory
/// and the calls between: Intel Xeon Emerald Rapids, GRU steps and blocks 0.78-0.90 of
/// the general path's time, LSTM 0.92-0.97); on AVX2 H = 8 to 64 (the GRU at 64
/// 0.81-0.84; the LSTM at 64, whose 32 gate vectors run one unit vector at a time, was
/// level until the kernels alternated their sweep over `W_hh` as the general path
/// does, then 0.87-0.88 in 11 rounds). The sizes between (whole vectors: 24, 40, 48 on
/// AVX2, 48 and 96 on AVX-512) against the general step, alternated (`rnn_model_step`,
/// Intel Xeon Emerald Rapids): AVX2 LSTM 0.75, 0.76, 0.98 and GRU 0.59, 0.63, 0.61;
/// AVX-512 LSTM 0.67, 0.94 and GRU 0.46, 0.69. AVX2 at 96 and 128 (once large layers
/// updated each chunk after its products, `cells::per_chunk_update`), 5 rounds, step /
/// block: LSTM 0.86 / 0.81 and 0.88 / 0.86, GRU 0.77 / 0.77 and 0.81 / 0.81.
pub(crate) fn stream_fused(cell: CellKind, units: usize, k: usize) -> bool {
    stream_size(cell, units).is_some() && k <= KC
}

/// The kernel sizes of the process tier for `cell`, smallest first. AVX-512 80 and 112,
/// AVX2 56 (LSTM), 72, 80 and 112 (2026-12-07, against the general step, 5 rounds, step /
/// block): AVX-512 LSTM 0.79 / 0.67-0.71 and 0.79-0.85 / 0.82-0.84, GRU 0.72 / 0.73 and
/// 0.78 / 0.76-0.77; AVX2 LSTM 0.80 / 0.86, 0.82 / 0.84-0.85, 0.83 / 0.92, 0.85-0.88 /
/// 0.87, GRU 72, 80, 112 0.70-0.86 / 0.72-0.90. AVX2's GRU at 56 (seven unit vectors,
/// one a pass) was 0.92-0.96 for steps but 1.09-1.10 for blocks: left out. SSE4.1 at 4,
/// 8, 16, 24, 32, 48, 64, 96 and 128 (AMD EPYC Zen 4, `RNNCORE_KERNEL=sse41`, against
/// the general step, 5 rounds, step / block): LSTM 0.52-0.91 / 0.56-0.89, GRU 0.48-0.90 /
/// 0.49-0.78, the gain largest at small H (H = 8: LSTM 0.52 / 0.56, GRU 0.48 / 0.49).
/// SSE4.1 at 40 (GuitarML's size; it had been padded to 48), against that: 36 and 40
/// units, LSTM 0.73-0.81 / 0.76-0.79, GRU 0.74-0.82 / 0.78-0.80 (Zen 4, 7 rounds, both
/// orders).
fn kernel_sizes(cell: CellKind) -> &'static [usize] {
    match (kernel_tier(), cell) {
        // On AMD the 8-lane sizes between (`vl256_size`), for the layers they pad too
        // (against the 16-lane kernels padded further or the general step, AMD EPYC Zen
        // 4, ab.c, 9 rounds, both orders, step / block): 20 units (to 24) LSTM 0.96 /
        // 0.91, GRU 0.95 / 0.91; 36 (to 40) 0.94 / 0.94, 0.83 / 0.88; 70 (to 72) 0.89 /
        // 0.85, 0.88 / 0.87; the LSTM at 52 (to 56) 0.92 / 0.87. The GRU at 52 was 1.03
        // (it keeps the general step: no 56 here; a GRU of 56 still runs its own kernel,
        // `stream_size`), and 12 units in the 8-lane 16-unit kernel 1.08-1.18 (they keep
        // the 16-lane one, `stream_kernel`).
        (Tier::Avx512, CellKind::GruLbr) if vl256_here() => {
            &[8, 16, 24, 32, 40, 48, 64, 72, 80, 96, 112, 128]
        }
        (Tier::Avx512, _) if vl256_here() => &[8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 96, 112, 128],
        (Tier::Avx512, _) => &[8, 16, 32, 48, 64, 80, 96, 112, 128],
        (Tier::Avx2 | Tier::Avx, CellKind::GruLbr) => {
            &[8, 16, 24, 32, 40, 48, 64, 72, 80, 96, 112, 128]
        }
        (Tier::Avx2 | Tier::Avx, _) => &[8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 96, 112, 128],
        (Tier::Sse41 | Tier::Neon, _) => &[4, 8, 16, 24, 32, 40, 48, 64, 96, 128],
        (Tier::Scalar, _) => &[],
    }
}

/// The size of the fused kernel that runs a layer of `units` units: its own where the
/// tier has one, else the next larger kernel with the units above `units` padded
/// (`cells::StreamWeights`: zero gate columns, those units' state held at zero; the
/// real units' sums and so their bits are the general path's), where that was measured
/// faster than the general step; `None` where no kernel runs it.
///
/// Intel Xeon Emerald Rapids, one layer and a head, padded kernel against the general
/// step alternated (`benches/c/ab.c`, 3 rounds, medians; LSTM, GRU): AVX2 H = 4, 12, 20,
/// 36, 44: 0.42 / 0.31, 0.48 / 0.30, 0.52 / 0.44, 0.63 / 0.45, 0.71 / 0.52; AVX-512
/// 0.50 / 0.43, 0.66 / 0.54, 0.66 / 0.57, 0.68 / 0.59, 0.78 / 0.58. Up to a kernel of 48
/// units any padding pays. Above, the padded columns cost as much as the real ones and
/// the general path is nearer the machine's limit: 56 (to 64) 0.92-0.94 / 0.65-0.71 and
/// 120 (to 128) 0.85-0.96 / 0.88, but 52 on AVX-512 1.01 (LSTM), 72 and 80 (to 96)
/// 1.00-1.13 on LSTMs and 112 (to 128) 1.07 on the AVX-512 LSTM: padded there by at
/// most an eighth of a 64-unit kernel and a sixteenth of a larger one. With the kernels
/// at 56-112 (`kernel_sizes`) the padded sizes next to them, 5 rounds, steps (LSTM /
/// GRU): AVX-512 76 (to 80) 0.82 / 0.70-0.76, 108 (to 112) 0.85 / 0.80; AVX2 52 (to 56,
/// LSTM) 0.75, 70 (to 72) 0.82-0.84 / 0.83, 77 (to 80) 0.84 / 0.77-0.82, 110 (to 112)
/// 0.89 / 0.69-0.78; blocks 0.66-0.89.
pub(crate) fn stream_size(cell: CellKind, units: usize) -> Option<usize> {
    if vl256_size(units) {
        return Some(units);
    }
    let next = *kernel_sizes(cell).iter().find(|&&n| n >= units)?;
    let slack = next - units;
    let pays = next <= 48 || (next <= 64 && slack * 8 <= next) || slack * 16 <= next;
    (units > 0 && pays).then_some(next)
}

/// The layer sizes the AVX-512 tier runs in 256-bit registers where [`vl256_size`]: 16
/// (the 8-lane body against the 16-lane one, AMD EPYC Zen 4, `benches/c/ab.c`, 11 rounds:
/// steps 0.93 LSTM, 0.86-0.87 GRU, blocks 0.87 and 0.80) and the odd multiples of 8 the
/// 16-lane kernels would pad by 8 units (24, 40, 56) or leave to the general step (72).
#[cfg(target_arch = "x86_64")]
const VL256_SIZES: [usize; 5] = [16, 24, 40, 56, 72];

/// Whether the AVX-512 tier's kernel of `units` units (a layer's own size, or the next
/// one up where [`stream_size`] pads) is an 8-lane one (`avx2::vl256`: that tier's bits
/// in 256-bit registers): on AMD, whose cores split a 512-bit operation in two, where
/// AVX-512VL was detected (Knights Landing has F without VL), at [`VL256_SIZES`], which
/// join the tier's kernel sizes there. Elsewhere the 16-lane kernels run, padded where
/// the size is not theirs, with the same bits.
fn vl256_size(units: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        VL256_SIZES.contains(&units) && vl256_here()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = units;
        false
    }
}

/// Whether the AVX-512 tier runs its 8-lane kernels on this CPU at all ([`vl256_size`]).
pub(super) fn vl256_here() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let amd = crate::kernels::x86_64::amd_cpu();
        // The tests run both bodies on any CPU with AVX-512VL.
        #[cfg(test)]
        let amd = super::tests::VL256_OVERRIDE
            .with(|v| v.get())
            .unwrap_or(amd);
        kernel_tier() == Tier::Avx512 && amd && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The tier whose cell kernels a fused stream of `units` units matches bit for bit:
/// the AVX2 ones where an 8-unit kernel runs it (its body is AVX2's, on either tier),
/// else the process tier's.
#[cfg(test)]
pub(crate) fn stream_cell_tier(cell: CellKind, units: usize) -> Tier {
    if stream_size(cell, units) == Some(8) && kernel_tier() == Tier::Avx512 {
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

type LstmStreamFn = unsafe fn(usize, StreamInput, *mut f32, *mut f32, StreamOut);
type GruStreamFn = unsafe fn(usize, StreamInput, *const f32, *mut f32, StreamOut);

/// One layer's fused single-stream kernel and its weights in the kernel's order, chosen
/// and laid out once (with the packed weights) for the layer's cell and size on the
/// process tier: the unit vectors and the products' accumulators fixed at compile time,
/// as RTNeural's compile-time models fix them. Each kernel sums `W_hh h` as its tier's
/// GEMV does (`PAIRS`), so a fused step is bit for bit the general path's.
#[derive(Clone, Debug)]
pub(crate) struct StreamLayer {
    kernel: StreamKernel,
    /// The kernel for calls of several steps where it differs (`stream_kernel`'s `WIDE`
    /// form: its sweep counts every input row).
    block: Option<StreamKernel>,
    gates: usize,
    w: StreamWeights,
    /// The linear-before-reset GRU's `b_hn` (`[H]`; empty for the LSTM), kept with the
    /// weights: a per-sample step would otherwise look it up in the parameters per call.
    b_hn: Vec<f32>,
    /// The head this (top) layer's kernel computes on `h` in registers, where the model
    /// has one of few outputs ([`StreamLayer::set_head`]).
    head: Option<StreamLayerHead>,
    /// The model's one dense layer after the stack, computed right after a per-sample
    /// step ([`StreamLayer::set_post`]).
    post: Option<StreamLayerHead>,
}

/// Rows of `units` floats, each followed by zeros up to `size`: the kernel's rows where
/// it is wider than the layer.
fn padded_rows(rows: &[f32], units: usize, size: usize) -> Vec<f32> {
    if units == 0 || units == size {
        return rows.to_vec();
    }
    let mut out = vec![0.0; rows.len() / units * size];
    for (o, r) in out.chunks_exact_mut(size).zip(rows.chunks_exact(units)) {
        o[..units].copy_from_slice(r);
    }
    out
}

/// A dense head's weights (`weight` `[o][H]`, padded to the kernel's units where it is
/// wider, `bias` `[o]`), copied from the parameters with the packed weights.
#[derive(Clone, Debug)]
struct StreamLayerHead {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl StreamLayer {
    /// The fused kernel for a layer of `cell` with `units` hidden units and `k` inputs
    /// (PyTorch's `w_ih` `[G·H][k]`, `w_hh` `[G·H][H]`, the folded bias `[G·H]`, and for
    /// the linear-before-reset GRU `b_hn` `[H]`, empty for the LSTM), where
    /// [`stream_fused`]; `None` elsewhere.
    pub(crate) fn new(
        cell: CellKind,
        units: usize,
        k: usize,
        w_ih: &[f32],
        w_hh: &[f32],
        bias: &[f32],
        b_hn: &[f32],
    ) -> Option<StreamLayer> {
        StreamLayer::with_form(cell, units, k, w_ih, w_hh, bias, b_hn, None)
    }

    /// [`StreamLayer::new`] with the activations' form forced (`Some(chain)`) or chosen
    /// for the CPU (`None`): the tests run both forms on every machine.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn with_form(
        cell: CellKind,
        units: usize,
        k: usize,
        w_ih: &[f32],
        w_hh: &[f32],
        bias: &[f32],
        b_hn: &[f32],
        chain: Option<bool>,
    ) -> Option<StreamLayer> {
        if !stream_fused(cell, units, k) {
            return None;
        }
        let size = stream_size(cell, units)?;
        let pad = size != units;
        let (kernel, lanes, ch) = stream_kernel(cell, size, pad, chain, false)?;
        let gates = cell.gates();
        // Blocks of a layer whose input weights take it over 32 KiB, where the usual
        // kernel's measure (`W_hh`, the bias and one input row) stays under: the `WIDE`
        // kernel sweeps (the same layout, the same bits).
        let block = if sweeps(wide_bytes(gates, size, units, k))
            && !sweeps(sweep_bytes(gates, size, units))
        {
            stream_kernel(cell, size, pad, chain, true)
                .filter(|&(_, l, c)| (l, c) == (lanes, ch))
                .map(|(wide, ..)| wide)
        } else {
            None
        };
        let b_hn_len = match kernel {
            StreamKernel::Lstm(_) => 0,
            StreamKernel::GruLbr(_) => units,
        };
        assert_eq!(b_hn.len(), b_hn_len, "stream layer: b_hn");
        let w = StreamWeights::new(gates, units, size, k, lanes, ch, w_ih, w_hh, bias);
        Some(StreamLayer {
            kernel,
            block,
            gates,
            w,
            b_hn: padded_rows(b_hn, units, size),
            head: None,
            post: None,
        })
    }

    /// Whether calls of several steps take another kernel than single steps (`block`).
    #[cfg(test)]
    pub(crate) fn has_block_kernel(&self) -> bool {
        self.block.is_some()
    }

    /// Makes this layer's kernel compute a dense head (`weight` `[o][H]`, `bias` `[o]`)
    /// in [`StreamLayer::run_head`]: for the top layer, where the head has few outputs.
    pub(crate) fn set_head(&mut self, weight: &[f32], bias: &[f32]) {
        assert_eq!(
            weight.len() * self.gates,
            bias.len() * self.w.gates_units(),
            "stream head: shapes disagree"
        );
        let (units, size) = (self.w.gates_units() / self.gates, self.w.padded());
        self.head = Some(StreamLayerHead {
            weight: padded_rows(weight, units, size),
            bias: bias.to_vec(),
        });
    }

    /// Gives this (only) layer a model's dense layer after the stack (`weight` `[o][H]`,
    /// `bias` `[o]`; no activation: the caller applies it) for [`StreamLayer::post_dot`],
    /// with the dense layers' sums (`packed::dot`) rather than a head's.
    pub(crate) fn set_post(&mut self, weight: &[f32], bias: &[f32]) {
        assert_eq!(
            weight.len() * self.gates,
            bias.len() * self.w.gates_units(),
            "stream post layer: shapes disagree"
        );
        self.post = Some(StreamLayerHead {
            weight: weight.to_vec(),
            bias: bias.to_vec(),
        });
    }

    /// Undoes [`StreamLayer::set_post`].
    pub(crate) fn clear_post(&mut self) {
        self.post = None;
    }

    /// The outputs of the dense layer [`StreamLayer::set_post`] gave this layer, where
    /// it has one.
    #[inline]
    pub(crate) fn post_outputs(&self) -> Option<usize> {
        self.post.as_ref().map(|p| p.bias.len())
    }

    /// One step of this layer, `x` one row of inputs, `h` and `c` its state (updated):
    /// the kernel with no rows and no head, the new `h` being the state itself.
    #[inline(always)]
    pub(crate) fn step_state(&self, x: &[f32], reverse: bool, h: &mut [f32], c: &mut [f32]) {
        let out = StreamOut {
            rows: std::ptr::null_mut(),
            head: None,
        };
        self.run_out(x, 1, reverse, h, c, out);
    }

    /// The outputs of the dense layer [`StreamLayer::set_post`] gave this layer (before
    /// its activation) for the layer's `h`, into `y`: each the dense layers' [`dot`], so
    /// their pass's bits on that row. Panics where the layer has none.
    #[inline(always)]
    pub(crate) fn post_dot(&self, h: &[f32], y: &mut [f32]) {
        let pd = self
            .post
            .as_ref()
            .expect("stream post layer: the layer has none");
        assert_eq!(
            y.len(),
            pd.bias.len(),
            "stream post layer: y is not its outputs"
        );
        let units = h.len();
        for ((yj, w), &b) in y
            .iter_mut()
            .zip(pd.weight.chunks_exact(units))
            .zip(&pd.bias)
        {
            *yj = dot(b, w, h);
        }
    }

    /// Whether [`StreamLayer::set_head`] gave this layer a head.
    #[inline]
    pub(crate) fn has_head(&self) -> bool {
        self.head.is_some()
    }

    /// Runs the timesteps of one stream: per step the gate pre-activations (`bias + x ·
    /// W_ihᵀ`, then `+ h · W_hhᵀ`) and the state update, in one kernel; `x` holds `steps`
    /// rows of inputs, `h` (and for the LSTM `c`) is the state (updated), `out` receives each
    /// step's `h` (rows of `H`); `reverse`: the first step sweeps the weights' chunks
    /// last to first (it alternates from there; see `cells::sweep_chunk`: no bit
    /// changes). Bit for bit what [`super::gemm_packed_bias`] of the inputs into
    /// gate rows, the packed GEMV into each row (or a scratch row, GRU) and
    /// `activation::lstm_state` / `gru_lbr_state` give, step by step.
    #[inline(always)]
    pub(crate) fn run(
        &self,
        x: &[f32],
        steps: usize,
        reverse: bool,
        h: &mut [f32],
        c: &mut [f32],
        out: &mut [f32],
    ) {
        assert!(
            out.len() >= steps * h.len(),
            "stream kernel: out holds too few rows"
        );
        self.run_out(x, steps, reverse, h, c, StreamOut::rows(out.as_mut_ptr()));
    }

    /// As [`StreamLayer::run`], but instead of `h` rows each step's outputs of the head
    /// given by [`StreamLayer::set_head`] into `y` (rows of `o`), computed from `h` in
    /// registers: the bits of `run` followed by the process tier's `dense_narrow` on its
    /// rows. The kernel sums the head as its own tier's `dense_narrow`; that is the process
    /// tier but for 8 units on AVX-512, which run AVX2's body (see `stream_kernel`), and
    /// there the two agree: AVX2 sums the 8 products from zero in one vector and adds the
    /// zero second accumulator; AVX-512 has the same products in lanes 0..8 and zeros
    /// above (a masked load), and its first halving adds those zeros. Adding a zero is
    /// exact (a −0 turned +0 at the first addition on both), so the bits are the same,
    /// as `a_head_inside_the_stream_kernel_is_the_dense_head_bit_for_bit` checks on
    /// every tier. Panics where the layer has no head.
    #[inline(always)]
    pub(crate) fn run_head(
        &self,
        x: &[f32],
        steps: usize,
        reverse: bool,
        h: &mut [f32],
        c: &mut [f32],
        y: &mut [f32],
    ) {
        let hd = self.head.as_ref().expect("stream head: the layer has none");
        let o = hd.bias.len();
        assert!(y.len() >= steps * o, "stream head: y holds too few rows");
        let head = StreamHead {
            w: hd.weight.as_ptr(),
            bias: hd.bias.as_ptr(),
            o,
            y: y.as_mut_ptr(),
        };
        let out = StreamOut {
            rows: std::ptr::null_mut(),
            head: Some(head),
        };
        self.run_out(x, steps, reverse, h, c, out);
    }

    /// The kernel call behind `run` and `run_head`, whose `out` was checked by them.
    #[inline(always)]
    fn run_out(
        &self,
        x: &[f32],
        steps: usize,
        reverse: bool,
        h: &mut [f32],
        c: &mut [f32],
        out: StreamOut,
    ) {
        let units = h.len();
        assert!(
            units * self.gates == self.w.gates_units()
                && Some(x.len()) == steps.checked_mul(self.w.k()),
            "stream kernel: shapes disagree"
        );
        let (inp, hp) = (self.w.input(x.as_ptr(), reverse), h.as_mut_ptr());
        // SAFETY: the kernel was chosen by `stream_kernel` for the process tier
        // (detected; AVX-512VL too for that tier's 8-lane kernels), this cell and the
        // kernel's size (`stream_size`: these units or, padded, more), with `k <= KC`,
        // and the weights laid out for it (`StreamWeights::new`; `b_hn` and the head's
        // rows padded to the kernel's size: `with_form`, `set_head`); the kernel reads
        // and writes `w`'s units of h, c and the output rows (`StreamInput::units`); x
        // and h were checked just above, `out` by the callers (`run`, `run_head`; none in
        // `step_state`), c below.
        let kernel = match self.block {
            Some(k) if steps > 1 => k,
            _ => self.kernel,
        };
        unsafe {
            match kernel {
                StreamKernel::Lstm(f) => {
                    assert!(c.len() == units, "lstm stream: c and h differ in length");
                    f(steps, inp, hp, c.as_mut_ptr(), out)
                }
                StreamKernel::GruLbr(f) => f(steps, inp, self.b_hn.as_ptr(), hp, out),
            }
        }
    }
}

/// The activations' form a fused stream takes (the same bits either way; `x86_64/mod.rs`
/// describes both): the chain form's shorter latency against the throughput form's three
/// fewer operations per vector. Measured, step and 512-sample block alternated:
/// - AVX-512 bodies (16, 32 units): the chain form (few 16-lane vectors a step; Intel,
///   the development machine); so too their 8-lane form on AMD (`stream_kernel`).
/// - AVX2 bodies with one unit vector (8 units, on either tier): the chain form. Intel
///   Xeon (Emerald Rapids): LSTM and GRU H = 8 steps 13-14 % faster; AMD EPYC Zen 3:
///   level.
/// - AVX2 bodies with several unit vectors (16, 32 units on the AVX2 tier): the
///   throughput form on AMD (Zen 3: H = 32 blocks 4-6 % faster, GRU H = 16 5 %), the
///   chain form elsewhere (Emerald Rapids: GRU H = 16 steps 15 %, LSTM H = 16 8 %,
///   H = 32 2-6 % faster). On Zen 4 the throughput form at 8 units (one unit vector) was
///   7-9 % slower for blocks, level at 16-64 on either tier's bodies (2026-12-07).
/// - SSE4.1 bodies (`lanes` 4): the chain form everywhere. AMD EPYC Zen 4, against the
///   throughput form (5 rounds, step / block): H = 8 0.90 / 0.85 (LSTM), 0.93 / 0.90
///   (GRU); 16-48 0.92-0.97 / 0.91-0.96; 4 and 64-128 level.
fn chain_form(avx512_body: bool, lanes: usize, unit_vectors: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    let amd = crate::kernels::x86_64::amd_cpu();
    #[cfg(not(target_arch = "x86_64"))]
    let amd = false;
    avx512_body || lanes == 4 || unit_vectors == 1 || !amd
}

/// The kernel for a layer of `cell` with `units` hidden units on the process tier, where
/// [`stream_fused`], with the lanes and unit vectors per chunk its weights are laid out
/// for; `chain` the activations' form ([`chain_form`] unless a test forces one). `wide`:
/// the kernel's `WIDE` instance instead (`cells::wide_bytes`), in the same layout, where
/// the size has one (on `avx512`, `avx2` and `avx`; `None` elsewhere), for the blocks
/// of layers whose input weights take them over 32 KiB (`StreamLayer::with_form`).
fn stream_kernel(
    cell: CellKind,
    units: usize,
    pad: bool,
    chain: Option<bool>,
    wide: bool,
) -> Option<(StreamKernel, usize, usize)> {
    // One kernel in either form: `pick!(Lstm, avx2::lstm_stream, U, CH, NV, chain)`.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    macro_rules! pick {
        ($kind:ident, $m:ident::$f:ident, $u:literal, $ch:literal, $nv:literal, $chain:expr) => {
            match ($chain, pad) {
                (true, false) => $kind($m::$f::<$u, $ch, $nv, true, true, false, false>),
                (false, false) => $kind($m::$f::<$u, $ch, $nv, true, false, false, false>),
                (true, true) => $kind($m::$f::<$u, $ch, $nv, true, true, true, false>),
                (false, true) => $kind($m::$f::<$u, $ch, $nv, true, false, true, false>),
            }
        };
    }
    // The `WIDE` form of one kernel (`cells::wide_bytes`), unpadded, in either form of
    // the activations: for blocks of layers whose input weights take them over 32 KiB.
    #[cfg(target_arch = "x86_64")]
    macro_rules! pick_wide {
        ($kind:ident, $m:ident::$f:ident, $u:literal, $ch:literal, $nv:literal, $chain:expr) => {
            match ($chain, pad) {
                (true, false) => $kind($m::$f::<$u, $ch, $nv, true, true, false, true>),
                (false, false) => $kind($m::$f::<$u, $ch, $nv, true, false, false, true>),
                (_, true) => return None,
            }
        };
    }
    // The 4-lane tiers' kernels (SSE4.1's 16 registers, NEON's 32), laid out as AVX2's:
    // the LSTM one unit vector a pass, the GRU two from 8 units on.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    macro_rules! four_lanes {
        ($m:ident, $form:expr) => {
            Some(match (cell, units) {
                (CellKind::Lstm, 4) => (pick!(Lstm, $m::lstm_stream, 1, 1, 4, $form), 4, 1),
                (CellKind::Lstm, 8) => (pick!(Lstm, $m::lstm_stream, 2, 1, 4, $form), 4, 1),
                (CellKind::Lstm, 16) => (pick!(Lstm, $m::lstm_stream, 4, 1, 4, $form), 4, 1),
                (CellKind::Lstm, 24) => (pick!(Lstm, $m::lstm_stream, 6, 1, 4, $form), 4, 1),
                (CellKind::Lstm, 32) => (pick!(Lstm, $m::lstm_stream, 8, 1, 4, $form), 4, 1),
                (CellKind::Lstm, 40) => (pick!(Lstm, $m::lstm_stream, 10, 1, 4, $form), 4, 1),
                (CellKind::Lstm, 48) => (pick!(Lstm, $m::lstm_stream, 12, 1, 4, $form), 4, 1),
                (CellKind::Lstm, 64) => (pick!(Lstm, $m::lstm_stream, 16, 1, 4, $form), 4, 1),
                (CellKind::Lstm, 96) => (pick!(Lstm, $m::lstm_stream, 24, 1, 4, $form), 4, 1),
                (CellKind::Lstm, 128) => (pick!(Lstm, $m::lstm_stream, 32, 1, 4, $form), 4, 1),
                (CellKind::GruLbr, 4) => (pick!(GruLbr, $m::gru_lbr_stream, 1, 1, 3, $form), 4, 1),
                (CellKind::GruLbr, 8) => (pick!(GruLbr, $m::gru_lbr_stream, 2, 2, 6, $form), 4, 2),
                (CellKind::GruLbr, 16) => (pick!(GruLbr, $m::gru_lbr_stream, 4, 2, 6, $form), 4, 2),
                (CellKind::GruLbr, 24) => (pick!(GruLbr, $m::gru_lbr_stream, 6, 2, 6, $form), 4, 2),
                (CellKind::GruLbr, 32) => (pick!(GruLbr, $m::gru_lbr_stream, 8, 2, 6, $form), 4, 2),
                (CellKind::GruLbr, 40) => {
                    (pick!(GruLbr, $m::gru_lbr_stream, 10, 2, 6, $form), 4, 2)
                }
                (CellKind::GruLbr, 48) => {
                    (pick!(GruLbr, $m::gru_lbr_stream, 12, 2, 6, $form), 4, 2)
                }
                (CellKind::GruLbr, 64) => {
                    (pick!(GruLbr, $m::gru_lbr_stream, 16, 2, 6, $form), 4, 2)
                }
                (CellKind::GruLbr, 96) => {
                    (pick!(GruLbr, $m::gru_lbr_stream, 24, 2, 6, $form), 4, 2)
                }
                (CellKind::GruLbr, 128) => {
                    (pick!(GruLbr, $m::gru_lbr_stream, 32, 2, 6, $form), 4, 2)
                }
                _ => return None,
            })
        };
    }
    // The 8-lane tiers' kernels with 16 registers (AVX2's, and the AVX tier's in the
    // same layouts): one unit vector's gate sums per pass, except the GRU's two (three
    // gate vectors each: measured faster).
    #[cfg(target_arch = "x86_64")]
    macro_rules! eight_lanes {
        ($m:ident, $form:expr) => {
            Some(match (cell, units) {
                // GuitarML's Proteus captures are LSTMs of 40 units (by its README); the
                // sizes between the powers of two take the same bodies, one unit vector a
                // pass where the count is odd.
                (CellKind::Lstm, 8) => (pick!(Lstm, $m::lstm_stream, 1, 1, 4, $form), 8, 1),
                (CellKind::Lstm, 16) => (pick!(Lstm, $m::lstm_stream, 2, 1, 4, $form), 8, 1),
                (CellKind::Lstm, 24) => (pick!(Lstm, $m::lstm_stream, 3, 1, 4, $form), 8, 1),
                (CellKind::Lstm, 32) => (pick!(Lstm, $m::lstm_stream, 4, 1, 4, $form), 8, 1),
                (CellKind::Lstm, 40) => (pick!(Lstm, $m::lstm_stream, 5, 1, 4, $form), 8, 1),
                (CellKind::Lstm, 48) => (pick!(Lstm, $m::lstm_stream, 6, 1, 4, $form), 8, 1),
                (CellKind::Lstm, 56) => (pick!(Lstm, $m::lstm_stream, 7, 1, 4, $form), 8, 1),
                (CellKind::Lstm, 64) => (pick!(Lstm, $m::lstm_stream, 8, 1, 4, $form), 8, 1),
                (CellKind::Lstm, 72) => (pick!(Lstm, $m::lstm_stream, 9, 1, 4, $form), 8, 1),
                (CellKind::Lstm, 80) => (pick!(Lstm, $m::lstm_stream, 10, 1, 4, $form), 8, 1),
                (CellKind::Lstm, 96) => (pick!(Lstm, $m::lstm_stream, 12, 1, 4, $form), 8, 1),
                (CellKind::Lstm, 112) => (pick!(Lstm, $m::lstm_stream, 14, 1, 4, $form), 8, 1),
                (CellKind::Lstm, 128) => (pick!(Lstm, $m::lstm_stream, 16, 1, 4, $form), 8, 1),
                (CellKind::GruLbr, 8) => (pick!(GruLbr, $m::gru_lbr_stream, 1, 1, 3, $form), 8, 1),
                (CellKind::GruLbr, 16) => (pick!(GruLbr, $m::gru_lbr_stream, 2, 2, 6, $form), 8, 2),
                (CellKind::GruLbr, 24) => (pick!(GruLbr, $m::gru_lbr_stream, 3, 1, 3, $form), 8, 1),
                (CellKind::GruLbr, 32) => (pick!(GruLbr, $m::gru_lbr_stream, 4, 2, 6, $form), 8, 2),
                (CellKind::GruLbr, 40) => (pick!(GruLbr, $m::gru_lbr_stream, 5, 1, 3, $form), 8, 1),
                (CellKind::GruLbr, 48) => (pick!(GruLbr, $m::gru_lbr_stream, 6, 2, 6, $form), 8, 2),
                (CellKind::GruLbr, 56) => (pick!(GruLbr, $m::gru_lbr_stream, 7, 1, 3, $form), 8, 1),
                (CellKind::GruLbr, 64) => (pick!(GruLbr, $m::gru_lbr_stream, 8, 2, 6, $form), 8, 2),
                (CellKind::GruLbr, 72) => (pick!(GruLbr, $m::gru_lbr_stream, 9, 1, 3, $form), 8, 1),
                (CellKind::GruLbr, 80) => {
                    (pick!(GruLbr, $m::gru_lbr_stream, 10, 2, 6, $form), 8, 2)
                }
                (CellKind::GruLbr, 96) => {
                    (pick!(GruLbr, $m::gru_lbr_stream, 12, 2, 6, $form), 8, 2)
                }
                (CellKind::GruLbr, 112) => {
                    (pick!(GruLbr, $m::gru_lbr_stream, 14, 2, 6, $form), 8, 2)
                }
                (CellKind::GruLbr, 128) => {
                    (pick!(GruLbr, $m::gru_lbr_stream, 16, 2, 6, $form), 8, 2)
                }
                _ => return None,
            })
        };
    }
    // The 8-lane tiers' `WIDE` kernels, in `eight_lanes!`'s layouts, at the sizes whose
    // two-layer blocks they made faster on every tier that has them (AMD EPYC Zen 4,
    // `ab.c`, 5 rounds, both orders; block time against the usual kernel's): LSTM 40
    // 0.89-0.91 (`avx2`), 0.92-0.95 (`avx`); GRU 40 0.95, 0.90-0.93; GRU 48 0.88-0.89,
    // 0.90-0.92. Not at 32 units (the LSTM's 33 KiB: `avx2` 1.01, 11 rounds; `avx`
    // 0.90-0.94).
    #[cfg(target_arch = "x86_64")]
    macro_rules! eight_lanes_wide {
        ($m:ident, $form:expr) => {
            Some(match (cell, units) {
                (CellKind::Lstm, 40) => (pick_wide!(Lstm, $m::lstm_stream, 5, 1, 4, $form), 8, 1),
                (CellKind::GruLbr, 40) => {
                    (pick_wide!(GruLbr, $m::gru_lbr_stream, 5, 1, 3, $form), 8, 1)
                }
                (CellKind::GruLbr, 48) => {
                    (pick_wide!(GruLbr, $m::gru_lbr_stream, 6, 2, 6, $form), 8, 2)
                }
                _ => return None,
            })
        };
    }
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::x86_64::avx2::vl256;
        use crate::kernels::x86_64::{avx, avx2, avx512, sse};
        use StreamKernel::{GruLbr, Lstm};
        // `stream_fused` admits AVX2 (or AVX-512) for these sizes; 8 units run the AVX2
        // body on either tier (half an AVX-512 vector), summed as the process tier's
        // GEMV (PAIRS on both). AVX2's 16 registers hold one unit vector's gate sums per
        // pass, except the GRU's two (three gate vectors each: measured faster).
        // AVX-512 at 64 units and up takes one unit vector per pass as well: at 128 its
        // chunks of `W_hh` are then 32 KiB (24 for the GRU), so the chunk a step starts
        // on (the sweep alternates) is still in L1; with two per pass they were 64 KiB
        // and the steps and blocks took 1.02-1.09 of the time (Intel Xeon Emerald
        // Rapids, 48 KiB L1d, 9 rounds, three runs), where at 64 units the two choices
        // measured level. With Zen 4's 32 KiB L1d the 64- and 96-unit layers' chunks of
        // two unit vectors (32 and 48 KiB for the LSTM) were too large as well: one a
        // pass, steps LSTM 0.83-0.89 (64), 0.92 (96), GRU 0.97-0.98, 0.92-0.93; blocks
        // 0.95-0.97, 0.90-0.93, 0.92-0.93, 0.92-0.96 (AMD EPYC Zen 4, ab.c, 9 rounds, both
        // orders).
        let tier = kernel_tier();
        // AVX-512's 16-unit layers in 256-bit registers on AMD (`avx2::vl256`: its bits,
        // and AVX-512VL's 32 registers). Zen 4 splits a 512-bit operation in two; with
        // both unit vectors of 8 in one pass (the GRU's as on the AVX2 tier, the LSTM's
        // eight gate vectors, which AVX2's 16 registers do not hold) and the chain form of
        // the activations, 16-unit steps ran in 0.93 (LSTM) and 0.86-0.87 (GRU) of the
        // 512-bit body's time and 512-sample blocks in 0.87 and 0.80 (AMD EPYC Zen 4,
        // ab.c, 11 rounds; the throughput form 2-6 % slower than the chain form here).
        // AVX2's layouts at 32 and 64 units were 1.03-1.15 (docs/PERFORMANCE.md, seventh
        // session). At 24, 40, 56 and 72 units (`VL256_SIZES`) the 16-lane kernels pad
        // to 32, 48, 64 or take the general step; the 8-lane ones there, against them
        // (AMD EPYC Zen 4, ab.c, 11 rounds, both orders, step / block): LSTM 0.72 /
        // 0.79-0.92, 0.80 / 0.86-0.88, 0.88 / 0.90, 0.78 / 0.80; GRU 0.73 / 0.81-0.83,
        // 0.74-0.76 / 0.88-0.91, 0.91 / 0.97-0.99, 0.82 / 0.80. Their heads sum as the
        // 16-lane ones (`Simd::DOT_LANES`).
        // A padded 16-unit layer keeps the 16-lane kernel (`kernel_sizes`).
        let vl256 = vl256_size(units) && !(pad && units == 16);
        let avx512_body = tier == Tier::Avx512 && units > 8 && !vl256;
        let lanes = match tier {
            Tier::Avx512 if avx512_body => 16,
            Tier::Sse41 => 4,
            _ => 8,
        };
        // The chain form for the 8-lane AVX-512 bodies too (above).
        let ch = chain.unwrap_or_else(|| vl256 || chain_form(avx512_body, lanes, units / lanes));
        if wide {
            return match (tier, cell, units) {
                (Tier::Avx, ..) => eight_lanes_wide!(avx, ch),
                (Tier::Avx2, ..) => eight_lanes_wide!(avx2, ch),
                // Two-layer blocks 0.89-0.94 (LSTM 40) and 0.93-0.94 (GRU 48) of the
                // usual kernel's time (as above).
                (Tier::Avx512, CellKind::Lstm, 40) if vl256 => {
                    Some((pick_wide!(Lstm, vl256::lstm_stream, 5, 1, 4, ch), 8, 1))
                }
                (Tier::Avx512, CellKind::GruLbr, 48) if avx512_body => Some((
                    pick_wide!(GruLbr, avx512::gru_lbr_stream, 3, 1, 3, ch),
                    16,
                    1,
                )),
                _ => None,
            };
        }
        match tier {
            // The 4-lane form as NEON's below: written out, it is a constant the compiler
            // sees, and the other form's kernels stay out of the library.
            Tier::Sse41 => {
                return four_lanes!(
                    sse,
                    chain.unwrap_or_else(|| chain_form(false, 4, units / 4))
                )
            }
            Tier::Avx => return eight_lanes!(avx, ch),
            Tier::Avx2 => return eight_lanes!(avx2, ch),
            _ => {}
        }
        let kernel = match (tier, cell, units) {
            (Tier::Avx512, CellKind::GruLbr, 16) if vl256 => {
                (pick!(GruLbr, vl256::gru_lbr_stream, 2, 2, 6, ch), 8, 2)
            }
            (Tier::Avx512, CellKind::Lstm, 16) if vl256 => {
                (pick!(Lstm, vl256::lstm_stream, 2, 2, 8, ch), 8, 2)
            }
            // 24 units: all three unit vectors in one pass, as 32 registers allow (the
            // LSTM's 12 gate vectors in two accumulators each): LSTM steps 0.70 and GRU
            // 0.83 of the time of one unit vector a pass (AMD EPYC Zen 4, 3 rounds). The
            // larger sizes in AVX2's layouts, but the GRU at 40 in one pass (30
            // accumulators: 0.96); at 72 three unit vectors a pass were level.
            (Tier::Avx512, CellKind::Lstm, 24) if vl256 => {
                (pick!(Lstm, vl256::lstm_stream, 3, 3, 12, ch), 8, 3)
            }
            (Tier::Avx512, CellKind::GruLbr, 24) if vl256 => {
                (pick!(GruLbr, vl256::gru_lbr_stream, 3, 3, 9, ch), 8, 3)
            }
            (Tier::Avx512, CellKind::Lstm, 40) if vl256 => {
                (pick!(Lstm, vl256::lstm_stream, 5, 1, 4, ch), 8, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 40) if vl256 => {
                (pick!(GruLbr, vl256::gru_lbr_stream, 5, 5, 15, ch), 8, 5)
            }
            (Tier::Avx512, CellKind::Lstm, 56) if vl256 => {
                (pick!(Lstm, vl256::lstm_stream, 7, 1, 4, ch), 8, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 56) if vl256 => {
                (pick!(GruLbr, vl256::gru_lbr_stream, 7, 1, 3, ch), 8, 1)
            }
            (Tier::Avx512, CellKind::Lstm, 72) if vl256 => {
                (pick!(Lstm, vl256::lstm_stream, 9, 1, 4, ch), 8, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 72) if vl256 => {
                (pick!(GruLbr, vl256::gru_lbr_stream, 9, 1, 3, ch), 8, 1)
            }
            (Tier::Avx512, CellKind::Lstm, 8) => {
                (pick!(Lstm, avx2::lstm_stream, 1, 1, 4, ch), 8, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 8) => {
                (pick!(GruLbr, avx2::gru_lbr_stream, 1, 1, 3, ch), 8, 1)
            }
            (Tier::Avx512, CellKind::Lstm, 16) => {
                (pick!(Lstm, avx512::lstm_stream, 1, 1, 4, ch), 16, 1)
            }
            (Tier::Avx512, CellKind::Lstm, 32) => {
                (pick!(Lstm, avx512::lstm_stream, 2, 2, 8, ch), 16, 2)
            }
            (Tier::Avx512, CellKind::Lstm, 64) => {
                (pick!(Lstm, avx512::lstm_stream, 4, 1, 4, ch), 16, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 64) => {
                (pick!(GruLbr, avx512::gru_lbr_stream, 4, 1, 3, ch), 16, 1)
            }
            (Tier::Avx512, CellKind::Lstm, 128) => {
                (pick!(Lstm, avx512::lstm_stream, 8, 1, 4, ch), 16, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 128) => {
                (pick!(GruLbr, avx512::gru_lbr_stream, 8, 1, 3, ch), 16, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 16) => {
                (pick!(GruLbr, avx512::gru_lbr_stream, 1, 1, 3, ch), 16, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 32) => {
                (pick!(GruLbr, avx512::gru_lbr_stream, 2, 2, 6, ch), 16, 2)
            }
            (Tier::Avx512, CellKind::Lstm, 48) => {
                (pick!(Lstm, avx512::lstm_stream, 3, 1, 4, ch), 16, 1)
            }
            (Tier::Avx512, CellKind::Lstm, 96) => {
                (pick!(Lstm, avx512::lstm_stream, 6, 1, 4, ch), 16, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 48) => {
                (pick!(GruLbr, avx512::gru_lbr_stream, 3, 1, 3, ch), 16, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 96) => {
                (pick!(GruLbr, avx512::gru_lbr_stream, 6, 1, 3, ch), 16, 1)
            }
            (Tier::Avx512, CellKind::Lstm, 80) => {
                (pick!(Lstm, avx512::lstm_stream, 5, 1, 4, ch), 16, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 80) => {
                (pick!(GruLbr, avx512::gru_lbr_stream, 5, 1, 3, ch), 16, 1)
            }
            (Tier::Avx512, CellKind::Lstm, 112) => {
                (pick!(Lstm, avx512::lstm_stream, 7, 1, 4, ch), 16, 1)
            }
            (Tier::Avx512, CellKind::GruLbr, 112) => {
                (pick!(GruLbr, avx512::gru_lbr_stream, 7, 1, 3, ch), 16, 1)
            }
            _ => return None,
        };
        Some(kernel)
    }
    #[cfg(target_arch = "aarch64")]
    {
        use crate::kernels::aarch64::neon;
        use StreamKernel::{GruLbr, Lstm};
        if kernel_tier() != Tier::Neon || wide {
            return None;
        }
        // NEON: SSE4.1's layouts, in SSE4.1's activations' form unless a test forces one
        // (not measured on NEON).
        let form = chain.unwrap_or_else(|| chain_form(false, 4, units / 4));
        four_lanes!(neon, form)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (cell, units, pad, chain, wide);
        None
    }
}
