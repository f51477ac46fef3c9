#![forbid(unsafe_code)]
//! One timestep of one layer, shared by the sequence forward (`forward.rs`) and the
//! streaming state (`state.rs`): the recurrent product accumulated into the gate rows
//! and the fused pointwise pass of the cell; and the output softmax both apply per row.

use crate::cell::{gru, lstm, rnn};
use crate::config::CellKind;
use crate::kernels::packed::{gemm_packed_sweep, gemv_packed_sweep, PackedB};
use crate::model::Model;

/// Where one timestep's outputs go: row `i` of each buffer starts at `i * ld`.
pub(crate) struct StepRows<'a> {
    /// Gate pre-activations with the input part and folded bias already in; they become
    /// the activated gates.
    pub gates: &'a mut [f32],
    pub ldg: usize,
    /// `h_t`; with `prev_in_h`, `h_{t-1}` followed by `h_t` (row `i` of `h_{t-1}` at
    /// `i * ldh`, of `h_t` `H` floats after it: the record `[B][T][H]` from step `t-1`),
    /// and the step reads `h_{t-1}` there instead of from its `hprev` argument.
    pub h: &'a mut [f32],
    pub ldh: usize,
    pub prev_in_h: bool,
    /// LSTM: `c_t` (with `prev_in_c`, `c_{t-1}` followed by `c_t`, as `h`); empty for
    /// other cells.
    pub c: &'a mut [f32],
    pub ldc: usize,
    pub prev_in_c: bool,
    /// Notes' GRU: `r ⊙ h_{t-1}` (required: it is the operand of `W_hn`); linear-before-reset
    /// GRU: `W_hn h_{t-1} + b_hn`, kept for backward when not empty.
    pub extra: &'a mut [f32],
    pub lde: usize,
    /// One row, products through `gemv_packed` (streaming only: its summation order is
    /// not the batched kernel's, so the batched paths, whose bits must not depend on how
    /// rows are grouped, leave this off).
    pub gemv: bool,
    /// Read `W_hh` last group first (alternated per step, which changes no bit: see
    /// [`gemm_packed_sweep`]).
    pub reverse: bool,
}

/// One timestep of layer `k` for `m` rows, shared by the sequence forward and the
/// streaming paths: the packed product `h_{t-1} · W_hhᵀ` accumulated into the gate rows
/// (the notes' GRU: `W_{rz}` first, then `W_hn (r ⊙ h)`), then the fused pointwise pass
/// per row. `hprev`/`cprev` are `[m][H]`; `ghb` is `[m][G*H]` scratch (linear-before-reset
/// GRU only).
pub(crate) fn recurrent_step(
    model: &Model,
    k: usize,
    m: usize,
    hprev: &[f32],
    cprev: &[f32],
    io: StepRows<'_>,
    ghb: &mut [f32],
) {
    let cfg = model.config();
    let cell = cfg.cell;
    let h = cfg.hidden_size;
    let gh = cell.gates() * h;
    let pk = &model.packed[k];
    let StepRows {
        gates,
        ldg,
        h: hout,
        ldh,
        prev_in_h,
        c: cout,
        ldc,
        prev_in_c,
        extra,
        lde,
        gemv,
        reverse,
    } = io;
    let product = |a: &[f32], lda: usize, b: &PackedB, c: &mut [f32], ldc: usize, acc: bool| {
        if gemv {
            gemv_packed_sweep(&a[..b.k()], b, c, acc, reverse);
        } else {
            gemm_packed_sweep(m, a, lda, b, c, ldc, acc, reverse);
        }
    };
    // `h_{t-1}` as the product's operand, and row `i`'s `h_{t-1}` and `h_t` for the cell.
    let (ha, lda) = if prev_in_h { (&*hout, ldh) } else { (hprev, h) };
    let hh = if prev_in_h { h } else { 0 };
    fn rows<'r>(
        own: &'r [f32],
        buf: &'r mut [f32],
        ld: usize,
        i: usize,
        h: usize,
        in_buf: bool,
    ) -> (&'r [f32], &'r mut [f32]) {
        if in_buf {
            let (p, o) = buf[i * ld..i * ld + 2 * h].split_at_mut(h);
            (p, o)
        } else {
            (&own[i * h..(i + 1) * h], &mut buf[i * ld..i * ld + h])
        }
    }
    match cell {
        CellKind::Gru => {
            product(ha, lda, &pk.w_hh_t, gates, ldg, true);
            for i in 0..m {
                let (hp, _) = rows(hprev, hout, ldh, i, h, prev_in_h);
                gru::forward_notes_rz(
                    &mut gates[i * ldg..i * ldg + gh],
                    hp,
                    &mut extra[i * lde..i * lde + h],
                );
            }
            product(extra, lde, &pk.w_hn_t, &mut gates[2 * h..], ldg, true);
            for i in 0..m {
                let (hp, ho) = rows(hprev, hout, ldh, i, h, prev_in_h);
                gru::forward_notes_n(&mut gates[i * ldg..i * ldg + gh], hp, ho);
            }
        }
        CellKind::GruLbr => {
            let b_hn = &model.layer(k).b_hh[2 * h..];
            product(ha, lda, &pk.w_hh_t, ghb, gh, false);
            for i in 0..m {
                let row = &mut gates[i * ldg..i * ldg + gh];
                let ghr = &mut ghb[i * gh..(i + 1) * gh];
                gru::add_hidden_lbr(row, ghr, b_hn);
                if !extra.is_empty() {
                    // Kept for backward: ∂n/∂r needs W_hn h + b_hn.
                    extra[i * lde..i * lde + h].copy_from_slice(&ghr[2 * h..]);
                }
                let (hp, ho) = rows(hprev, hout, ldh, i, h, prev_in_h);
                gru::forward_lbr(row, &ghr[2 * h..], hp, ho);
            }
        }
        CellKind::Lstm => {
            product(ha, lda, &pk.w_hh_t, gates, ldg, true);
            for i in 0..m {
                let (cp, co) = rows(cprev, cout, ldc, i, h, prev_in_c);
                lstm::forward(
                    &mut gates[i * ldg..i * ldg + gh],
                    cp,
                    co,
                    &mut hout[i * ldh + hh..i * ldh + hh + h],
                );
            }
        }
        CellKind::RnnTanh | CellKind::RnnRelu => {
            product(ha, lda, &pk.w_hh_t, gates, ldg, true);
            for i in 0..m {
                let row = &mut gates[i * ldg..i * ldg + gh];
                rnn::forward(row, cell == CellKind::RnnRelu);
                hout[i * ldh + hh..i * ldh + hh + h].copy_from_slice(row);
            }
        }
    }
}

/// Numerically stable softmax of one row, in place.
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}
