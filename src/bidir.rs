#![forbid(unsafe_code)]
//! Bidirectional stacks and batches of sequences of different lengths.
//!
//! **Bidirectional** (PyTorch's `bidirectional=True`). A reverse direction is the same
//! cell run over the sequence backwards with its own weights, so each direction of each
//! layer is a one-layer unidirectional model (`Model::dirs`) run by the ordinary
//! sequence passes (`forward.rs`, `train/bptt.rs`: their hoisted products, kernels, tiers
//! and batch split): the reverse one on its input reversed in time, its outputs reversed
//! back. Layer `k`'s output at each step is `[h_fwd | h_rev]` (`2H`), what layer `k + 1`
//! and the head read; the final state is in PyTorch's `h_n` order, `[L·2][B][H]`
//! (layer-major, direction-minor), then `c_n` the same way for an LSTM. Every pass here
//! is serial copying around the directions' passes, so results do not depend on the
//! thread count any more than theirs do.
//!
//! **Projections** (PyTorch's `proj_size`) compose the same way: a model with LSTM
//! projections, bidirectional or not, keeps a one-layer direction model per layer and
//! direction, run by `crate::proj`; `h` (outputs, state) is then `P` wide where `c`
//! stays `H` wide. Below, `D` is the number of directions and `P` the width of `h`
//! ([`ModelConfig::real_hidden_size`], `H` without a projection).
//!
//! **Lengths** (as `pack_padded_sequence` and `pad_packed_sequence` give): sequence `b`
//! of a padded batch has `lengths[b]` valid steps (`1..=T`). Its outputs past that are
//! zero; its final state is the one after its own last step; a reverse direction starts
//! at its own last step (`lengths[b] − 1` back to 0). A forward direction runs over the
//! padding too, but nothing valid depends on those steps, and nothing flows back from
//! them: the losses ([`crate::train::loss::mse_lengths`], ...) and [`Model::backward`]
//! give them zero gradient. The reverse direction's input is the sequence's valid steps
//! reversed, then zeros.

use crate::buffers::try_zeroed;
use crate::config::ModelConfig;
use crate::dropout::DropoutMask;
use crate::error::{check_finite, check_len, checked_size, invalid, Result};
use crate::forward::Tape;
use crate::kernels::gemm::Mat;
use crate::model::Model;
use crate::parallel::{gemm_packed_rows_bias, gemm_rows};
use crate::step::softmax_in_place;
use crate::train::bptt::col_sums;
use crate::train::Gradients;

/// What a pass with lengths or over a bidirectional stack records besides the plain
/// [`Tape`]'s fields (see [`Tape::outputs`]).
#[derive(Clone, Debug)]
pub(crate) struct SeqTape {
    /// One per sequence; `None`: every sequence is `seq_len` long.
    pub lengths: Option<Vec<usize>>,
    /// The outputs the losses see (pre-activation), zero past each length, `[B][T][O]`.
    pub out: Vec<f32>,
    /// A composed stack's record; `None` for a unidirectional one, whose record is
    /// the tape's own.
    pub bidir: Option<BiRec>,
    /// The dropout masks between layers of a training pass ([`Model::forward_train_dropout`]);
    /// `None` without dropout.
    pub dropout: Option<DropoutMask>,
}

/// A composed stack's record (bidirectional, or with projections).
#[derive(Clone, Debug)]
pub(crate) struct BiRec {
    /// Per layer `k` and direction `d`, at `D·k + d`: the direction model's tape (the
    /// reverse one's in reversed time).
    pub dirs: Vec<Tape>,
    /// The top layer's output `[B][T][D·P]` (zero past each length), what the head read;
    /// empty without a head.
    /// (Lower layers' outputs are the inputs their upper layer's tapes recorded.)
    pub top: Vec<f32>,
}

/// Checks a lengths argument: one per sequence, each `1..=seq_len`.
pub(crate) fn check_lengths(lengths: &[usize], batch: usize, seq_len: usize) -> Result<()> {
    if lengths.len() != batch {
        return Err(invalid!(
            "lengths has {} entries, expected one per sequence (batch {batch})",
            lengths.len()
        ));
    }
    if let Some((b, &n)) = lengths
        .iter()
        .enumerate()
        .find(|(_, &n)| n == 0 || n > seq_len)
    {
        return Err(invalid!("lengths[{b}] is {n}, expected 1..={seq_len}"));
    }
    Ok(())
}

/// Length of sequence `b`: `lengths[b]`, or `seq_len` without lengths.
fn len_of(lengths: Option<&[usize]>, b: usize, seq_len: usize) -> usize {
    lengths.map_or(seq_len, |l| l[b])
}

/// Whether some sequence is shorter than `seq_len`.
pub(crate) fn any_short(lengths: Option<&[usize]>, seq_len: usize) -> bool {
    lengths.is_some_and(|l| l.iter().any(|&n| n < seq_len))
}

/// Zeroes the rows (`w` wide) of `v` (`[B][T][w]`) past each sequence's length.
pub(crate) fn zero_padding(v: &mut [f32], lengths: &[usize], seq_len: usize, w: usize) {
    for (b, &n) in lengths.iter().enumerate() {
        v[(b * seq_len + n) * w..(b + 1) * seq_len * w].fill(0.0);
    }
}

/// Sequence `b`'s valid steps of `src` (`[B][T][w]`) in reverse order, then zeros, into
/// `dst` (same shape): `dst[b][t] = src[b][len_b − 1 − t]` for `t < len_b`.
fn reverse_valid(
    src: &[f32],
    dst: &mut [f32],
    batch: usize,
    seq_len: usize,
    w: usize,
    lengths: Option<&[usize]>,
) {
    for b in 0..batch {
        let n = len_of(lengths, b, seq_len);
        let base = b * seq_len * w;
        for t in 0..n {
            let s = base + (n - 1 - t) * w;
            dst[base + t * w..base + (t + 1) * w].copy_from_slice(&src[s..s + w]);
        }
        dst[base + n * w..base + seq_len * w].fill(0.0);
    }
}

/// Position in the sequence of step `t` of direction `d` for a sequence of `n` steps.
fn position(d: usize, t: usize, n: usize) -> usize {
    if d == 0 {
        t
    } else {
        n - 1 - t
    }
}

/// The planes of a snapshot of `batch` streams: `(start, width)` of each
/// `[batch][width]` block, the `h` of every layer and direction (`P` wide), then for LSTM
/// their `c` (`H` wide).
pub(crate) fn state_planes(cfg: &ModelConfig, batch: usize) -> Vec<(usize, usize)> {
    let n = cfg.num_layers * cfg.num_directions();
    let (p, h) = (cfg.real_hidden_size(), cfg.hidden_size);
    let mut v: Vec<(usize, usize)> = (0..n).map(|i| (i * batch * p, p)).collect();
    if cfg.cell.has_cell_state() {
        let c0 = cfg.state_c_offset(batch);
        v.extend((0..n).map(|i| (c0 + i * batch * h, h)));
    }
    v
}

/// The state of one direction model: layer `i` (`D·k + d`) of a snapshot `s` (`h` as
/// `[L·D][B][P]`, then `c` as `[L·D][B][H]` for LSTM), as a one-layer snapshot.
fn direction_state(cfg: &ModelConfig, s: &[f32], i: usize, batch: usize) -> Vec<f32> {
    let (bp, bh) = (batch * cfg.real_hidden_size(), batch * cfg.hidden_size);
    let c0 = cfg.state_c_offset(batch);
    let mut out = s[i * bp..(i + 1) * bp].to_vec();
    if cfg.cell.has_cell_state() {
        out.extend_from_slice(&s[c0 + i * bh..c0 + (i + 1) * bh]);
    }
    out
}

/// Writes a one-layer snapshot `part` into layer `i` of a snapshot `s`.
fn put_direction_state(cfg: &ModelConfig, s: &mut [f32], i: usize, batch: usize, part: &[f32]) {
    let (bp, bh) = (batch * cfg.real_hidden_size(), batch * cfg.hidden_size);
    let c0 = cfg.state_c_offset(batch);
    s[i * bp..(i + 1) * bp].copy_from_slice(&part[..bp]);
    if cfg.cell.has_cell_state() {
        s[c0 + i * bh..c0 + (i + 1) * bh].copy_from_slice(&part[bp..bp + bh]);
    }
}

/// The state after step `len_b − 1` of each sequence of a one-layer record (`h`,
/// `[B][T][P]`, and for LSTM `c`, `[B][T][H]`), as a one-layer snapshot.
#[allow(clippy::too_many_arguments)]
fn state_at_lengths(
    h: &[f32],
    c: &[f32],
    p: usize,
    hidden: usize,
    batch: usize,
    seq_len: usize,
    lengths: &[usize],
    out: &mut [f32],
) {
    let bp = batch * p;
    for (b, &n) in lengths.iter().enumerate() {
        let r = b * seq_len + n - 1;
        out[b * p..(b + 1) * p].copy_from_slice(&h[r * p..(r + 1) * p]);
        if !c.is_empty() {
            out[bp + b * hidden..bp + (b + 1) * hidden]
                .copy_from_slice(&c[r * hidden..(r + 1) * hidden]);
        }
    }
}

/// A pass's outputs: `(outputs, final state, record)`.
type Ran = (Vec<f32>, Vec<f32>, Option<BiRec>);

impl Model {
    /// The sequence pass of a composed stack (and its head), with optional lengths:
    /// the pre-activation outputs (zero past each length), the final state, and with
    /// `record` what [`bidir_backward`] needs. Arguments checked by the caller.
    #[allow(clippy::too_many_arguments)]
    fn bidir_run(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        lengths: Option<&[usize]>,
        initial: Option<&[f32]>,
        record: bool,
        dropout: Option<&DropoutMask>,
    ) -> Result<Ran> {
        let cfg = *self.config();
        let (h, p, l, dn) = (
            cfg.hidden_size,
            cfg.real_hidden_size(),
            cfg.num_layers,
            cfg.num_directions(),
        );
        let (rows, w2) = (batch * seq_len, cfg.layer_output_dim());
        let zeros;
        let init: &[f32] = match initial {
            Some(s) => s,
            None => {
                zeros = try_zeroed(cfg.state_len(batch))?;
                &zeros
            }
        };
        let mut final_state = try_zeroed(cfg.state_len(batch))?;
        let mut dirs = Vec::new();
        let mut below: Option<Vec<f32>> = None;
        // The direction models' tapes are needed for backward, and for the state at each
        // sequence's own end (an LSTM's `c` is nowhere else).
        let taped = record || lengths.is_some();
        for k in 0..l {
            let input: &[f32] = below.as_deref().unwrap_or(x);
            let in_w = cfg.layer_input_dim(k);
            let mut out = try_zeroed(rows * w2)?;
            for d in 0..dn {
                let i = dn * k + d;
                let sub = &self.dirs[i];
                let rev;
                let inp: &[f32] = if d == 0 {
                    input
                } else {
                    let mut r = try_zeroed(rows * in_w)?;
                    reverse_valid(input, &mut r, batch, seq_len, in_w, lengths);
                    rev = r;
                    &rev
                };
                let s0 = direction_state(&cfg, init, i, batch);
                let mut fin = try_zeroed(sub.config().state_len(batch))?;
                let mut tape = None;
                let hs_owned;
                let hs: &[f32] = if taped {
                    let tp = tape.insert(sub.core_forward_train(inp, batch, seq_len, Some(&s0))?);
                    let rec = &tp.layers[0];
                    match lengths {
                        Some(ls) => {
                            state_at_lengths(&rec.h, &rec.c, p, h, batch, seq_len, ls, &mut fin)
                        }
                        None => fin.copy_from_slice(tp.final_state()),
                    }
                    &tp.layers[0].h
                } else {
                    let mut hv = try_zeroed(rows * p)?;
                    sub.core_forward_with_state(
                        inp,
                        batch,
                        seq_len,
                        Some(&s0),
                        &mut hv,
                        Some(&mut fin),
                    )?;
                    hs_owned = hv;
                    &hs_owned
                };
                for b in 0..batch {
                    let n = len_of(lengths, b, seq_len);
                    for t in 0..n {
                        let a = (b * seq_len + position(d, t, n)) * w2 + d * p;
                        let q = (b * seq_len + t) * p;
                        out[a..a + p].copy_from_slice(&hs[q..q + p]);
                    }
                }
                put_direction_state(&cfg, &mut final_state, i, batch, &fin);
                if let (true, Some(tp)) = (record, tape) {
                    dirs.push(tp);
                }
            }
            // Dropout on what the layer above reads (never the top layer's output).
            if let (Some(m), true) = (dropout, k + 1 < l) {
                m.apply(&mut out, k, batch, seq_len, w2);
            }
            below = Some(out);
        }
        let top = below.expect("at least one layer");
        let (outputs, top) = match self.head() {
            Some(hw) => {
                let o = cfg.output_size;
                let mut logits = try_zeroed(rows * o)?;
                gemm_packed_rows_bias(rows, &top, w2, &self.head_t, &mut logits, o, hw.bias);
                if let Some(ls) = lengths {
                    zero_padding(&mut logits, ls, seq_len, o);
                }
                (logits, top)
            }
            // Without a head the top layer's output is the outputs; backward needs no copy.
            None => (top, Vec::new()),
        };
        let rec = record.then_some(BiRec { dirs, top });
        Ok((outputs, final_state, rec))
    }

    /// Runs whole sequences of different lengths from a zero initial state: sequence `b`
    /// of `x` (`[batch][seq_len][input_size]`, padded) has `lengths[b]` valid steps
    /// (`1..=seq_len`). Returns `[batch][seq_len][output_size]` with the output
    /// activation applied to valid steps and zeros past each length (as
    /// `pad_packed_sequence` pads). See [`Model::forward_with_state_lengths`].
    ///
    /// ```
    /// use rnncore::{CellKind, Model, ModelConfig};
    /// let cfg = ModelConfig::new(CellKind::Gru, 2, 4, 1).with_bidirectional(true);
    /// let model = Model::new(cfg, 1)?;
    /// let x = vec![0.5f32; 2 * 3 * 2]; // batch 2, padded to 3 steps
    /// let y = model.forward_lengths(&x, 2, 3, &[3, 1])?;
    /// assert!(y[(3 + 1) * 8..].iter().all(|&v| v == 0.0)); // sequence 1 past its step 0
    /// # Ok::<(), rnncore::Error>(())
    /// ```
    pub fn forward_lengths(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        lengths: &[usize],
    ) -> Result<Vec<f32>> {
        let n = checked_size("y", &[batch, seq_len, self.output_size()])?;
        let mut y = try_zeroed(n)?;
        self.forward_with_state_lengths(x, batch, seq_len, Some(lengths), None, &mut y, None)?;
        Ok(y)
    }

    /// [`Model::forward_with_state`] for a batch of sequences of different lengths
    /// (`None`: every sequence is `seq_len` long, exactly `forward_with_state`).
    /// `lengths[b]` (`1..=seq_len`) is sequence `b`'s number of valid steps; its outputs
    /// past that are zero (no output activation applied there), its final state is the
    /// one after its own last step, and in a bidirectional model its reverse direction
    /// starts at that step. What the padding holds does not change any valid output
    /// (it must be finite). Errors (nothing written): a lengths slice not of `batch`
    /// entries, a length of 0 or over `seq_len`, and everything `forward_with_state`
    /// refuses. Dense layers around a (unidirectional) stack work on each step alone:
    /// they see the padding too, and their outputs there are zeroed likewise.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_with_state_lengths(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        lengths: Option<&[usize]>,
        initial: Option<&[f32]>,
        y: &mut [f32],
        final_state: Option<&mut [f32]>,
    ) -> Result<()> {
        let cfg = *self.config();
        if lengths.is_none() && !cfg.is_composed() {
            return self.forward_with_state(x, batch, seq_len, initial, y, final_state);
        }
        if let Some(ls) = lengths {
            check_lengths(ls, batch, seq_len)?;
        }
        if cfg.is_composed() {
            self.check_sequence(x, batch, seq_len, initial)?;
        }
        let o = self.output_size();
        check_len("y", y.len(), checked_size("y", &[batch, seq_len, o])?)?;
        if let Some(f) = &final_state {
            check_len("final_state", f.len(), cfg.state_len(batch))?;
        }
        let (out, fin) = if cfg.is_composed() {
            let macs = self.macs_per_row().saturating_mul(batch * seq_len);
            let (out, fin, _) = crate::parallel::install_work(macs, || {
                self.bidir_run(x, batch, seq_len, lengths, initial, false, None)
            })?;
            (out, fin)
        } else {
            let tape = self.forward_train_lengths(x, batch, seq_len, lengths, initial)?;
            (tape.outputs().to_vec(), tape.final_state().to_vec())
        };
        y.copy_from_slice(&out);
        if self.outer_config().output_activation == crate::config::OutputActivation::Softmax {
            for b in 0..batch {
                let n = len_of(lengths, b, seq_len);
                for row in y[b * seq_len * o..(b * seq_len + n) * o].chunks_mut(o) {
                    softmax_in_place(row);
                }
            }
        }
        if let Some(f) = final_state {
            f.copy_from_slice(&fin);
        }
        Ok(())
    }

    /// [`Model::forward_train`] for a batch of sequences of different lengths (see
    /// [`Model::forward_with_state_lengths`]; `None`: every sequence is `seq_len` long).
    /// [`Tape::outputs`] are zero past each length and [`Tape::final_state`] holds each
    /// sequence's state after its own last step. [`Model::backward`] of this tape ignores
    /// `d_outputs` past each length (those outputs are constants) and takes each
    /// sequence's `d_final_state` in at its own last step (for a sequence shorter than
    /// `seq_len`, through a second pass over its valid steps alone).
    pub fn forward_train_lengths(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        lengths: Option<&[usize]>,
        initial: Option<&[f32]>,
    ) -> Result<Tape> {
        self.forward_train_seq(x, batch, seq_len, lengths, initial, None)
    }

    /// [`Model::forward_train_lengths`] with the model's dropout between layers applied
    /// (see [`Model::with_dropout`]), as a [`crate::Trainer`] step runs it: the masks are
    /// a function of `seed` (and of layer, sequence, timestep and unit) alone, so the
    /// same seed gives the same masks, whatever the thread count, and
    /// [`Model::backward`] of the tape applies the same masks to the gradients. A model
    /// without dropout, or with one layer, gives exactly `forward_train_lengths`.
    /// Errors: as `forward_train_lengths`. Backward of such a tape refuses a final-state
    /// gradient when some sequence is shorter than `seq_len`.
    ///
    /// ```
    /// use rnncore::{CellKind, Model, ModelConfig};
    /// let model = Model::new(ModelConfig::new(CellKind::Lstm, 2, 8, 2), 1)?.with_dropout(0.5)?;
    /// let x = vec![0.5f32; 3 * 4 * 2];
    /// let a = model.forward_train_dropout(&x, 3, 4, None, None, 7)?;
    /// let b = model.forward_train_dropout(&x, 3, 4, None, None, 7)?;
    /// let c = model.forward_train_dropout(&x, 3, 4, None, None, 8)?;
    /// assert_eq!(a.outputs(), b.outputs());
    /// assert_ne!(a.outputs(), c.outputs());
    /// assert_ne!(a.outputs(), model.forward_train(&x, 3, 4, None)?.outputs());
    /// # Ok::<(), rnncore::Error>(())
    /// ```
    pub fn forward_train_dropout(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        lengths: Option<&[usize]>,
        initial: Option<&[f32]>,
        seed: u64,
    ) -> Result<Tape> {
        let mask = self.dropout_active().then_some(DropoutMask {
            p: self.dropout(),
            seed,
        });
        self.forward_train_seq(x, batch, seq_len, lengths, initial, mask)
    }

    /// [`Model::forward_train_lengths`], with dropout masks between layers when given.
    fn forward_train_seq(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        lengths: Option<&[usize]>,
        initial: Option<&[f32]>,
        dropout: Option<DropoutMask>,
    ) -> Result<Tape> {
        let cfg = *self.config();
        // Dropout runs the layers one at a time, as the composed passes do.
        let composed = cfg.is_composed() || dropout.is_some();
        if lengths.is_none() && !composed {
            return self.forward_train(x, batch, seq_len, initial);
        }
        if let Some(ls) = lengths {
            check_lengths(ls, batch, seq_len)?;
        }
        if composed {
            self.check_sequence(x, batch, seq_len, initial)?;
            let macs = self.macs_per_row().saturating_mul(batch * seq_len);
            let (out, fin, rec) = crate::parallel::install_work(macs, || {
                self.bidir_run(x, batch, seq_len, lengths, initial, true, dropout.as_ref())
            })?;
            let mut tape = Tape::empty(cfg);
            tape.batch = batch;
            tape.seq_len = seq_len;
            tape.final_state = fin;
            // What a final-state gradient of a shorter sequence reruns (see `backward`).
            tape.x = x.to_vec();
            tape.init = match initial {
                Some(s) => s.to_vec(),
                None => try_zeroed(cfg.state_len(batch))?,
            };
            tape.seq = Some(Box::new(SeqTape {
                lengths: lengths.map(<[usize]>::to_vec),
                out,
                bidir: rec,
                dropout,
            }));
            return Ok(tape);
        }
        // Unidirectional with lengths: the ordinary recorded pass over the padded batch
        // (a sequence's valid steps never depend on its padding; dense layers around the
        // stack work on each step alone), then each sequence's state read from the
        // stack's record at its own last step, and the outputs masked.
        let ls = lengths.expect("checked above");
        let mut tape = self.forward_train(x, batch, seq_len, initial)?;
        let h = cfg.hidden_size;
        let bh = batch * h;
        let lbh = cfg.num_layers * bh;
        let mut part = try_zeroed(if cfg.cell.has_cell_state() {
            2 * bh
        } else {
            bh
        })?;
        for k in 0..cfg.num_layers {
            let rec = &tape.layers[k];
            state_at_lengths(&rec.h, &rec.c, h, h, batch, seq_len, ls, &mut part);
            tape.final_state[k * bh..(k + 1) * bh].copy_from_slice(&part[..bh]);
            if cfg.cell.has_cell_state() {
                tape.final_state[lbh + k * bh..lbh + (k + 1) * bh].copy_from_slice(&part[bh..]);
            }
        }
        let mut out = tape.outputs().to_vec();
        zero_padding(&mut out, ls, seq_len, self.output_size());
        tape.seq = Some(Box::new(SeqTape {
            lengths: Some(ls.to_vec()),
            out,
            bidir: None,
            dropout: None,
        }));
        Ok(tape)
    }
}

/// [`Model::backward`] of a tape with lengths or of a bidirectional stack.
pub(crate) fn backward(
    model: &Model,
    tape: &Tape,
    seq: &SeqTape,
    d_outputs: &[f32],
    d_final_state: Option<&[f32]>,
    want_hidden: bool,
) -> Result<Gradients> {
    let cfg = *model.config();
    if tape.config != cfg {
        return Err(invalid!(
            "tape was recorded by a model with config {}, this model has {}",
            tape.config,
            cfg
        ));
    }
    let (batch, seq_len) = (tape.batch, tape.seq_len);
    let rows = batch * seq_len;
    let o = model.output_size();
    check_len("d_outputs", d_outputs.len(), rows * o)?;
    crate::parallel::check_finite_par("d_outputs", d_outputs)?;
    if let Some(d) = d_final_state {
        check_len("d_final_state", d.len(), cfg.state_len(batch))?;
        check_finite("d_final_state", d)?;
    }
    let lengths = seq.lengths.as_deref();
    // Outputs past a length are constants (zero): their gradient is dropped.
    let mut d = d_outputs.to_vec();
    if let Some(ls) = lengths {
        zero_padding(&mut d, ls, seq_len, o);
    }
    // The final state of a sequence shorter than seq_len is its state at its own last
    // step, inside the padded pass's recurrence, where that pass cannot take a gradient
    // in. Backward is linear in its incoming gradients: the padded pass takes the
    // outputs' gradient and the full-length sequences' final-state gradient, and each
    // shorter sequence's final-state gradient goes through a pass over its valid steps
    // alone (`add_short_final_gradients`), added after.
    let short = match (d_final_state, lengths) {
        (Some(df), Some(ls)) if any_short(lengths, seq_len) => Some((df, ls)),
        _ => None,
    };
    if short.is_some() && seq.dropout.is_some() {
        return Err(invalid!(
            "a final-state gradient of a pass with dropout is not supported when some \
             sequence is shorter than seq_len"
        ));
    }
    let full_final;
    let d_final = match short {
        Some((df, ls)) => {
            let mut f = df.to_vec();
            let short_rows: Vec<usize> = (0..batch).filter(|&b| ls[b] < seq_len).collect();
            for (start, w) in state_planes(&cfg, batch) {
                for &b in &short_rows {
                    f[start + b * w..start + (b + 1) * w].fill(0.0);
                }
            }
            full_final = f;
            Some(full_final.as_slice())
        }
        None => d_final_state,
    };
    let mut g = match &seq.bidir {
        None => match model.layers() {
            Some(layers) => crate::layers::backward(model, layers, tape, &d, d_final, want_hidden)?,
            None => model.stack_backward(tape, &d, d_final, want_hidden)?,
        },
        Some(rec) => {
            let macs = model.macs_per_row().saturating_mul(2 * rows);
            crate::parallel::install_work(macs, || {
                bidir_backward(
                    model,
                    tape,
                    rec,
                    lengths,
                    seq.dropout.as_ref(),
                    &d,
                    d_final,
                    want_hidden,
                )
            })?
        }
    };
    if let Some((df, ls)) = short {
        add_short_final_gradients(model, tape, ls, df, want_hidden, &mut g)?;
    }
    Ok(g)
}

/// Rows `rows` of a snapshot-layout state `s` of `batch` streams (see [`state_planes`]),
/// as a snapshot of `rows.len()` streams.
fn state_rows(cfg: &ModelConfig, s: &[f32], batch: usize, rows: &[usize]) -> Vec<f32> {
    state_planes(cfg, batch)
        .into_iter()
        .flat_map(|(start, w)| {
            rows.iter()
                .flat_map(move |&b| &s[start + b * w..start + (b + 1) * w])
        })
        .copied()
        .collect()
}

/// Adds to `g` the gradients of the final-state gradient `d_final` of the sequences
/// shorter than the tape's seq_len: per length `n`, those sequences' first `n` steps run
/// alone (from their initial states) and backward from `d_final` at their end, no
/// output gradient. Their pass is exactly theirs in the padded batch (which is what
/// lengths mean), so the sum is the gradient of the padded pass with the final-state
/// gradient entering at each sequence's own last step.
fn add_short_final_gradients(
    model: &Model,
    tape: &Tape,
    lengths: &[usize],
    d_final: &[f32],
    want_hidden: bool,
    g: &mut Gradients,
) -> Result<()> {
    let cfg = *model.config();
    let (batch, seq_len) = (tape.batch, tape.seq_len);
    let (i, o) = (model.input_size(), model.output_size());
    let x: &[f32] = match &tape.extra {
        Some(e) => &e.x,
        None => &tape.x,
    };
    let mut ns: Vec<usize> = lengths.iter().copied().filter(|&n| n < seq_len).collect();
    ns.sort_unstable();
    ns.dedup();
    for n in ns {
        let rows: Vec<usize> = (0..batch).filter(|&b| lengths[b] == n).collect();
        let m = rows.len();
        let xs: Vec<f32> = rows
            .iter()
            .flat_map(|&b| &x[b * seq_len * i..(b * seq_len + n) * i])
            .copied()
            .collect();
        let init = state_rows(&cfg, &tape.init, batch, &rows);
        let df = state_rows(&cfg, d_final, batch, &rows);
        let alone = model.forward_train(&xs, m, n, Some(&init))?;
        let gs = model.backward(&alone, &try_zeroed(m * n * o)?, Some(&df), want_hidden)?;
        for (a, v) in g.params.iter_mut().zip(&gs.params) {
            *a += v;
        }
        for (j, &b) in rows.iter().enumerate() {
            let dst = &mut g.inputs[b * seq_len * i..(b * seq_len + n) * i];
            for (a, v) in dst.iter_mut().zip(&gs.inputs[j * n * i..(j + 1) * n * i]) {
                *a += v;
            }
            for ((start, w), (sub, _)) in state_planes(&cfg, batch)
                .into_iter()
                .zip(state_planes(&cfg, m))
            {
                let src = &gs.initial_state[sub + j * w..sub + (j + 1) * w];
                let dst = &mut g.initial_state[start + b * w..start + (b + 1) * w];
                for (a, v) in dst.iter_mut().zip(src) {
                    *a += v;
                }
            }
            for (dst, src) in g.hidden.iter_mut().zip(&gs.hidden) {
                let w = dst.len() / (batch * seq_len);
                let d = &mut dst[b * seq_len * w..(b * seq_len + n) * w];
                for (a, v) in d.iter_mut().zip(&src[j * n * w..(j + 1) * n * w]) {
                    *a += v;
                }
            }
        }
    }
    Ok(())
}

/// Backward through a composed stack: the head's gradients, then per layer from the
/// top each direction model's own backward on its half of `∂L/∂(layer output)` (the
/// reverse one's in reversed time), their input gradients added (the reverse one's
/// reversed back) into the gradient for the layer below.
#[allow(clippy::too_many_arguments)]
fn bidir_backward(
    model: &Model,
    tape: &Tape,
    rec: &BiRec,
    lengths: Option<&[usize]>,
    dropout: Option<&DropoutMask>,
    d_outputs: &[f32],
    d_final_state: Option<&[f32]>,
    want_hidden: bool,
) -> Result<Gradients> {
    let cfg = *model.config();
    let (batch, seq_len) = (tape.batch, tape.seq_len);
    let (h, l, dn, tpd) = (
        cfg.real_hidden_size(),
        cfg.num_layers,
        cfg.num_directions(),
        cfg.tensors_per_direction(),
    );
    let (rows, w2) = (batch * seq_len, cfg.layer_output_dim());
    let layout = model.layout();
    let mut grads = try_zeroed(layout.total())?;
    let mut dinit = try_zeroed(cfg.state_len(batch))?;
    let top = &rec.top;
    // ∂L/∂(top layer's output).
    let mut dh = match model.head() {
        Some(hw) => {
            let o = cfg.output_size;
            let n = tpd * dn * l + 2;
            let (we, be) = (&layout.entries()[n - 2], &layout.entries()[n - 1]);
            let dout = Mat::rm(d_outputs, rows, o, o);
            let gw = &mut grads[we.offset..we.offset + we.len];
            gemm_rows(1.0, dout.t(), Mat::rm(top, rows, w2, w2), 0.0, gw, w2);
            col_sums(d_outputs, o, &mut grads[be.offset..be.offset + be.len]);
            let mut dh = try_zeroed(rows * w2)?;
            gemm_rows(1.0, dout, Mat::rm(hw.weight, o, w2, w2), 0.0, &mut dh, w2);
            if let Some(ls) = lengths {
                zero_padding(&mut dh, ls, seq_len, w2);
            }
            dh
        }
        None => d_outputs.to_vec(),
    };
    let mut hidden = Vec::new();
    for k in (0..l).rev() {
        let in_w = cfg.layer_input_dim(k);
        let mut dinput = try_zeroed(rows * in_w)?;
        let mut dhidden = if want_hidden {
            try_zeroed(rows * w2)?
        } else {
            Vec::new()
        };
        for d in 0..dn {
            let i = dn * k + d;
            let sub = &model.dirs[i];
            // This direction's part of ∂L/∂h, in its own time order.
            let mut dsub = try_zeroed(rows * h)?;
            for b in 0..batch {
                let n = len_of(lengths, b, seq_len);
                for t in 0..n {
                    let p = (b * seq_len + position(d, t, n)) * w2 + d * h;
                    let q = (b * seq_len + t) * h;
                    dsub[q..q + h].copy_from_slice(&dh[p..p + h]);
                }
            }
            let dfin = d_final_state.map(|s| direction_state(&cfg, s, i, batch));
            let g = sub.stack_backward(&rec.dirs[i], &dsub, dfin.as_deref(), want_hidden)?;
            let e = &layout.entries()[tpd * i..tpd * (i + 1)];
            grads[e[0].offset..e[tpd - 1].offset + e[tpd - 1].len].copy_from_slice(&g.params);
            put_direction_state(&cfg, &mut dinit, i, batch, &g.initial_state);
            for b in 0..batch {
                let n = len_of(lengths, b, seq_len);
                for t in 0..n {
                    let p = (b * seq_len + position(d, t, n)) * in_w;
                    let q = (b * seq_len + t) * in_w;
                    for (a, v) in dinput[p..p + in_w].iter_mut().zip(&g.inputs[q..q + in_w]) {
                        *a += v;
                    }
                }
                if want_hidden {
                    let gh = &g.hidden[0];
                    for t in 0..n {
                        let p = (b * seq_len + position(d, t, n)) * w2 + d * h;
                        let q = (b * seq_len + t) * h;
                        dhidden[p..p + h].copy_from_slice(&gh[q..q + h]);
                    }
                }
            }
        }
        if want_hidden {
            hidden.push(dhidden);
        }
        // Through the dropout on layer k − 1's output: the same mask.
        if let (Some(m), true) = (dropout, k > 0) {
            m.apply(&mut dinput, k - 1, batch, seq_len, in_w);
        }
        dh = dinput;
    }
    hidden.reverse();
    Ok(Gradients {
        params: grads,
        inputs: dh,
        initial_state: dinit,
        hidden,
    })
}
