#![forbid(unsafe_code)]
//! LSTM projections (PyTorch's `proj_size`): one direction of one layer.
//!
//! A projected LSTM layer computes the ordinary cell, `i, f, g, o` from
//! `W_ih x_t + W_hh h_{t-1} + b`, `c_t = f ⊙ c_{t-1} + i ⊙ g`, `m_t = o ⊙ tanh(c_t)`,
//! and then `h_t = W_hr m_t` with `W_hr` `[P][H]`: `h` (what the next step, the layer
//! above, the head and the state see) is `P` wide, `c` stays `H` wide.
//!
//! A model with projections is composed (`crate::bidir`): each layer and direction is a
//! one-layer model (`Model::dirs`, `is_direction`) run by the functions here, which the
//! stack's passes reach through `core_forward_train`, `core_forward_with_state` and
//! `stack_backward`. Each step is the cell's own pieces: the packed recurrent product
//! into the gate rows (the input part hoisted for all steps before the loop), the fused
//! LSTM pass (`cell::lstm`), then one packed product `m_t · W_hrᵀ`; the streaming path
//! ([`stream_block`]) runs the same [`cell_step`], so a step gives the bits of the
//! sequence forward. The recurrence runs in fixed batch chunks, one task each, as the
//! other cells' do (`forward.rs`), and is as independent of the thread count (tested).
//! Backward keeps `m_t` on the tape: `∂L/∂m_t = ∂L/∂h_t · W_hr`
//! enters the cell's backward, `∂L/∂W_hr = Σ_t ∂L/∂h_tᵀ m_t` is one product after the
//! loop, as are `dW_ih`, `dW_hh` and `∂L/∂x`.

use crate::buffers::try_zeroed;
use crate::cell::lstm;
use crate::error::Result;
use crate::forward::{LayerRec, Tape};
use crate::kernels::gemm::{gemm, Mat};
use crate::kernels::packed::{gemm_packed_bias, gemm_packed_sweep};
use crate::kernels::reference::flush_ref;
use crate::model::Model;
use crate::parallel::{batch_chunk, each, gemm_packed_rows_bias, gemm_rows};
use crate::train::bptt::col_sums;
use crate::train::Gradients;

/// One timestep of a projected direction model for `b` rows: `gates` (row `r` at
/// `r * ldg`, `[4H]`, the input part and folded bias already in) get `h_{t-1} · W_hhᵀ`
/// and become the activated gates; writes `c_t` (`ldc`), `m_t = o ⊙ tanh(c_t)` (`ldm`)
/// and `h_t = m_t · W_hrᵀ` (`ldh`). `hprev` is `[b][P]`, `cprev` `[b][H]`, contiguous.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cell_step(
    model: &Model,
    b: usize,
    gates: &mut [f32],
    ldg: usize,
    hprev: &[f32],
    cprev: &[f32],
    c: &mut [f32],
    ldc: usize,
    m: &mut [f32],
    ldm: usize,
    h: &mut [f32],
    ldh: usize,
) {
    let cfg = model.config();
    let (hs, p) = (cfg.hidden_size, cfg.proj_size);
    let gh = 4 * hs;
    let pk = &model.packed[0];
    gemm_packed_sweep(b, hprev, p, &pk.w_hh_t, gates, ldg, true, false);
    for r in 0..b {
        lstm::forward(
            &mut gates[r * ldg..r * ldg + gh],
            &cprev[r * hs..(r + 1) * hs],
            &mut c[r * ldc..r * ldc + hs],
            &mut m[r * ldm..r * ldm + hs],
        );
    }
    gemm_packed_sweep(b, m, ldm, &pk.w_hr_t, h, ldh, false, false);
}

/// The recorded sequence forward of a projected direction model (arguments checked by
/// the caller's `check_sequence`): a [`Tape`] whose one layer record holds the activated
/// gates, `h` (`[B][T][P]`), `c` and, as `extra`, `m` (`[B][T][H]`).
pub(crate) fn forward(
    model: &Model,
    x: &[f32],
    batch: usize,
    seq_len: usize,
    initial: Option<&[f32]>,
) -> Result<Tape> {
    let cfg = *model.config();
    debug_assert!(cfg.proj_size > 0 && cfg.num_layers == 1 && !cfg.has_head());
    let (i, hs, p) = (cfg.input_size, cfg.hidden_size, cfg.proj_size);
    let gh = 4 * hs;
    let rows = batch * seq_len;
    let init = match initial {
        Some(s) => s.to_vec(),
        None => try_zeroed(cfg.state_len(batch))?,
    };
    let mut gates = try_zeroed(rows * gh)?;
    gemm_packed_rows_bias(
        rows,
        x,
        i,
        &model.packed[0].w_ih_t,
        &mut gates,
        gh,
        model.folded_bias(0),
    );
    let mut hr = try_zeroed(rows * p)?;
    let mut cr = try_zeroed(rows * hs)?;
    let mut mr = try_zeroed(rows * hs)?;
    let mut fin = try_zeroed(cfg.state_len(batch))?;
    // The recurrence in fixed batch chunks, one task each (rows are independent in every
    // product and in the cell, so the chunking changes no bit).
    let chunk = batch_chunk(batch);
    let (hfin, cfin) = fin.split_at_mut(batch * p);
    let tasks: Vec<_> = gates
        .chunks_mut(chunk * seq_len * gh)
        .zip(hr.chunks_mut(chunk * seq_len * p))
        .zip(cr.chunks_mut(chunk * seq_len * hs))
        .zip(mr.chunks_mut(chunk * seq_len * hs))
        .zip(hfin.chunks_mut(chunk * p).zip(cfin.chunks_mut(chunk * hs)))
        .enumerate()
        .collect();
    each(tasks, |(ci, ((((g, h), c), m), (hp, cp)))| {
        let (b0, nb) = (ci * chunk, hp.len() / p);
        // h_{t-1} and c_{t-1} of the chunk's rows, left holding the final state.
        hp.copy_from_slice(&init[b0 * p..(b0 + nb) * p]);
        let c0 = batch * p;
        cp.copy_from_slice(&init[c0 + b0 * hs..c0 + (b0 + nb) * hs]);
        for t in 0..seq_len {
            cell_step(
                model,
                nb,
                &mut g[t * gh..],
                seq_len * gh,
                hp,
                cp,
                &mut c[t * hs..],
                seq_len * hs,
                &mut m[t * hs..],
                seq_len * hs,
                &mut h[t * p..],
                seq_len * p,
            );
            for r in 0..nb {
                let q = r * seq_len + t;
                hp[r * p..(r + 1) * p].copy_from_slice(&h[q * p..(q + 1) * p]);
                cp[r * hs..(r + 1) * hs].copy_from_slice(&c[q * hs..(q + 1) * hs]);
            }
        }
    });
    let mut tape = Tape::empty(cfg);
    tape.batch = batch;
    tape.seq_len = seq_len;
    tape.x = x.to_vec();
    tape.init = init;
    tape.final_state = fin;
    tape.layers = vec![LayerRec {
        gates,
        h: hr,
        c: cr,
        extra: mr,
    }];
    Ok(tape)
}

/// Backward through a projected direction model's tape: `d_outputs` is `∂L/∂h_t`
/// (`[B][T][P]`), `d_final` `∂L/∂(h_T, c_T)` in snapshot layout. Returns the gradients
/// in the direction model's layout (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`,
/// `weight_hr`), `∂L/∂x`, `∂L/∂(h_0, c_0)` and, with `want_hidden`, the total `∂L/∂h_t`.
pub(crate) fn backward(
    model: &Model,
    tape: &Tape,
    d_outputs: &[f32],
    d_final: Option<&[f32]>,
    want_hidden: bool,
) -> Result<Gradients> {
    let cfg = *model.config();
    let (i, hs, p) = (cfg.input_size, cfg.hidden_size, cfg.proj_size);
    let gh = 4 * hs;
    let (batch, seq_len) = (tape.batch, tape.seq_len);
    let rows = batch * seq_len;
    let rec = &tape.layers[0];
    let lw = model.layer(0);
    let (bp, bh) = (batch * p, batch * hs);
    // Running ∂L/∂h_{t-1} and ∂L/∂c_{t-1}: from the final state's gradient, and at the
    // end the initial state's.
    let mut dinit = try_zeroed(bp + bh)?;
    if let Some(df) = d_final {
        dinit.copy_from_slice(&df[..bp + bh]);
    }
    // The total ∂L/∂h_t of every step, and the gates' pre-activation gradients.
    let mut dh = try_zeroed(rows * p)?;
    let mut dg = try_zeroed(rows * gh)?;
    // The recurrence backward in the forward's batch chunks (no bit depends on them).
    let chunk = batch_chunk(batch);
    let (dhn, dcn) = dinit.split_at_mut(bp);
    let tasks: Vec<_> = dh
        .chunks_mut(chunk * seq_len * p)
        .zip(dg.chunks_mut(chunk * seq_len * gh))
        .zip(dhn.chunks_mut(chunk * p).zip(dcn.chunks_mut(chunk * hs)))
        .enumerate()
        .collect();
    each(tasks, |(ci, ((dh, dg), (dh_next, dc)))| {
        let (b0, nb) = (ci * chunk, dh_next.len() / p);
        let (r0, w) = (b0 * seq_len, nb * seq_len);
        let gates = &rec.gates[r0 * gh..(r0 + w) * gh];
        let c = &rec.c[r0 * hs..(r0 + w) * hs];
        let dout = &d_outputs[r0 * p..(r0 + w) * p];
        let mut dm = vec![0.0; nb * hs];
        let mut tc = vec![0.0; hs];
        for t in (0..seq_len).rev() {
            for r in 0..nb {
                let q = (r * seq_len + t) * p;
                for ((a, &o), &n) in dh[q..q + p]
                    .iter_mut()
                    .zip(&dout[q..q + p])
                    .zip(&dh_next[r * p..(r + 1) * p])
                {
                    *a = o + n;
                }
            }
            // ∂L/∂m_t = ∂L/∂h_t · W_hr.
            gemm(
                1.0,
                Mat::rm(&dh[t * p..], nb, p, seq_len * p),
                Mat::rm(lw.w_hr, p, hs, hs),
                0.0,
                &mut dm,
                hs,
            );
            for r in 0..nb {
                let q = r * seq_len + t;
                let cprev = if t == 0 {
                    let i0 = bp + (b0 + r) * hs;
                    &tape.init[i0..i0 + hs]
                } else {
                    &c[(q - 1) * hs..q * hs]
                };
                lstm::backward(
                    &gates[q * gh..(q + 1) * gh],
                    cprev,
                    &c[q * hs..(q + 1) * hs],
                    &dm[r * hs..(r + 1) * hs],
                    &mut dc[r * hs..(r + 1) * hs],
                    &mut tc,
                    &mut dg[q * gh..(q + 1) * gh],
                );
            }
            // ∂L/∂h_{t-1} through the recurrence: dG_t · W_hh.
            gemm(
                1.0,
                Mat::rm(&dg[t * gh..], nb, gh, seq_len * gh),
                Mat::rm(lw.w_hh, gh, p, p),
                0.0,
                dh_next,
                p,
            );
        }
    });
    // h_{t-1} of every step (h_0 from the initial state).
    let mut hprev = try_zeroed(rows * p)?;
    for r in 0..batch {
        let base = r * seq_len * p;
        hprev[base..base + p].copy_from_slice(&tape.init[r * p..(r + 1) * p]);
        hprev[base + p..base + seq_len * p].copy_from_slice(&rec.h[base..base + (seq_len - 1) * p]);
    }
    let layout = model.layout();
    let e = layout.entries();
    let mut grads = try_zeroed(layout.total())?;
    {
        let (g_ih, rest) = grads.split_at_mut(e[1].offset);
        let (g_hh, rest) = rest.split_at_mut(e[2].offset - e[1].offset);
        let (g_bih, rest) = rest.split_at_mut(e[3].offset - e[2].offset);
        let (g_bhh, g_hr) = rest.split_at_mut(e[4].offset - e[3].offset);
        let dgm = Mat::rm(&dg, rows, gh, gh);
        gemm_rows(1.0, dgm.t(), Mat::rm(&tape.x, rows, i, i), 0.0, g_ih, i);
        gemm_rows(1.0, dgm.t(), Mat::rm(&hprev, rows, p, p), 0.0, g_hh, p);
        col_sums(&dg, gh, g_bih);
        g_bhh.copy_from_slice(g_bih);
        let dhm = Mat::rm(&dh, rows, p, p);
        gemm_rows(
            1.0,
            dhm.t(),
            Mat::rm(&rec.extra, rows, hs, hs),
            0.0,
            g_hr,
            hs,
        );
    }
    let mut dx = try_zeroed(rows * i)?;
    gemm_rows(
        1.0,
        Mat::rm(&dg, rows, gh, gh),
        Mat::rm(lw.w_ih, gh, i, i),
        0.0,
        &mut dx,
        i,
    );
    Ok(Gradients {
        params: grads,
        inputs: dx,
        initial_state: dinit,
        hidden: if want_hidden { vec![dh] } else { Vec::new() },
    })
}

/// The streaming scratch of a model with projections (see [`stream_block`]), allocated
/// with the [`crate::State`].
#[derive(Clone, Debug, Default)]
pub(crate) struct StreamScratch {
    /// Gate rows of one layer over the block, `[B][T][4H]`.
    gates: Vec<f32>,
    /// Layer outputs over the block, `[B][T][P']` (`P' = P`, or the head's input),
    /// alternating between layers.
    blk_a: Vec<f32>,
    blk_b: Vec<f32>,
    /// One step's `m`, `[B][H]`, and the previous `h` and `c` rows.
    m: Vec<f32>,
    hprev: Vec<f32>,
    cprev: Vec<f32>,
}

impl StreamScratch {
    /// Scratch for `batch` streams and blocks of up to `max_block` steps of `model`.
    pub(crate) fn new(model: &Model, batch: usize, max_block: usize) -> Result<StreamScratch> {
        let cfg = model.config();
        let (hs, p) = (cfg.hidden_size, cfg.proj_size);
        let rows = batch * max_block;
        Ok(StreamScratch {
            gates: try_zeroed(rows * 4 * hs)?,
            blk_a: try_zeroed(rows * p)?,
            blk_b: try_zeroed(rows * p)?,
            m: try_zeroed(batch * hs)?,
            hprev: try_zeroed(batch * p)?,
            cprev: try_zeroed(batch * hs)?,
        })
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        [
            &self.gates,
            &self.blk_a,
            &self.blk_b,
            &self.m,
            &self.hprev,
            &self.cprev,
        ]
        .iter()
        .map(|v| v.capacity() * 4)
        .sum()
    }
}

/// A block of `seq_len` steps of a (unidirectional) model with projections from the
/// snapshot `state` (`h` `[L][B][P]`, then `c` `[L][B][H]`), left with the final state:
/// per layer the hoisted input product for the block, then [`cell_step`] per step (the
/// bits of the sequence forward), values below 1e-30 in the state flushed to zero as
/// every streaming path does; the head (and its softmax) on the top layer's rows. `x`
/// (`[B][T][I]`, finite) and `y` (`[B][T][O]`) checked by the caller. No allocation.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stream_block(
    model: &Model,
    state: &mut [f32],
    sc: &mut StreamScratch,
    batch: usize,
    x: &[f32],
    seq_len: usize,
    y: &mut [f32],
) {
    let flush = |v: &mut [f32]| v.iter_mut().for_each(|a| *a = flush_ref(*a));
    let cfg = *model.config();
    let (hs, p, l) = (cfg.hidden_size, cfg.proj_size, cfg.num_layers);
    let gh = 4 * hs;
    let rows = batch * seq_len;
    let (bp, bh) = (batch * p, batch * hs);
    let c0 = cfg.state_c_offset(batch);
    let StreamScratch {
        gates,
        blk_a,
        blk_b,
        m,
        hprev,
        cprev,
    } = sc;
    for k in 0..l {
        let sub = &model.dirs[k];
        let in_w = cfg.layer_input_dim(k);
        let top_direct = k + 1 == l && !cfg.has_head();
        let (input, out): (&[f32], &mut [f32]) = match (k, k % 2) {
            (0, _) => (x, &mut blk_a[..]),
            (_, 1) => (&blk_a[..], &mut blk_b[..]),
            _ => (&blk_b[..], &mut blk_a[..]),
        };
        let out: &mut [f32] = if top_direct { &mut *y } else { out };
        gemm_packed_bias(
            rows,
            input,
            in_w,
            &sub.packed[0].w_ih_t,
            gates,
            gh,
            sub.folded_bias(0),
        );
        let (hst, cst) = (k * bp, c0 + k * bh);
        for t in 0..seq_len {
            hprev.copy_from_slice(&state[hst..hst + bp]);
            cprev.copy_from_slice(&state[cst..cst + bh]);
            cell_step(
                sub,
                batch,
                &mut gates[t * gh..],
                seq_len * gh,
                hprev,
                cprev,
                &mut state[cst..cst + bh],
                hs,
                m,
                hs,
                &mut out[t * p..],
                seq_len * p,
            );
            flush(&mut state[cst..cst + bh]);
            for r in 0..batch {
                let q = (r * seq_len + t) * p;
                flush(&mut out[q..q + p]);
                state[hst + r * p..hst + (r + 1) * p].copy_from_slice(&out[q..q + p]);
            }
        }
    }
    if let Some(hw) = model.head() {
        let top: &[f32] = if l % 2 == 1 { blk_a } else { blk_b };
        let o = cfg.output_size;
        gemm_packed_bias(rows, top, p, &model.head_t, y, o, hw.bias);
        if cfg.output_activation == crate::config::OutputActivation::Softmax {
            for row in y[..rows * o].chunks_mut(o) {
                crate::step::softmax_in_place(row);
            }
        }
    }
}
