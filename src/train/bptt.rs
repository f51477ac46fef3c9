//! Backpropagation through time. Per layer, top to bottom: the recurrence runs backward
//! in the same fixed batch chunks as forward, where only `∂L/∂h_{t-1} = dG_t · W_hh`
//! (plus the cell's direct terms) is sequential; afterwards `dW_ih`, `dW_hh` and the
//! gradient for the layer's input are each one hoisted product over all timesteps (for a
//! narrow layer the weight and bias gradients together: [`weight_sums`]).

use crate::buffers::{fit, pieces};
use crate::cell::{gru, lstm, rnn};
use crate::config::CellKind;
use crate::error::{check_finite, check_len, invalid, Result};
use crate::forward::{column_parts, split_state, split_state_mut, unit_ranges, LayerRec, Tape};
use crate::kernels::gemm::Mat;
use crate::kernels::outer::{outer_sums_t, COLS};
use crate::kernels::packed::{gemm_packed_sweep, PackedB};
use crate::model::{head_view, Model};
use crate::parallel::{
    batch_chunk, each, each_chunk, each_mut, gemm_rows, install_work, map_each, threads,
};

/// What [`Model::backward`] returns.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// `∂L/∂θ` in [`crate::ParamLayout`] order (same layout as [`Model::parameters`]).
    pub params: Vec<f32>,
    /// `∂L/∂x`, `[B][T][I]`.
    pub inputs: Vec<f32>,
    /// `∂L/∂(initial state)`, snapshot layout.
    pub initial_state: Vec<f32>,
    /// When asked: per layer, `∂L/∂h_t` for every t (`[B][T][H]`), the total gradient
    /// reaching each hidden state. Empty otherwise.
    pub hidden: Vec<Vec<f32>>,
}

/// Every buffer a backward pass needs, kept across calls by a trainer: resized, not
/// reallocated, so steps after the first allocate nothing large. Each is fully written
/// before it is read, so reuse changes no bit.
#[derive(Debug, Default)]
pub(crate) struct BackwardWork {
    /// `∂L/∂θ`, [`crate::ParamLayout`] order.
    pub grads: Vec<f32>,
    /// While running: `∂L/∂h_t` of the current layer; after: `∂L/∂x` (when asked for).
    pub dh: Vec<f32>,
    /// The gradient for the current layer's input.
    dinput: Vec<f32>,
    /// `∂L/∂(initial state)`, snapshot layout.
    pub dinit: Vec<f32>,
    /// Zeros standing for an absent `∂L/∂(final state)`.
    zeros: Vec<f32>,
    layer: LayerWork,
}

/// One layer's buffers (see [`BackwardWork`]).
#[derive(Debug, Default)]
struct LayerWork {
    dgx: Vec<f32>,
    dgh: Vec<f32>,
    hprev: Vec<f32>,
    /// `dW_ihᵀ` of a narrow input (see [`outer_sums`]).
    narrow: Vec<f32>,
    /// `[x | h_{t-1} | 1]` rows of a narrow layer (see [`weight_sums`]).
    cat: Vec<f32>,
    /// The transposed weight and bias gradients of a narrow layer.
    sums: Vec<f32>,
    chunks: Vec<ChunkWork>,
}

/// One batch chunk's running gradients and per-step scratch.
#[derive(Debug, Default)]
struct ChunkWork {
    dh_next: Vec<f32>,
    dc_next: Vec<f32>,
    tc: Vec<f32>,
    direct: Vec<f32>,
    drh: Vec<f32>,
}

#[cfg(test)]
impl BackwardWork {
    /// Fills every buffer with NaN (tests: an element read before it is written shows).
    pub(crate) fn poison(&mut self) {
        let l = &mut self.layer;
        let mut all = vec![
            &mut self.grads,
            &mut self.dh,
            &mut self.dinput,
            &mut self.dinit,
            &mut self.zeros,
            &mut l.dgx,
            &mut l.dgh,
            &mut l.hprev,
            &mut l.narrow,
            &mut l.cat,
            &mut l.sums,
        ];
        for c in &mut l.chunks {
            all.extend([
                &mut c.dh_next,
                &mut c.dc_next,
                &mut c.tc,
                &mut c.direct,
                &mut c.drh,
            ]);
        }
        for v in all {
            v.fill(f32::NAN);
        }
    }
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
        if let Some(seq) = &tape.seq {
            return crate::bidir::backward(self, tape, seq, d_outputs, d_final_state, want_hidden);
        }
        if let Some(ls) = self.layers() {
            return crate::layers::backward(self, ls, tape, d_outputs, d_final_state, want_hidden);
        }
        self.stack_backward(tape, d_outputs, d_final_state, want_hidden)
    }

    /// [`Model::backward`] of the recurrent stack and its head alone, through the tape's
    /// own record.
    pub(crate) fn stack_backward(
        &self,
        tape: &Tape,
        d_outputs: &[f32],
        d_final_state: Option<&[f32]>,
        want_hidden: bool,
    ) -> Result<Gradients> {
        if self.config().proj_size > 0 {
            // A direction model of a model with projections (`crate::proj`).
            return crate::proj::backward(self, tape, d_outputs, d_final_state, want_hidden);
        }
        let mut work = BackwardWork::default();
        let hidden = self.backward_into(
            tape,
            OutputGrad::Given(d_outputs),
            d_final_state,
            want_hidden,
            true,
            &mut work,
        )?;
        Ok(Gradients {
            params: work.grads,
            inputs: work.dh,
            initial_state: work.dinit,
            hidden,
        })
    }

    /// [`Model::backward`] into `work` (`grads`, `dinit` and, with `want_inputs`, `dh` =
    /// `∂L/∂x`), reusing its buffers; returns the hidden gradients when asked. Without
    /// `want_inputs` the first layer skips its input-gradient product (a trainer has no
    /// use for `∂L/∂x`) and `work.dh` is left unspecified.
    pub(crate) fn backward_into(
        &self,
        tape: &Tape,
        d_outputs: OutputGrad<'_>,
        d_final_state: Option<&[f32]>,
        want_hidden: bool,
        want_inputs: bool,
        work: &mut BackwardWork,
    ) -> Result<Vec<Vec<f32>>> {
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
        let mut dh_ready = false;
        let d_outputs: &[f32] = match d_outputs {
            OutputGrad::Given(d) => {
                check_len("d_outputs", d.len(), rows * cfg.output_dim())?;
                crate::parallel::check_finite_par("d_outputs", d)?;
                d
            }
            OutputGrad::FromLoss(v) => {
                check_len("d_outputs", v.len(), rows * cfg.output_dim())?;
                if head_view(&cfg, self.layout(), self.parameters()).is_none() {
                    // The top layer's `∂L/∂h_t` as it is: the loss's buffer becomes
                    // `dh` (and `dh`'s old one the loss's), no copy.
                    std::mem::swap(&mut work.dh, v);
                    dh_ready = true;
                    &[]
                } else {
                    v
                }
            }
        };
        let state_len = cfg.state_len(batch);
        if let Some(d) = d_final_state {
            check_len("d_final_state", d.len(), state_len)?;
            check_finite("d_final_state", d)?;
        }
        let layout = self.layout();
        let BackwardWork {
            grads,
            dh,
            dinput,
            dinit,
            zeros,
            layer,
        } = work;
        let run = || -> Result<Vec<Vec<f32>>> {
            // Every element is written: the products overwrite (beta = 0) and
            // `col_sums` overwrites the biases.
            fit(grads, layout.total())?;
            let top = &tape.layers[l - 1].h;
            fit(dh, rows * h)?;
            match head_view(&cfg, layout, self.parameters()) {
                Some(hw) => {
                    let o = cfg.output_size;
                    let n = 4 * l + 2;
                    let (we, be) = (&layout.entries()[n - 2], &layout.entries()[n - 1]);
                    let dout = Mat::rm(d_outputs, rows, o, o);
                    let gw = &mut grads[we.offset..we.offset + we.len];
                    if o <= NARROW {
                        outer_sums(d_outputs, o, top, h, gw);
                    } else {
                        gemm_rows(1.0, dout.t(), Mat::rm(top, rows, h, h), 0.0, gw, h);
                    }
                    col_sums(d_outputs, o, &mut grads[be.offset..be.offset + be.len]);
                    gemm_rows(1.0, dout, Mat::rm(hw.weight, o, h, h), 0.0, dh, h);
                }
                None if dh_ready => {}
                None => dh.copy_from_slice(d_outputs),
            }
            let d_final = match d_final_state {
                Some(d) => d,
                None => {
                    fit(zeros, state_len)?;
                    zeros.fill(0.0);
                    zeros
                }
            };
            // Every element is written: each layer's `dh0` (and `dc0`) slice is copied in.
            fit(dinit, state_len)?;
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
                let (dh0, dc0) = split_state_mut(dinit, s, lbh, cfg.cell);
                let e = &layout.entries()[4 * k..4 * k + 4];
                let (lo, hi) = (e[0].offset, e[3].offset + e[3].len);
                let want_dinput = k > 0 || want_inputs;
                layer_backward(
                    self,
                    k,
                    &tape.layers[k],
                    input,
                    batch,
                    t,
                    [h0, c0, dht, dct],
                    dh,
                    dh0,
                    dc0,
                    &mut grads[lo..hi],
                    layer,
                    if want_dinput {
                        Some(&mut *dinput)
                    } else {
                        None
                    },
                )?;
                if want_dinput {
                    // `dh` becomes the gradient for the layer below (or for x);
                    // `dinput` holds this layer's total gradient at h_t.
                    std::mem::swap(dh, dinput);
                    if want_hidden {
                        hidden.push(std::mem::take(dinput));
                    }
                } else if want_hidden {
                    hidden.push(dh.clone());
                }
            }
            hidden.reverse();
            Ok(hidden)
        };
        // Backward's products are about twice forward's.
        install_work(self.macs_per_row().saturating_mul(2 * rows), run)
    }
}

/// `∂L/∂(Tape::outputs)` for [`Model::backward_into`].
pub(crate) enum OutputGrad<'a> {
    /// From a caller of [`Model::backward`]: checked for NaN and Inf.
    Given(&'a [f32]),
    /// Written by one of [`crate::train::loss`]'s losses, whose value was finite, which
    /// makes every element finite: a softmax gradient lies in `[-1, 1]`, and a squared
    /// error's `2e/n` is below `2·sqrt(f32::MAX / n)` when the mean of the `e²` is below
    /// `f32::MAX`. Not checked again; without a head the buffer itself becomes the top
    /// layer's `∂L/∂h_t` (swapped with `BackwardWork::dh`: its contents are left
    /// unspecified).
    FromLoss(&'a mut Vec<f32>),
}

/// Widest operand [`outer_sums`] takes instead of a GEMM.
const NARROW: usize = 4;

/// `out = aᵀ·b`, i.e. `out[i][j] = Σ_r a[r][i] · b[r][j]` in row order (from zero), for
/// `a` `[rows][wa]` with few columns (at most [`NARROW`]) and `b` `[rows][wb]`; `out` is
/// `[wa][wb]`. One pass over the rows, vectorized along `b`'s rows. For operands this
/// narrow a GEMM is the wrong tool: `sgemm` packs all of the wide operand, as much work
/// as the product, and pads the narrow one to its kernel width (on the audio-shaped
/// step, `I = 1`, `dW_ih` and the head's weight gradient cost more than `dW_hh`).
fn outer_sums(a: &[f32], wa: usize, b: &[f32], wb: usize, out: &mut [f32]) {
    let out = &mut out[..wa * wb];
    out.fill(0.0);
    for (ar, br) in a.chunks_exact(wa).zip(b.chunks_exact(wb)) {
        for (&x, orow) in ar.iter().zip(out.chunks_exact_mut(wb)) {
            for (o, &y) in orow.iter_mut().zip(br) {
                *o += x * y;
            }
        }
    }
}

/// `out[j] = Σ_r m[r][j]` over rows of width `w`, in row order (from zero).
pub(crate) fn col_sums(m: &[f32], w: usize, out: &mut [f32]) {
    col_sums_from(m, w, 0, out);
}

/// [`col_sums`] of the columns `j0..j0 + out.len()` only.
fn col_sums_from(m: &[f32], w: usize, j0: usize, out: &mut [f32]) {
    out.fill(0.0);
    for row in m.chunks(w) {
        for (o, v) in out.iter_mut().zip(&row[j0..]) {
            *o += v;
        }
    }
}

/// [`col_sums`] with the columns in one block per thread, summed in parallel: each
/// column is still added in row order from zero, so the bits are [`col_sums`]'s
/// whatever the thread count. (Narrower blocks read every row in short strided pieces:
/// twice the time of the row-by-row pass on one thread.)
fn col_sums_par(m: &[f32], w: usize, out: &mut [f32]) {
    let cols = w.div_ceil(threads()).next_multiple_of(16);
    if cols >= w {
        return col_sums(m, w, out);
    }
    each_chunk(out, cols, |i, o| col_sums_from(m, w, i * cols, o));
}

/// One layer. `dh` holds `∂L/∂h_t` arriving from above (`[B][T][H]`) and is replaced by
/// the total gradient at each `h_t`. `g` is the layer's slice of the gradient buffer
/// (`weight_ih, weight_hh, bias_ih, bias_hh`, contiguous). Writes `∂L/∂input` into
/// `dinput` (resized) when given.
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
    work: &mut LayerWork,
    dinput: Option<&mut Vec<f32>>,
) -> Result<()> {
    let cfg = model.config();
    let cell = cfg.cell;
    let h = cfg.hidden_size;
    let gh = cell.gates() * h;
    let lw = model.layer(k);
    let inp = lw.input_size;
    let rows = batch * t;
    let LayerWork {
        dgx,
        dgh,
        hprev,
        narrow,
        cat,
        sums,
        chunks,
    } = work;
    // Every row of `dgx` (and `dgh`) is written by the cell's backward at its step.
    fit(dgx, rows * gh)?;
    fit(
        dgh,
        if cell == CellKind::GruLbr {
            rows * gh
        } else {
            0
        },
    )?;

    if let Some(parts) = column_parts(model, batch) {
        let whole = Chunk {
            gates: &rec.gates,
            hs: &rec.h,
            cs: &rec.c,
            extra: &rec.extra,
            h0,
            c0,
        };
        recur_back_units(
            model,
            k,
            t,
            batch,
            parts,
            &whole,
            [dht, dct],
            dh,
            dgx,
            dgh,
            dh0,
            dc0,
        )?;
    } else {
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
        if chunks.len() < n {
            chunks.resize_with(n, ChunkWork::default);
        }
        for (i, c) in chunks.iter_mut().enumerate().take(n) {
            let m = ((i + 1) * cb).min(batch) - i * cb;
            // All overwritten before they are read (copied in, or written by a kernel).
            fit(&mut c.dh_next, m * h)?;
            fit(
                &mut c.dc_next,
                if cell == CellKind::Lstm { m * h } else { 0 },
            )?;
            fit(&mut c.tc, h)?;
            fit(&mut c.direct, m * h)?;
            fit(&mut c.drh, m * h)?;
        }
        let jobs: Vec<_> = pieces(dgx, cb * t * gh, n)
            .into_iter()
            .zip(pieces(dgh, cb * t * gh, n))
            .zip(pieces(dh, cb * t * h, n))
            .zip(pieces(dh0, cb * h, n))
            .zip(pieces(dc0, cb * h, n))
            .zip(chunks.iter_mut())
            .enumerate()
            .collect();
        each(jobs, |(i, (((((dgx, dgh), dh), dh0), dc0), cw))| {
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
                cw,
            );
        });
    }

    // Hoisted products over all timesteps.
    let (gwih, rest) = g.split_at_mut(gh * inp);
    let (gwhh, rest) = rest.split_at_mut(gh * h);
    let (gbih, gbhh) = rest.split_at_mut(gh);
    if cell != CellKind::Gru && inp + h < NARROW_LAYER {
        // A narrow layer: the weight and bias gradients in one pass over `dG` per
        // operand (see `kernels::outer`), with `[x | h_{t-1} | 1]` beside it.
        let hprev = Prev { h0, hs: &rec.h, h };
        if cell == CellKind::GruLbr {
            // `dG_x` meets `[x | 1]`, `dG_h` meets `[h_{t-1} | 1]`.
            weight_sums(
                t,
                dgx,
                gh,
                Some((input, inp)),
                None,
                cat,
                sums,
                &mut [gwih, gbih],
            )?;
            weight_sums(t, dgh, gh, None, Some(hprev), cat, sums, &mut [gwhh, gbhh])?;
        } else {
            weight_sums(
                t,
                dgx,
                gh,
                Some((input, inp)),
                Some(hprev),
                cat,
                sums,
                &mut [gwih, gwhh, gbih],
            )?;
            // The same sums: both biases enter every gate pre-activation alike.
            gbhh.copy_from_slice(gbih);
        }
        return input_gradient(lw, dgx, rows, gh, inp, dinput);
    }
    if inp <= NARROW {
        // Accumulated as `[I][G*H]` (wide rows), then transposed into place.
        fit(narrow, inp * gh)?;
        outer_sums(input, inp, dgx, gh, narrow);
        for (q, col) in narrow.chunks_exact(gh).enumerate() {
            for (j, &v) in col.iter().enumerate() {
                gwih[j * inp + q] = v;
            }
        }
    } else {
        gemm_rows(
            1.0,
            Mat::rm(dgx, rows, gh, gh).t(),
            Mat::rm(input, rows, inp, inp),
            0.0,
            gwih,
            inp,
        );
    }
    // Every row is copied in (a sequence per task: serial, this copy kept a second
    // thread idle).
    fit(hprev, rows * h)?;
    each_chunk(hprev, t * h, |b, dst| {
        dst[..h].copy_from_slice(&h0[b * h..(b + 1) * h]);
        dst[h..].copy_from_slice(&rec.h[b * t * h..((b + 1) * t - 1) * h]);
    });
    let dghm: &[f32] = if cell == CellKind::GruLbr { dgh } else { dgx };
    if cell == CellKind::Gru {
        // r, z rows multiply h_{t-1}; n rows multiply r ⊙ h_{t-1}.
        gemm_rows(
            1.0,
            Mat::rm(dgx, rows, 2 * h, gh).t(),
            Mat::rm(hprev, rows, h, h),
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
            Mat::rm(hprev, rows, h, h),
            0.0,
            gwhh,
            h,
        );
    }
    col_sums_par(dgx, gh, gbih);
    if cell == CellKind::GruLbr {
        col_sums_par(dghm, gh, gbhh);
    } else {
        // The same sums: both biases enter every gate pre-activation alike.
        gbhh.copy_from_slice(gbih);
    }
    input_gradient(lw, dgx, rows, gh, inp, dinput)
}

/// `∂L/∂input = dG · W_ih` into `dinput` (resized), when asked for.
fn input_gradient(
    lw: crate::model::LayerWeights<'_>,
    dgx: &[f32],
    rows: usize,
    gh: usize,
    inp: usize,
    dinput: Option<&mut Vec<f32>>,
) -> Result<()> {
    if let Some(dinput) = dinput {
        // Overwritten by the product (beta = 0).
        fit(dinput, rows * inp)?;
        gemm_rows(
            1.0,
            Mat::rm(dgx, rows, gh, gh),
            Mat::rm(lw.w_ih, gh, inp, inp),
            0.0,
            dinput,
            inp,
        );
    }
    Ok(())
}

/// Widest `[x | h_{t-1}]` (input plus hidden size, below this) whose weight gradients
/// take [`weight_sums`] instead of one GEMM per operand: there a GEMM spends as long
/// packing the long operands as multiplying them.
const NARROW_LAYER: usize = 96;

/// A layer's previous hidden states, `h` wide: `h_{t-1}` of row `(b, t)` is `hs`'s row
/// `(b, t-1)`, or `h0`'s row `b` at `t = 0`.
#[derive(Clone, Copy)]
struct Prev<'a> {
    h0: &'a [f32],
    hs: &'a [f32],
    h: usize,
}

/// The gradients `Σ_r dG_r ⊗ [x_r | h_{r-1} | 1]` (the parts given; `dG` `[B·T][gh]`)
/// in one pass over `dG` ([`outer_sums_t`]), written into `outs`, in the order of the
/// parts: `[gh][I]`, `[gh][H]` weight gradients (row-major, as the layout stores them)
/// and the `[gh]` bias gradient last. `cat` holds the concatenated rows, `sums` the
/// transposed result; both are resized.
#[allow(clippy::too_many_arguments)]
fn weight_sums(
    t: usize,
    dg: &[f32],
    gh: usize,
    x: Option<(&[f32], usize)>,
    prev: Option<Prev<'_>>,
    cat: &mut Vec<f32>,
    sums: &mut Vec<f32>,
    outs: &mut [&mut [f32]],
) -> Result<()> {
    let rows = dg.len() / gh;
    let inp = x.map_or(0, |(_, i)| i);
    let h = prev.map_or(0, |p| p.h);
    let nb = (inp + h + 1).next_multiple_of(COLS);
    // Every element is written: the parts, the ones, the zero padding.
    fit(cat, rows * nb)?;
    each_chunk(cat, t * nb, |b, seq| {
        for (s, row) in seq.chunks_exact_mut(nb).enumerate() {
            let r = b * t + s;
            if let Some((x, i)) = x {
                row[..i].copy_from_slice(&x[r * i..(r + 1) * i]);
            }
            if let Some(p) = prev {
                row[inp..inp + h].copy_from_slice(if s == 0 {
                    &p.h0[b * h..(b + 1) * h]
                } else {
                    &p.hs[(r - 1) * h..r * h]
                });
            }
            row[inp + h] = 1.0;
            row[inp + h + 1..].fill(0.0);
        }
    });
    // Split by output rows (gate units) between threads: each element's chain is the
    // same whichever part holds it.
    fit(sums, nb * gh)?;
    let part = gh.div_ceil(threads()).next_multiple_of(32).min(gh);
    each_chunk(sums, nb * part, |p, out| {
        let i0 = p * part;
        outer_sums_t(rows, &dg[i0..], gh, out.len() / nb, cat, nb, out);
    });
    // Scatter the transposed parts into place: the outputs take the given parts' columns
    // in order, the bias the column of ones.
    let widths = [(inp, x.is_some()), (h, prev.is_some()), (1, true)];
    let widths = widths.iter().filter(|w| w.1).map(|w| w.0);
    debug_assert_eq!(widths.clone().count(), outs.len());
    for (p, piece) in sums.chunks(nb * part).enumerate() {
        let (i0, m) = (p * part, piece.len() / nb);
        let mut col = 0;
        for (w, out) in widths.clone().zip(outs.iter_mut()) {
            for q in 0..w {
                let src = &piece[(col + q) * m..(col + q + 1) * m];
                for (i, &v) in src.iter().enumerate() {
                    out[(i0 + i) * w + q] = v;
                }
            }
            col += w;
        }
    }
    Ok(())
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
    work: &mut ChunkWork,
) {
    let cfg = model.config();
    let cell = cfg.cell;
    let h = cfg.hidden_size;
    let gh = cell.gates() * h;
    let cb = r.h0.len() / h;
    // Sized by `layer_backward`.
    let ChunkWork {
        dh_next,
        dc_next,
        tc,
        direct,
        drh,
    } = work;
    dh_next.copy_from_slice(dht);
    dc_next.copy_from_slice(dct);
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
                gemm_packed_sweep(
                    cb,
                    &dgx[s * gh + 2 * h..],
                    t * gh,
                    &packs[1],
                    drh,
                    h,
                    false,
                    s % 2 == 1,
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
                gemm_packed_sweep(
                    cb,
                    &dgx[s * gh..],
                    t * gh,
                    &packs[0],
                    dh_next,
                    h,
                    false,
                    s % 2 == 1,
                );
                add(dh_next, direct);
            }
            _ => {
                for i in 0..cb {
                    let dc = if dc_next.is_empty() {
                        &mut []
                    } else {
                        &mut dc_next[i * h..(i + 1) * h]
                    };
                    cell_back_row(
                        cell,
                        r,
                        i,
                        t,
                        s,
                        &dh[at(i, h)..at(i, h) + h],
                        dc,
                        tc,
                        &mut dgx[at(i, gh)..at(i, gh) + gh],
                        if dgh.is_empty() {
                            &mut []
                        } else {
                            &mut dgh[at(i, gh)..at(i, gh) + gh]
                        },
                        &mut direct[i * h..(i + 1) * h],
                    );
                }
                let dg: &[f32] = if cell == CellKind::GruLbr { dgh } else { dgx };
                gemm_packed_sweep(
                    cb,
                    &dg[s * gh..],
                    t * gh,
                    &packs[0],
                    dh_next,
                    h,
                    false,
                    s % 2 == 1,
                );
                if cell == CellKind::GruLbr {
                    add(dh_next, direct);
                }
            }
        }
    }
    dh0.copy_from_slice(dh_next);
    dc0.copy_from_slice(dc_next);
}

/// The cell's backward for row `i` of `r` at step `s` (LSTM, linear-before-reset GRU,
/// RNN): writes `dpre` (and for the GRU `dgh` and `direct`, the part of `∂L/∂h_{t-1}`
/// that bypasses `W_hh`), updates `dc` (LSTM). `dh` is the total gradient reaching
/// `h_t`; `tc` is scratch (`[H]`).
#[allow(clippy::too_many_arguments)]
fn cell_back_row(
    cell: CellKind,
    r: &Chunk<'_>,
    i: usize,
    t: usize,
    s: usize,
    dh: &[f32],
    dc: &mut [f32],
    tc: &mut [f32],
    dpre: &mut [f32],
    dgh: &mut [f32],
    direct: &mut [f32],
) {
    let h = dh.len();
    let gh = dpre.len();
    let at = |w: usize| (i * t + s) * w;
    let gates = &r.gates[at(gh)..at(gh) + gh];
    // Row i's state before step s: in the initial state, or step s-1's in the record.
    let prev = if s == 0 {
        i * h..(i + 1) * h
    } else {
        at(h) - h..at(h)
    };
    match cell {
        CellKind::RnnTanh | CellKind::RnnRelu => {
            rnn::backward(gates, dh, cell == CellKind::RnnRelu, dpre)
        }
        CellKind::Lstm => {
            let cprev = if s == 0 { &r.c0[prev] } else { &r.cs[prev] };
            lstm::backward(gates, cprev, &r.cs[at(h)..at(h) + h], dh, dc, tc, dpre);
        }
        _ => {
            let hprev = if s == 0 { &r.h0[prev] } else { &r.hs[prev] };
            gru::backward_lbr(
                gates,
                &r.extra[at(h)..at(h) + h],
                hprev,
                dh,
                dpre,
                dgh,
                direct,
            )
        }
    }
}

/// [`recur_back_chunk`] for the whole batch, each step split by hidden units (the
/// backward twin of `forward::layer_forward_columns`, taken under the same conditions):
/// the cell's backward runs row by row, then each part computes its columns of
/// `dh_{t-1} = dG · W_hh` from its own columns of `W_hh` (packed once per call), which
/// the next step's rows gather. Same operations per element as the batch split, so the
/// same bits.
#[allow(clippy::too_many_arguments)]
fn recur_back_units(
    model: &Model,
    k: usize,
    t: usize,
    batch: usize,
    parts: usize,
    r: &Chunk<'_>,
    [dht, dct]: [&[f32]; 2],
    dh: &mut [f32],
    dgx: &mut [f32],
    dgh: &mut [f32],
    dh0: &mut [f32],
    dc0: &mut [f32],
) -> Result<()> {
    let cfg = model.config();
    let cell = cfg.cell;
    let h = cfg.hidden_size;
    let gh = cell.gates() * h;
    let lbr = cell == CellKind::GruLbr;
    let w_hh = model.layer(k).w_hh;
    // Per part: its units, its columns of W_hh as the B of dG · W_hh, its `[B][U]` result.
    let mut work: Vec<(usize, usize, PackedB, Vec<f32>)> =
        map_each(unit_ranges(h, parts), |(j0, j1)| {
            let mut out = Vec::new();
            fit(&mut out, batch * (j1 - j0))?;
            Ok((j0, j1, PackedB::from_rows(&w_hh[j0..], gh, j1 - j0, h), out))
        })
        .into_iter()
        .collect::<Result<_>>()?;
    let mut dh_next = dht.to_vec();
    let mut dc_next = dct.to_vec();
    // The GRU's direct part of dh_{t-1}, and LSTM's tanh(c_t) scratch, per row.
    let (mut direct, mut tc) = (Vec::new(), Vec::new());
    fit(&mut direct, if lbr { batch * h } else { 0 })?;
    fit(&mut tc, if cell == CellKind::Lstm { batch * h } else { 0 })?;
    // dh_{s} for the rows: the parts' columns of the step after's product, plus the
    // GRU's direct part; at the last step it is `dht`, already in place.
    let gather =
        |b: usize, work: &[(usize, usize, PackedB, Vec<f32>)], dhn: &mut [f32], dir: &[f32]| {
            for (j0, j1, _, out) in work {
                let u = j1 - j0;
                dhn[*j0..*j1].copy_from_slice(&out[b * u..(b + 1) * u]);
            }
            if lbr {
                add(dhn, dir);
            }
        };
    for s in (0..t).rev() {
        let work_r = &work;
        let rows: Vec<_> = pieces(dh, t * h, batch)
            .into_iter()
            .zip(pieces(dgx, t * gh, batch))
            .zip(pieces(dgh, t * gh, batch))
            .zip(pieces(&mut dh_next, h, batch))
            .zip(pieces(&mut dc_next, h, batch))
            .zip(pieces(&mut direct, h, batch))
            .zip(pieces(&mut tc, h, batch))
            .enumerate()
            .collect();
        each(
            rows,
            |(b, ((((((dhb, dgxb), dghb), dhn), dcn), dir), tcb))| {
                if s + 1 < t {
                    gather(b, work_r, dhn, dir);
                }
                let d = &mut dhb[s * h..(s + 1) * h];
                add(d, dhn);
                let dghs = if dghb.is_empty() {
                    &mut []
                } else {
                    &mut dghb[s * gh..(s + 1) * gh]
                };
                // `cell_back_row` indexes the whole-batch record by row `b`; this row's
                // own gradient buffers are its pieces.
                cell_back_row(
                    cell,
                    r,
                    b,
                    t,
                    s,
                    d,
                    dcn,
                    tcb,
                    &mut dgxb[s * gh..(s + 1) * gh],
                    dghs,
                    dir,
                );
            },
        );
        let dg: &[f32] = if lbr { dgh } else { dgx };
        each_mut(&mut work, |(j0, j1, pack, out)| {
            gemm_packed_sweep(
                batch,
                &dg[s * gh..],
                t * gh,
                pack,
                out,
                *j1 - *j0,
                false,
                s % 2 == 1,
            );
        });
    }
    for (b, dhb) in dh0.chunks_mut(h).enumerate() {
        let dir = if lbr {
            &direct[b * h..(b + 1) * h]
        } else {
            &[][..]
        };
        gather(b, &work, dhb, dir);
    }
    dc0.copy_from_slice(&dc_next);
    Ok(())
}

fn add(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_column_sums_are_the_serial_bits() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut x = 0x1234_5678u32;
        let mut next = move || {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0
        };
        for (rows, w) in [(1, 1), (7, 63), (33, 64), (100, 65), (257, 512), (9, 200)] {
            let m: Vec<f32> = (0..rows * w).map(|_| next()).collect();
            let mut want = vec![f32::NAN; w];
            col_sums(&m, w, &mut want);
            let mut got = vec![f32::NAN; w];
            pool.install(|| col_sums_par(&m, w, &mut got));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "rows={rows} w={w}");
        }
    }
}
