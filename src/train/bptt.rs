//! Backpropagation through time. Per layer, top to bottom: the recurrence runs backward
//! in the same fixed batch chunks as forward, where only `∂L/∂h_{t-1} = dG_t · W_hh`
//! (plus the cell's direct terms) is sequential; afterwards `dW_ih`, `dW_hh` and the
//! gradient for the layer's input are each one hoisted product over all timesteps.

use crate::cell::{gru, lstm, rnn};
use crate::config::CellKind;
use crate::error::{check_finite, check_len, invalid, Result};
use crate::forward::{pieces, split_state, split_state_mut, try_zeroed, LayerRec, Tape};
use crate::kernels::gemm::Mat;
use crate::kernels::packed::{gemm_packed, PackedB};
use crate::model::{head_view, Model};
use crate::parallel::{batch_chunk, gemm_rows, install};
use rayon::prelude::*;

/// What [`Model::backward`] returns.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// `∂L/∂θ` in [`crate::model::ParamLayout`] order (same layout as [`Model::parameters`]).
    pub params: Vec<f32>,
    /// `∂L/∂x`, `[B][T][I]`.
    pub inputs: Vec<f32>,
    /// `∂L/∂(initial state)`, snapshot layout.
    pub initial_state: Vec<f32>,
    /// When asked: per layer, `∂L/∂h_t` for every t (`[B][T][H]`), the total gradient
    /// reaching each hidden state. Empty otherwise.
    pub hidden: Vec<Vec<f32>>,
}

impl Model {
    /// Backward through a recorded pass. `d_outputs` is `∂L/∂(Tape::outputs)`
    /// (`[B][T][O]`), `d_final_state` is `∂L/∂(Tape::final_state)` (`None` = zeros), e.g.
    /// from the decoder of an encoder-decoder. With `want_hidden`, also returns `∂L/∂h_t`
    /// for every layer and timestep.
    pub fn backward(
        &self,
        tape: &Tape,
        d_outputs: &[f32],
        d_final_state: Option<&[f32]>,
        want_hidden: bool,
    ) -> Result<Gradients> {
        let cfg = *self.config();
        if tape.config != cfg {
            return Err(invalid!(
                "tape was recorded by a model with config {}, this model has {}",
                tape.config,
                cfg
            ));
        }
        let (batch, t) = (tape.batch, tape.seq_len);
        let (h, l) = (cfg.hidden_size, cfg.num_layers);
        let rows = batch * t;
        check_len("d_outputs", d_outputs.len(), rows * cfg.output_dim())?;
        check_finite("d_outputs", d_outputs)?;
        let state_len = cfg.state_len(batch);
        if let Some(d) = d_final_state {
            check_len("d_final_state", d.len(), state_len)?;
            check_finite("d_final_state", d)?;
        }
        let layout = self.layout().clone();
        let work = || -> Result<Gradients> {
            let mut grads = try_zeroed(layout.total())?;
            let top = &tape.layers[l - 1].h;
            let mut dh = match head_view(&cfg, &layout, self.parameters()) {
                Some(hw) => {
                    let o = cfg.output_size;
                    let n = layout.entries().len();
                    let (we, be) = (
                        layout.entries()[n - 2].clone(),
                        layout.entries()[n - 1].clone(),
                    );
                    let dout = Mat::rm(d_outputs, rows, o, o);
                    gemm_rows(
                        1.0,
                        dout.t(),
                        Mat::rm(top, rows, h, h),
                        0.0,
                        &mut grads[we.offset..we.offset + we.len],
                        h,
                    );
                    col_sums(d_outputs, o, &mut grads[be.offset..be.offset + be.len]);
                    let mut dh = try_zeroed(rows * h)?;
                    gemm_rows(1.0, dout, Mat::rm(hw.weight, o, h, h), 0.0, &mut dh, h);
                    dh
                }
                None => d_outputs.to_vec(),
            };
            let zeros;
            let d_final = match d_final_state {
                Some(d) => d,
                None => {
                    zeros = try_zeroed(state_len)?;
                    &zeros
                }
            };
            let mut dinit = try_zeroed(state_len)?;
            let lbh = l * batch * h;
            let mut hidden = Vec::new();
            for k in (0..l).rev() {
                let input: &[f32] = if k == 0 {
                    &tape.x
                } else {
                    &tape.layers[k - 1].h
                };
                let s = k * batch * h..(k + 1) * batch * h;
                let (h0, c0) = split_state(&tape.init, s.clone(), lbh, cfg.cell);
                let (dht, dct) = split_state(d_final, s.clone(), lbh, cfg.cell);
                let (dh0, dc0) = split_state_mut(&mut dinit, s, lbh, cfg.cell);
                let e = &layout.entries()[4 * k..4 * k + 4];
                let (lo, hi) = (e[0].offset, e[3].offset + e[3].len);
                let dinput = layer_backward(
                    self,
                    k,
                    &tape.layers[k],
                    input,
                    batch,
                    t,
                    [h0, c0, dht, dct],
                    &mut dh,
                    dh0,
                    dc0,
                    &mut grads[lo..hi],
                )?;
                let total = std::mem::replace(&mut dh, dinput);
                if want_hidden {
                    hidden.push(total);
                }
            }
            hidden.reverse();
            Ok(Gradients {
                params: grads,
                inputs: dh,
                initial_state: dinit,
                hidden,
            })
        };
        install(work)
    }
}

/// `out[j] = Σ_r m[r][j]` over rows of width `w`, in row order.
pub(crate) fn col_sums(m: &[f32], w: usize, out: &mut [f32]) {
    for row in m.chunks(w) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

/// One layer. `dh` holds `∂L/∂h_t` arriving from above (`[B][T][H]`) and is replaced by
/// the total gradient at each `h_t`. `g` is the layer's slice of the gradient buffer
/// (`weight_ih, weight_hh, bias_ih, bias_hh`, contiguous). Returns `∂L/∂input`.
#[allow(clippy::too_many_arguments)]
fn layer_backward(
    model: &Model,
    k: usize,
    rec: &LayerRec,
    input: &[f32],
    batch: usize,
    t: usize,
    [h0, c0, dht, dct]: [&[f32]; 4],
    dh: &mut [f32],
    dh0: &mut [f32],
    dc0: &mut [f32],
    g: &mut [f32],
) -> Result<Vec<f32>> {
    let cfg = model.config();
    let cell = cfg.cell;
    let h = cfg.hidden_size;
    let gh = cell.gates() * h;
    let lw = model.layer(k);
    let inp = lw.input_size;
    let rows = batch * t;
    let mut dgx = try_zeroed(rows * gh)?;
    let mut dgh = if cell == CellKind::GruLbr {
        try_zeroed(rows * gh)?
    } else {
        Vec::new()
    };

    // W_hh packed as the B of `dG · W_hh` (rows = gates): once per call, reused by
    // every chunk and step. The notes' GRU splits it as forward does.
    let packs = if cell == CellKind::Gru {
        [
            PackedB::from_rows(&lw.w_hh[..2 * h * h], 2 * h, h, h),
            PackedB::from_rows(&lw.w_hh[2 * h * h..], h, h, h),
        ]
    } else {
        [PackedB::from_rows(lw.w_hh, gh, h, h), PackedB::default()]
    };
    let cb = batch_chunk(batch);
    let n = batch.div_ceil(cb);
    let jobs: Vec<_> = pieces(&mut dgx, cb * t * gh, n)
        .into_iter()
        .zip(pieces(&mut dgh, cb * t * gh, n))
        .zip(pieces(dh, cb * t * h, n))
        .zip(pieces(dh0, cb * h, n))
        .zip(pieces(dc0, cb * h, n))
        .enumerate()
        .collect();
    jobs.into_par_iter()
        .for_each(|(i, ((((dgx, dgh), dh), dh0), dc0))| {
            let b0 = i * cb;
            let b1 = (b0 + cb).min(batch);
            fn part(v: &[f32], w: usize, b0: usize, b1: usize) -> &[f32] {
                if v.is_empty() {
                    v
                } else {
                    &v[b0 * w..b1 * w]
                }
            }
            let part = |v, w| part(v, w, b0, b1);
            let chunk = Chunk {
                gates: part(&rec.gates, t * gh),
                hs: part(&rec.h, t * h),
                cs: part(&rec.c, t * h),
                extra: part(&rec.extra, t * h),
                h0: part(h0, h),
                c0: part(c0, h),
            };
            recur_back_chunk(
                model,
                &packs,
                t,
                &chunk,
                part(dht, h),
                part(dct, h),
                dh,
                dgx,
                dgh,
                dh0,
                dc0,
            );
        });

    // Hoisted products over all timesteps.
    let (gwih, rest) = g.split_at_mut(gh * inp);
    let (gwhh, rest) = rest.split_at_mut(gh * h);
    let (gbih, gbhh) = rest.split_at_mut(gh);
    gemm_rows(
        1.0,
        Mat::rm(&dgx, rows, gh, gh).t(),
        Mat::rm(input, rows, inp, inp),
        0.0,
        gwih,
        inp,
    );
    let mut hprev = try_zeroed(rows * h)?;
    for b in 0..batch {
        let dst = &mut hprev[b * t * h..(b + 1) * t * h];
        dst[..h].copy_from_slice(&h0[b * h..(b + 1) * h]);
        dst[h..].copy_from_slice(&rec.h[b * t * h..((b + 1) * t - 1) * h]);
    }
    let dghm: &[f32] = if cell == CellKind::GruLbr { &dgh } else { &dgx };
    if cell == CellKind::Gru {
        // r, z rows multiply h_{t-1}; n rows multiply r ⊙ h_{t-1}.
        gemm_rows(
            1.0,
            Mat::rm(&dgx, rows, 2 * h, gh).t(),
            Mat::rm(&hprev, rows, h, h),
            0.0,
            &mut gwhh[..2 * h * h],
            h,
        );
        gemm_rows(
            1.0,
            Mat::rm(&dgx[2 * h..], rows, h, gh).t(),
            Mat::rm(&rec.extra, rows, h, h),
            0.0,
            &mut gwhh[2 * h * h..],
            h,
        );
    } else {
        gemm_rows(
            1.0,
            Mat::rm(dghm, rows, gh, gh).t(),
            Mat::rm(&hprev, rows, h, h),
            0.0,
            gwhh,
            h,
        );
    }
    col_sums(&dgx, gh, gbih);
    col_sums(dghm, gh, gbhh);
    let mut dinput = try_zeroed(rows * inp)?;
    gemm_rows(
        1.0,
        Mat::rm(&dgx, rows, gh, gh),
        Mat::rm(lw.w_ih, gh, inp, inp),
        0.0,
        &mut dinput,
        inp,
    );
    Ok(dinput)
}

/// The forward record of one batch chunk.
struct Chunk<'a> {
    gates: &'a [f32],
    hs: &'a [f32],
    cs: &'a [f32],
    extra: &'a [f32],
    h0: &'a [f32],
    c0: &'a [f32],
}

#[allow(clippy::too_many_arguments)]
fn recur_back_chunk(
    model: &Model,
    packs: &[PackedB; 2],
    t: usize,
    r: &Chunk<'_>,
    dht: &[f32],
    dct: &[f32],
    dh: &mut [f32],
    dgx: &mut [f32],
    dgh: &mut [f32],
    dh0: &mut [f32],
    dc0: &mut [f32],
) {
    let cfg = model.config();
    let cell = cfg.cell;
    let h = cfg.hidden_size;
    let gh = cell.gates() * h;
    let cb = r.h0.len() / h;
    let mut dh_next = dht.to_vec();
    let mut dc_next = dct.to_vec();
    let mut tc = vec![0.0f32; h];
    let mut direct = vec![0.0f32; cb * h];
    let mut drh = vec![0.0f32; cb * h];
    for s in (0..t).rev() {
        let at = |i: usize, w: usize| (i * t + s) * w;
        let hprev = |i: usize| -> &[f32] {
            if s == 0 {
                &r.h0[i * h..(i + 1) * h]
            } else {
                &r.hs[at(i, h) - h..at(i, h)]
            }
        };
        for i in 0..cb {
            let d = &mut dh[at(i, h)..at(i, h) + h];
            for (a, b) in d.iter_mut().zip(&dh_next[i * h..(i + 1) * h]) {
                *a += b;
            }
        }
        match cell {
            CellKind::Gru => {
                for i in 0..cb {
                    gru::backward_notes_n(
                        &r.gates[at(i, gh)..at(i, gh) + gh],
                        &dh[at(i, h)..at(i, h) + h],
                        &mut dgx[at(i, gh)..at(i, gh) + gh],
                    );
                }
                // drh = dn · W_hn
                gemm_packed(
                    cb,
                    &dgx[s * gh + 2 * h..],
                    t * gh,
                    &packs[1],
                    &mut drh,
                    h,
                    false,
                );
                for i in 0..cb {
                    gru::backward_notes_rz(
                        &r.gates[at(i, gh)..at(i, gh) + gh],
                        hprev(i),
                        &dh[at(i, h)..at(i, h) + h],
                        &drh[i * h..(i + 1) * h],
                        &mut dgx[at(i, gh)..at(i, gh) + gh],
                        &mut direct[i * h..(i + 1) * h],
                    );
                }
                gemm_packed(
                    cb,
                    &dgx[s * gh..],
                    t * gh,
                    &packs[0],
                    &mut dh_next,
                    h,
                    false,
                );
                add(&mut dh_next, &direct);
            }
            _ => {
                for i in 0..cb {
                    let gates = &r.gates[at(i, gh)..at(i, gh) + gh];
                    let dhi = &dh[at(i, h)..at(i, h) + h];
                    let dpre = &mut dgx[at(i, gh)..at(i, gh) + gh];
                    match cell {
                        CellKind::RnnTanh | CellKind::RnnRelu => {
                            rnn::backward(gates, dhi, cell == CellKind::RnnRelu, dpre)
                        }
                        CellKind::Lstm => {
                            let cprev = if s == 0 {
                                &r.c0[i * h..(i + 1) * h]
                            } else {
                                &r.cs[at(i, h) - h..at(i, h)]
                            };
                            lstm::backward(
                                gates,
                                cprev,
                                &r.cs[at(i, h)..at(i, h) + h],
                                dhi,
                                &mut dc_next[i * h..(i + 1) * h],
                                &mut tc,
                                dpre,
                            );
                        }
                        _ => gru::backward_lbr(
                            gates,
                            &r.extra[at(i, h)..at(i, h) + h],
                            hprev(i),
                            dhi,
                            dpre,
                            &mut dgh[at(i, gh)..at(i, gh) + gh],
                            &mut direct[i * h..(i + 1) * h],
                        ),
                    }
                }
                let dg: &[f32] = if cell == CellKind::GruLbr { dgh } else { dgx };
                gemm_packed(cb, &dg[s * gh..], t * gh, &packs[0], &mut dh_next, h, false);
                if cell == CellKind::GruLbr {
                    add(&mut dh_next, &direct);
                }
            }
        }
    }
    dh0.copy_from_slice(&dh_next);
    dc0.copy_from_slice(&dc_next);
}

fn add(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}
