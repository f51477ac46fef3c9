#![forbid(unsafe_code)]
//! Sequence forward. For each layer: the input projection of every timestep and batch
//! row as one hoisted product (`X · W_ihᵀ`, split into row blocks), then the recurrence
//! in fixed batch chunks, each chunk on its own task with one recurrent product per step
//! (two for the notes' GRU) and one fused pointwise pass. What backward needs is kept
//! in a [`Tape`] when training.

use crate::buffers::{fit, pieces, tail, try_zeroed};
use crate::cell::{gru, lstm, rnn};
use crate::config::{CellKind, ModelConfig, OutputActivation};
use crate::error::{check_finite, check_len, checked_size, invalid, Error, Result};
use crate::kernels::packed::{gemm_packed_bias, gemm_packed_sweep, PackedB};
use crate::model::{ForwardCache, Model};
use crate::parallel::{
    batch_chunk, each, each_mut, gemm_packed_rows_bias, install_work, map_each, threads,
};
use crate::step::{recurrent_step, softmax_in_place, StepRows};

/// What one layer's forward keeps for backward; every buffer is batch-major `[B][T][·]`.
#[derive(Clone, Debug, Default)]
pub(crate) struct LayerRec {
    /// Activated gates, `[B][T][G*H]`.
    pub gates: Vec<f32>,
    /// Outputs `h_t`, `[B][T][H]`.
    pub h: Vec<f32>,
    /// LSTM cell states `c_t`, `[B][T][H]`; empty for other cells.
    pub c: Vec<f32>,
    /// GRU linear-before-reset: `W_hn h_{t-1} + b_hn`; notes GRU: `r ⊙ h_{t-1}`; `[B][T][H]`.
    pub extra: Vec<f32>,
}

/// A recorded forward pass: the outputs, the final state, and everything backward needs.
/// Made by [`Model::forward_train`], consumed by [`Model::backward`].
#[derive(Clone, Debug)]
pub struct Tape {
    pub(crate) config: ModelConfig,
    pub(crate) batch: usize,
    pub(crate) seq_len: usize,
    pub(crate) x: Vec<f32>,
    /// Initial state, snapshot layout (`h` as `[L][B][H]`, then `c` for LSTM).
    pub(crate) init: Vec<f32>,
    pub(crate) layers: Vec<LayerRec>,
    /// Head pre-activations `[B][T][O]`; empty without a head.
    pub(crate) logits: Vec<f32>,
    pub(crate) final_state: Vec<f32>,
    /// What the dense layers around the stack recorded; `None` for a plain model.
    pub(crate) extra: Option<Box<crate::layers::LayersTape>>,
    /// What a pass with lengths or over a bidirectional stack recorded (`crate::bidir`);
    /// `None` otherwise.
    pub(crate) seq: Option<Box<crate::bidir::SeqTape>>,
}

impl Tape {
    /// The outputs the losses see: the head's pre-activation (logits) `[B][T][O]`, or
    /// the top layer's `h_t` `[B][T][H]` without a head (`[B][T][2H]`, forward then
    /// reverse, for a bidirectional model). No output activation applied. Recorded with
    /// lengths ([`Model::forward_train_lengths`]), zero past each sequence's length.
    pub fn outputs(&self) -> &[f32] {
        if let Some(s) = &self.seq {
            return &s.out;
        }
        match &self.extra {
            Some(e) => &e.out,
            None => self.stack_outputs(),
        }
    }

    /// The recurrent stack's outputs (its head's pre-activation, or the top layer's
    /// `h_t`), before any dense layer after it.
    pub(crate) fn stack_outputs(&self) -> &[f32] {
        if self.config.has_head() {
            &self.logits
        } else {
            &self.layers.last().expect("at least one layer").h
        }
    }

    /// The final state, snapshot layout (`h` as `[L·D][B][H]`, then `c` for LSTM; see
    /// [`ModelConfig::state_len`]).
    pub fn final_state(&self) -> &[f32] {
        &self.final_state
    }

    /// Batch size of the recorded pass.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Timesteps of the recorded pass.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// The config of the model that recorded it.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
}

impl Model {
    /// Runs whole sequences from a zero initial state. `x` is `[batch][seq_len][input_size]`;
    /// returns `[batch][seq_len][output_size]` (output activation applied).
    ///
    /// ```
    /// use rnncore::{CellKind, Model, ModelConfig};
    /// let model = Model::new(ModelConfig::new(CellKind::Lstm, 3, 8, 2), 7)?;
    /// let x = vec![0.5f32; 2 * 10 * 3]; // batch 2, 10 timesteps, 3 features
    /// let y = model.forward(&x, 2, 10)?;
    /// assert_eq!(y.len(), 2 * 10 * 8);
    /// # Ok::<(), rnncore::Error>(())
    /// ```
    pub fn forward(&self, x: &[f32], batch: usize, seq_len: usize) -> Result<Vec<f32>> {
        let n = checked_size("y", &[batch, seq_len, self.output_size()])?;
        let mut y = try_zeroed(n)?;
        self.forward_with_state(x, batch, seq_len, None, &mut y, None)?;
        Ok(y)
    }

    /// Runs whole sequences from `initial` (snapshot layout, see [`crate::State::get`];
    /// `None` = zeros), writing outputs into `y` and, when asked, the final state into
    /// `final_state` (same layout). On error nothing is written. A batch of one runs
    /// through the streaming path (as [`Model::forward_state`], including its flush of
    /// values below 1e-30), which is faster for a single sequence.
    pub fn forward_with_state(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        initial: Option<&[f32]>,
        y: &mut [f32],
        final_state: Option<&mut [f32]>,
    ) -> Result<()> {
        if self.config().is_composed() {
            return self.forward_with_state_lengths(
                x,
                batch,
                seq_len,
                None,
                initial,
                y,
                final_state,
            );
        }
        match self.layers() {
            Some(ls) => crate::layers::forward_with_state(
                self,
                ls,
                x,
                batch,
                seq_len,
                initial,
                y,
                final_state,
            ),
            None => self.core_forward_with_state(x, batch, seq_len, initial, y, final_state),
        }
    }

    /// [`Model::forward_with_state`] of the recurrent stack and its head alone.
    pub(crate) fn core_forward_with_state(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        initial: Option<&[f32]>,
        y: &mut [f32],
        final_state: Option<&mut [f32]>,
    ) -> Result<()> {
        let n = checked_size("y", &[batch, seq_len, self.config().output_dim()])?;
        check_len("y", y.len(), n)?;
        if let Some(f) = &final_state {
            check_len("final_state", f.len(), self.config().state_len(batch))?;
        }
        if self.config().proj_size > 0 {
            // A direction model of a model with projections (`crate::proj`).
            self.check_sequence(x, batch, seq_len, initial)?;
            let tape = crate::proj::forward(self, x, batch, seq_len, initial)?;
            y.copy_from_slice(tape.outputs());
            if let Some(f) = final_state {
                f.copy_from_slice(tape.final_state());
            }
            return Ok(());
        }
        if batch == 1 {
            // A single sequence (a whole audio file, say) has no batch to share the
            // products: the streaming block path, with its single-row kernels, is faster.
            self.check_sequence(x, batch, seq_len, initial)?;
            let mut state = match self.cache.take_state(seq_len) {
                Some(state) => state,
                None => Box::new(crate::state::State::with_block(self, 1, seq_len)?),
            };
            let ran = match initial {
                Some(s) => state.set(s),
                None => {
                    state.reset();
                    Ok(())
                }
            }
            .and_then(|()| self.core_forward_state_shaped(&mut state, x, seq_len, y));
            if ran.is_ok() {
                if let Some(f) = final_state {
                    f.copy_from_slice(state.as_slice());
                }
            }
            self.cache.put_state(state);
            return ran;
        }
        let mut work = self
            .cache
            .take()
            .unwrap_or_else(|| Box::new((Tape::empty(*self.config()), ForwardScratch::default())));
        let (tape, scratch) = &mut *work;
        // Without a head the top layer writes its `h` rows straight into `y` (its
        // recurrence runs after every check and allocation that can fail).
        let direct = (!self.config().has_head()).then_some(&mut *y);
        let ran = self.run_into(x, batch, seq_len, initial, false, tape, scratch, direct);
        if let Ok(wrote_y) = ran {
            if !wrote_y {
                y.copy_from_slice(tape.outputs());
            }
            if self.config().output_activation == OutputActivation::Softmax {
                for row in y.chunks_mut(self.config().output_dim()) {
                    softmax_in_place(row);
                }
            }
            if let Some(f) = final_state {
                f.copy_from_slice(&tape.final_state);
            }
        }
        self.cache.put(work);
        ran.map(|_| ())
    }

    /// Forward that records what [`Model::backward`] needs. `initial` as in
    /// [`Model::forward_with_state`]. [`Tape::outputs`] are the pre-activation outputs.
    pub fn forward_train(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        initial: Option<&[f32]>,
    ) -> Result<Tape> {
        if self.config().is_composed() {
            return self.forward_train_lengths(x, batch, seq_len, None, initial);
        }
        match self.layers() {
            Some(ls) => crate::layers::forward_train(self, ls, x, batch, seq_len, initial),
            None => self.core_forward_train(x, batch, seq_len, initial),
        }
    }

    /// [`Model::forward_train`] of the recurrent stack and its head alone.
    pub(crate) fn core_forward_train(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        initial: Option<&[f32]>,
    ) -> Result<Tape> {
        if self.config().proj_size > 0 {
            // A direction model of a model with projections (`crate::proj`).
            self.check_sequence(x, batch, seq_len, initial)?;
            return crate::proj::forward(self, x, batch, seq_len, initial);
        }
        self.run(x, batch, seq_len, initial, true)
    }

    /// [`Model::forward_train`] into a tape (and scratch) kept from an earlier call: the
    /// buffers are resized, not reallocated, so a trainer's steps after the first
    /// allocate nothing large. The bits are those of [`Model::forward_train`]. On error
    /// the tape's contents are unspecified (it may be reused).
    pub(crate) fn forward_train_into(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        initial: Option<&[f32]>,
        tape: &mut Tape,
        scratch: &mut ForwardScratch,
    ) -> Result<()> {
        self.run_into(x, batch, seq_len, initial, true, tape, scratch, None)
            .map(|_| ())
    }

    /// Checks the arguments of a sequence pass.
    pub(crate) fn check_sequence(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        initial: Option<&[f32]>,
    ) -> Result<()> {
        let cfg = self.config();
        if batch == 0 {
            return Err(invalid!("batch is 0, expected >= 1"));
        }
        if seq_len == 0 {
            return Err(invalid!("seq_len is 0, expected >= 1"));
        }
        let n = checked_size("x", &[batch, seq_len, cfg.input_size])?;
        // Every internal buffer is at most [B*T, G*H]; refuse sizes whose products overflow.
        checked_size("activations", &[batch, seq_len, cfg.hidden_size, 4])?;
        checked_size("outputs", &[batch, seq_len, cfg.output_dim()])?;
        check_len("x", x.len(), n)?;
        crate::parallel::check_finite_par("x", x)?;
        if let Some(s) = initial {
            check_len("initial state", s.len(), cfg.state_len(batch))?;
            check_finite("initial state", s)?;
        }
        Ok(())
    }

    fn run(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        initial: Option<&[f32]>,
        record: bool,
    ) -> Result<Tape> {
        let mut tape = Tape::empty(*self.config());
        let mut scratch = ForwardScratch::default();
        self.run_into(
            x,
            batch,
            seq_len,
            initial,
            record,
            &mut tape,
            &mut scratch,
            None,
        )?;
        Ok(tape)
    }

    /// The sequence forward into `tape`, reusing its buffers. Without `record`, only the
    /// top layer's record is kept (two records alternate while the layers run). With
    /// `y` (no head, not recording), the top layer may write its outputs there instead
    /// of into the tape: the result says whether it did.
    #[allow(clippy::too_many_arguments)]
    fn run_into(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        initial: Option<&[f32]>,
        record: bool,
        tape: &mut Tape,
        scratch: &mut ForwardScratch,
        y: Option<&mut [f32]>,
    ) -> Result<bool> {
        self.check_sequence(x, batch, seq_len, initial)?;
        let cfg = *self.config();
        let (h, l) = (cfg.hidden_size, cfg.num_layers);
        let state_len = cfg.state_len(batch);
        tape.config = cfg;
        tape.batch = batch;
        tape.seq_len = seq_len;
        tape.seq = None;
        let Tape {
            x: tx,
            init,
            layers,
            logits,
            final_state,
            ..
        } = tape;
        match initial {
            Some(s) => {
                fit(init, state_len)?;
                init.copy_from_slice(s);
            }
            None => {
                fit(init, state_len)?;
                init.fill(0.0);
            }
        }
        if record {
            fit(tx, x.len())?;
            tx.copy_from_slice(x);
        } else {
            tx.clear();
        }
        // Every element is written by the recurrence (the last step of each layer).
        fit(final_state, state_len)?;
        let nrec = if record { l } else { l.min(2) };
        layers.truncate(nrec);
        layers.resize_with(nrec, LayerRec::default);
        let slot = |k: usize| if record { k } else { k % 2 };
        let lbh = l * batch * h;
        let init: &[f32] = init;
        let mut y = y;
        let mut wrote_y = false;
        let work = || -> Result<()> {
            for k in 0..l {
                let s = k * batch * h..(k + 1) * batch * h;
                let (h0, c0) = split_state(init, s.clone(), lbh, cfg.cell);
                let (fh, fc) = split_state_mut(final_state, s, lbh, cfg.cell);
                let (input, rec): (&[f32], &mut LayerRec) = if k == 0 {
                    (x, &mut layers[slot(0)])
                } else if slot(k) > slot(k - 1) {
                    let (lo, hi) = layers.split_at_mut(slot(k));
                    (&lo[slot(k - 1)].h, &mut hi[0])
                } else {
                    let (lo, hi) = layers.split_at_mut(slot(k - 1));
                    (&hi[0].h, &mut lo[slot(k)])
                };
                match column_parts(self, batch) {
                    Some(parts) => layer_forward_columns(
                        self, k, input, batch, seq_len, h0, c0, fh, fc, rec, parts, record,
                    )?,
                    None => {
                        let out = if k + 1 == l && !record {
                            y.take()
                        } else {
                            None
                        };
                        wrote_y = out.is_some();
                        let io = (fh, fc, rec, &mut *scratch, out);
                        layer_forward(self, k, input, batch, seq_len, h0, c0, io, record)?
                    }
                }
            }
            if slot(l - 1) + 1 != layers.len() {
                // Not recording, and the top layer landed in the first of the two
                // records: `Tape::outputs` reads the last.
                layers.swap(0, 1);
            }
            match self.head() {
                Some(hw) => {
                    let rows = batch * seq_len;
                    let o = cfg.output_size;
                    let top = &layers.last().unwrap().h;
                    fit(logits, rows * o)?;
                    gemm_packed_rows_bias(rows, top, h, &self.head_t, logits, o, hw.bias);
                }
                None => logits.clear(),
            }
            Ok(())
        };
        let (g, h) = (cfg.cell.gates(), cfg.hidden_size);
        let macs = if batch == 1 && !record && g * h * h * 4 <= COLUMN_SPLIT_BYTES {
            // One sequence, not recording, weights too small for the split by hidden
            // units: the recurrence is one chunk, which makes its own input products
            // block by block, so only the head's product could be shared; entering the
            // pool for the rest would add a hand-off and nothing else.
            match self.head() {
                Some(_) => seq_len.saturating_mul(h * cfg.output_size),
                None => 0,
            }
        } else {
            self.macs_per_row().saturating_mul(batch * seq_len)
        };
        install_work(macs, work)?;
        Ok(wrote_y)
    }
}

impl Tape {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        let f = |v: &Vec<f32>| v.capacity() * 4;
        let layers: usize = self
            .layers
            .iter()
            .map(|r| f(&r.gates) + f(&r.h) + f(&r.c) + f(&r.extra))
            .sum();
        layers + f(&self.x) + f(&self.init) + f(&self.logits) + f(&self.final_state)
    }

    /// A tape with no buffers yet, for [`Model::forward_train_into`] to fill.
    pub(crate) fn empty(config: ModelConfig) -> Tape {
        Tape {
            config,
            batch: 0,
            seq_len: 0,
            x: Vec::new(),
            init: Vec::new(),
            layers: Vec::new(),
            logits: Vec::new(),
            final_state: Vec::new(),
            extra: None,
            seq: None,
        }
    }
}

/// `(h, c)` of one layer inside a snapshot-layout state (`c` empty unless LSTM).
pub(crate) fn split_state(
    s: &[f32],
    range: std::ops::Range<usize>,
    lbh: usize,
    cell: CellKind,
) -> (&[f32], &[f32]) {
    let c = if cell.has_cell_state() {
        &s[lbh + range.start..lbh + range.end]
    } else {
        &s[0..0]
    };
    (&s[range], c)
}

/// Mutable version of [`split_state`].
pub(crate) fn split_state_mut(
    s: &mut [f32],
    range: std::ops::Range<usize>,
    lbh: usize,
    cell: CellKind,
) -> (&mut [f32], &mut [f32]) {
    let (hpart, cpart) = s.split_at_mut(lbh);
    let c = if cell.has_cell_state() {
        &mut cpart[range.clone()]
    } else {
        &mut cpart[0..0]
    };
    (&mut hpart[range], c)
}

// `ForwardCache` (the slots) is defined in model.rs, below this module; what goes in
// them, and when, is decided here.
impl ForwardCache {
    /// The most bytes of buffers a model keeps in each slot between calls.
    pub(crate) const LIMIT: usize = 256 << 20;

    /// The kept buffers, if there are any and no other call holds them.
    pub(crate) fn take(&self) -> Option<Box<(Tape, ForwardScratch)>> {
        self.batched.take()
    }

    /// Keeps `work` for the next call, unless it is larger than [`Self::LIMIT`].
    pub(crate) fn put(&self, work: Box<(Tape, ForwardScratch)>) {
        if work.0.bytes() + work.1.bytes() <= Self::LIMIT {
            self.batched.put(work);
        }
    }

    /// The kept single-stream state, if no other call holds it and its blocks are at
    /// least `seq_len` long (a shorter one is dropped).
    pub(crate) fn take_state(&self, seq_len: usize) -> Option<Box<crate::State>> {
        let state: Box<crate::State> = self.single.take()?;
        (state.max_block() >= seq_len).then_some(state)
    }

    /// Keeps `state` for the next single-sequence call, unless it is larger than
    /// [`Self::LIMIT`].
    pub(crate) fn put_state(&self, state: Box<crate::State>) {
        if state.bytes() <= Self::LIMIT {
            self.single.put(state);
        }
    }
}

/// Scratch of the forward recurrence, per batch chunk, kept across calls by a trainer.
#[derive(Debug, Default)]
pub(crate) struct ForwardScratch {
    chunks: Vec<ChunkScratch>,
}

impl ForwardScratch {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        let f = |v: &Vec<f32>| v.capacity() * 4;
        self.chunks
            .iter()
            .map(|c| f(&c.ghb) + f(&c.hprev) + f(&c.cprev) + f(&c.gblk) + f(&c.xblk) + f(&c.cnext))
            .sum()
    }
}

#[cfg(test)]
impl ForwardScratch {
    /// Fills every buffer with NaN (tests: an element read before it is written shows).
    pub(crate) fn poison(&mut self) {
        for c in &mut self.chunks {
            for v in [
                &mut c.ghb,
                &mut c.hprev,
                &mut c.cprev,
                &mut c.gblk,
                &mut c.xblk,
                &mut c.cnext,
            ] {
                v.fill(f32::NAN);
            }
        }
    }
}

#[cfg(test)]
impl Tape {
    /// Fills every buffer with NaN (tests: an element read before it is written shows).
    pub(crate) fn poison(&mut self) {
        for v in [
            &mut self.x,
            &mut self.init,
            &mut self.logits,
            &mut self.final_state,
        ] {
            v.fill(f32::NAN);
        }
        for r in &mut self.layers {
            for v in [&mut r.gates, &mut r.h, &mut r.c, &mut r.extra] {
                v.fill(f32::NAN);
            }
        }
    }
}

/// Widest `h_{t-1}` (in floats) that a step of a sequence pass reads in place in the
/// record `[B][T][H]`, one row before the step's own, instead of from a copy. Copying
/// each row twice per step (the record's `h_t` into a contiguous `h_{t-1}`, and for a
/// recorded LSTM `c_t` too) took 8-10 % of RNN inference at H = 128; reading in place
/// there: RNN -10 %, LSTM -2 %, GRU -3 % (batch 64, 1 thread). Wider rows, `T·H` floats
/// apart, fall into the same few cache sets (the stride is a large power of two in
/// common shapes): at H = 512 in place was 2-3 % slower than the copy.
const PREV_IN_RECORD: usize = 128;

/// One chunk's running state and, for linear-before-reset GRU, its `W_hh h` rows; when
/// not recording, the gate rows and input rows of one block of timesteps.
#[derive(Debug, Default)]
struct ChunkScratch {
    ghb: Vec<f32>,
    /// `h_{t-1}` when wider than [`PREV_IN_RECORD`] (else read from the record).
    hprev: Vec<f32>,
    /// LSTM: `c_{t-1}` when not recording, or when wider than [`PREV_IN_RECORD`].
    cprev: Vec<f32>,
    gblk: Vec<f32>,
    xblk: Vec<f32>,
    /// LSTM, not recording: where a step writes `c_t` (then swapped with `cprev`).
    cnext: Vec<f32>,
}

/// Bytes of gate rows per block of timesteps when a pass does not record (see
/// [`layer_forward`]): the block's input product is written just before its steps read
/// it, so it is still in L2 (2 MB on the machines measured) next to `W_hh`.
const BLOCK_GATE_BYTES: usize = 512 << 10;
/// Fewest rows per block product: each product reads all of `W_ih`, which for large
/// layers comes from L3 (8 MB for I = 512, H = 1024 LSTM), so blocks of one 64-row step
/// made that layer slower than one product up front; 256 is the up-front product's own
/// row block.
const BLOCK_MIN_ROWS: usize = 256;

/// Timesteps per block for `rows` rows of `gh` gate values, `1..=t`.
fn time_block(rows: usize, gh: usize, t: usize) -> usize {
    let fits = BLOCK_GATE_BYTES / (rows * gh * 4).max(1);
    fits.max(BLOCK_MIN_ROWS.div_ceil(rows.max(1)))
        .clamp(1, t.max(1))
}

/// A chunk's input product made block by block inside its recurrence (inference), rather
/// than for all timesteps up front.
struct Hoist<'a> {
    /// The chunk's input rows, `[rows][T][in]`.
    input: &'a [f32],
    /// Timesteps per block.
    tb: usize,
}

/// Where [`layer_forward`] writes: final `h` and `c`, the layer's record, the chunks'
/// scratch, and optionally the buffer for its `h` rows instead of the record (`[B][T][H]`).
type LayerIo<'a> = (
    &'a mut [f32],
    &'a mut [f32],
    &'a mut LayerRec,
    &'a mut ForwardScratch,
    Option<&'a mut [f32]>,
);

/// One layer over the whole batch into `rec` (resized; every element written).
/// `h0`/`c0`: `[B][H]` initial state; `fh`/`fc` receive the final state.
///
/// Recording (training), the input product of every timestep is one parallel GEMM up
/// front and stays in `rec.gates` for backward. Not recording, each batch chunk makes
/// it a block of timesteps at a time ([`time_block`]) just before the steps that read
/// it, and `rec.gates` stays empty: the full product (8 MB for B = 64, T = 64, H = 128
/// LSTM) would otherwise be read back from L3 by every step. Each element is the same
/// packed-kernel sum either way, so the outputs are bit for bit the same.
#[allow(clippy::too_many_arguments)]
fn layer_forward(
    model: &Model,
    k: usize,
    input: &[f32],
    batch: usize,
    t: usize,
    h0: &[f32],
    c0: &[f32],
    (fh, fc, rec, scratch, out): LayerIo<'_>,
    record: bool,
) -> Result<()> {
    let cfg = model.config();
    let h = cfg.hidden_size;
    let gh = cfg.cell.gates() * h;
    let inp = model.layer(k).input_size;
    let rows = batch * t;
    let LayerRec {
        gates,
        h: hs,
        c: cs,
        extra,
    } = rec;

    if record {
        hoist_input(model, k, input, rows, gates)?;
    } else {
        gates.clear();
    }

    // `h_t` of every step: the layer's record, or the caller's output buffer.
    let hs: &mut [f32] = match out {
        Some(y) => {
            hs.clear();
            &mut y[..rows * h]
        }
        None => {
            fit(hs, rows * h)?;
            hs
        }
    };
    // LSTM: `c_t` of every step is kept for backward; not recording, each chunk only
    // carries it (`ChunkScratch::cnext`).
    let lstm = cfg.cell == CellKind::Lstm;
    fit(cs, if lstm && record { rows * h } else { 0 })?;
    // The notes' GRU needs `r ⊙ h` as an operand; the linear-before-reset GRU keeps
    // `W_hn h + b_hn` only for backward.
    let extra_len = match cfg.cell {
        CellKind::Gru => rows * h,
        CellKind::GruLbr if record => rows * h,
        _ => 0,
    };
    fit(extra, extra_len)?;

    let cb = batch_chunk(batch);
    let nchunks = batch.div_ceil(cb);
    let tb = time_block(cb, gh, t);
    let chunks = &mut scratch.chunks;
    if chunks.len() < nchunks {
        chunks.resize_with(nchunks, ChunkScratch::default);
    }
    for (i, sc) in chunks.iter_mut().enumerate().take(nchunks) {
        let rows = ((i + 1) * cb).min(batch) - i * cb;
        let lbr = cfg.cell == CellKind::GruLbr;
        fit(&mut sc.ghb, if lbr { rows * gh } else { 0 })?;
        let wide = h > PREV_IN_RECORD;
        fit(&mut sc.hprev, if wide { rows * h } else { 0 })?;
        fit(
            &mut sc.cprev,
            if lstm && (wide || !record) {
                rows * h
            } else {
                0
            },
        )?;
        fit(&mut sc.gblk, if record { 0 } else { rows * tb * gh })?;
        fit(&mut sc.xblk, if record { 0 } else { rows * tb * inp })?;
        fit(&mut sc.cnext, if lstm && !record { rows * h } else { 0 })?;
    }
    let jobs: Vec<_> = pieces(gates, cb * t * gh, nchunks)
        .into_iter()
        .zip(pieces(hs, cb * t * h, nchunks))
        .zip(pieces(cs, cb * t * h, nchunks))
        .zip(pieces(extra, cb * t * h, nchunks))
        .zip(pieces(fh, cb * h, nchunks))
        .zip(pieces(fc, cb * h, nchunks))
        .zip(chunks.iter_mut())
        .enumerate()
        .collect();
    each(jobs, |(i, ((((((g, hh), c), e), fhh), fcc), sc))| {
        let r = i * cb * h..((i + 1) * cb).min(batch) * h;
        let c0r = if c0.is_empty() {
            &c0[0..0]
        } else {
            &c0[r.clone()]
        };
        let hoist = (!record).then(|| Hoist {
            input: &input[i * cb * t * inp..((i + 1) * cb).min(batch) * t * inp],
            tb,
        });
        recur_chunk(model, k, t, g, hh, c, e, &h0[r], c0r, fhh, fcc, sc, hoist);
    });
    Ok(())
}

/// Layer `k`'s hoisted input projection for all `rows` (`[B*T]`) at once, plus the
/// folded bias, into `gates` (`[rows][G*H]`, resized).
fn hoist_input(
    model: &Model,
    k: usize,
    input: &[f32],
    rows: usize,
    gates: &mut Vec<f32>,
) -> Result<()> {
    let gh = model.config().cell.gates() * model.config().hidden_size;
    fit(gates, rows * gh)?;
    let inp = model.layer(k).input_size;
    let w = &model.packed[k].w_ih_t;
    gemm_packed_rows_bias(rows, input, inp, w, gates, gh, model.folded_bias(k));
    Ok(())
}

/// Rows per thread at or below which the recurrence is split by hidden units instead of
/// by batch rows (see [`layer_forward_columns`] and the backward's twin).
const COLUMN_SPLIT_ROWS: usize = 8;
/// `W_hh` bytes above which that split is worth its two synchronisations per step:
/// weights this large do not stay in a core's L2 (2 MB on the machines measured), so
/// with the batch split every thread reads all of them from L3 every step. Below it the
/// batch split is faster: on 2 threads an LSTM with H = 256 (1 MB) and 2-8 rows ran
/// 20 % slower split by units than on one thread.
const COLUMN_SPLIT_BYTES: usize = 2 << 20;
/// Fewest multiply-adds per part and step for that split: below this the two
/// synchronisations cost more than the reads they save (on 2 threads, an LSTM with
/// H = 384 and 4 rows, 1.2 M per part, ran slower split by units than by rows).
const COLUMN_SPLIT_WORK: usize = 2 << 20;
/// Hidden units per part are a multiple of this (one AVX-512 vector).
const COLUMN_UNITS: usize = 16;

/// How many unit ranges a pass (forward or backward) over `batch` rows splits each step
/// into, or
/// `None` to split the batch: only with several threads, few rows for each, recurrent
/// weights too large for one core's L2, enough work per part, and a cell whose step is
/// one product.
pub(crate) fn column_parts(model: &Model, batch: usize) -> Option<usize> {
    let cfg = model.config();
    let threads = threads();
    let h = cfg.hidden_size;
    let w_bytes = cfg.cell.gates() * h * h * 4;
    let one_product = !matches!(cfg.cell, CellKind::Gru);
    if threads < 2 || !one_product || w_bytes <= COLUMN_SPLIT_BYTES {
        return None;
    }
    if batch.div_ceil(threads) > COLUMN_SPLIT_ROWS {
        return None;
    }
    let units = h.div_ceil(threads).next_multiple_of(COLUMN_UNITS);
    let parts = h.div_ceil(units);
    let work = batch * cfg.cell.gates() * units * h;
    (parts >= 2 && work >= COLUMN_SPLIT_WORK).then_some(parts)
}

/// The hidden-unit ranges of a split into `parts` (as [`column_parts`] sized it): equal
/// multiples of 16 units, the last one shorter.
pub(crate) fn unit_ranges(h: usize, parts: usize) -> Vec<(usize, usize)> {
    let units = h.div_ceil(parts).next_multiple_of(COLUMN_UNITS);
    (0..h.div_ceil(units))
        .map(|p| (p * units, ((p + 1) * units).min(h)))
        .collect()
}

/// One part of a unit split: hidden units `j0..j1`, their rows of `W_hh` packed alone,
/// and per-row scratch for all `B` rows.
struct UnitPart {
    j0: usize,
    j1: usize,
    /// `W_hh` restricted to the gate rows of units `j0..j1` (`[G*U]` columns, gate-major).
    w: PackedB,
    /// `[B][G*U]`: gate pre-activations, then activated gates.
    gates: Vec<f32>,
    /// Linear-before-reset GRU: `[B][G*U]` hidden products.
    ghb: Vec<f32>,
    /// `[B][U]`: new `h`, and LSTM's previous and new `c`.
    h: Vec<f32>,
    c_prev: Vec<f32>,
    c: Vec<f32>,
}

/// A layer's inference recurrence split by hidden units: each step, every part computes
/// its units' gates for all rows (`h_{t-1} · W_hhᵀ` restricted to its gate rows, whose
/// weights stay in its core's caches from step to step) and applies the cell; then the
/// new `h` rows are gathered. Two parallel sections per step instead of none, but each
/// core reads only its share of `W_hh`: with many threads and few rows per thread,
/// splitting the batch makes every core read all of `W_hh` from L3 every step.
///
/// Every element is computed by the same operations as in [`layer_forward`] (each
/// column of a packed product is the same sum whichever panels surround it; the cell
/// is per unit), so the results are bit for bit the same.
#[allow(clippy::too_many_arguments)]
fn layer_forward_columns(
    model: &Model,
    k: usize,
    input: &[f32],
    batch: usize,
    t: usize,
    h0: &[f32],
    c0: &[f32],
    fh: &mut [f32],
    fc: &mut [f32],
    rec: &mut LayerRec,
    parts: usize,
    record: bool,
) -> Result<()> {
    let cfg = model.config();
    let cell = cfg.cell;
    let h = cfg.hidden_size;
    let g = cell.gates();
    let gh = g * h;
    let rows = batch * t;
    let lstm = cell == CellKind::Lstm;
    let lbr = cell == CellKind::GruLbr;
    let LayerRec {
        gates,
        h: hs,
        c: cs,
        extra,
    } = rec;
    // Recording, the tape gets what layer_forward leaves there: activated gates, c_t, and
    // for the linear-before-reset GRU `W_hn h_{t-1} + b_hn`.
    fit(cs, if record && lstm { rows * h } else { 0 })?;
    fit(extra, if record && lbr { rows * h } else { 0 })?;

    hoist_input(model, k, input, rows, gates)?;
    fit(hs, rows * h)?;

    let lw = model.layer(k);
    // Packing the parts' weights is a copy of `W_hh`, made in parallel.
    let mut work: Vec<UnitPart> = map_each(unit_ranges(h, parts), |(j0, j1)| {
        let u = j1 - j0;
        let mut wrows = Vec::new();
        wrows
            .try_reserve_exact(g * u * h)
            .map_err(|_| Error::Alloc(format!("{} floats", g * u * h)))?;
        for q in 0..g {
            wrows.extend_from_slice(&lw.w_hh[(q * h + j0) * h..(q * h + j1) * h]);
        }
        let mut part = UnitPart {
            j0,
            j1,
            w: PackedB::from_transposed(&wrows, g * u, h),
            gates: Vec::new(),
            ghb: Vec::new(),
            h: Vec::new(),
            c_prev: Vec::new(),
            c: Vec::new(),
        };
        fit(&mut part.gates, batch * g * u)?;
        fit(&mut part.ghb, if lbr { batch * g * u } else { 0 })?;
        fit(&mut part.h, batch * u)?;
        fit(&mut part.c_prev, if lstm { batch * u } else { 0 })?;
        fit(&mut part.c, if lstm { batch * u } else { 0 })?;
        if lstm {
            for b in 0..batch {
                part.c_prev[b * u..(b + 1) * u].copy_from_slice(&c0[b * h + j0..b * h + j1]);
            }
        }
        Ok(part)
    })
    .into_iter()
    .collect::<Result<_>>()?;
    let mut hprev = Vec::new();
    fit(&mut hprev, batch * h)?;
    hprev.copy_from_slice(h0);
    let b_hn = if lbr {
        &lw.b_hh[2 * h..]
    } else {
        &lw.b_hh[..0]
    };

    for s in 0..t {
        let (gates_r, hprev_r): (&[f32], &[f32]) = (gates, &hprev);
        each_mut(&mut work, |p| {
            let (j0, u) = (p.j0, p.j1 - p.j0);
            let gu = g * u;
            for b in 0..batch {
                let src = &gates_r[(b * t + s) * gh..(b * t + s + 1) * gh];
                for q in 0..g {
                    p.gates[b * gu + q * u..b * gu + (q + 1) * u]
                        .copy_from_slice(&src[q * h + j0..q * h + j0 + u]);
                }
            }
            if lbr {
                gemm_packed_sweep(batch, hprev_r, h, &p.w, &mut p.ghb, gu, false, s % 2 == 1);
            } else {
                gemm_packed_sweep(batch, hprev_r, h, &p.w, &mut p.gates, gu, true, s % 2 == 1);
            }
            for b in 0..batch {
                let row = &mut p.gates[b * gu..(b + 1) * gu];
                let hr = &mut p.h[b * u..(b + 1) * u];
                match cell {
                    CellKind::Lstm => {
                        let (cp, c) = (&p.c_prev[b * u..(b + 1) * u], &mut p.c[b * u..(b + 1) * u]);
                        lstm::forward(row, cp, c, hr);
                    }
                    CellKind::GruLbr => {
                        let ghr = &mut p.ghb[b * gu..(b + 1) * gu];
                        gru::add_hidden_lbr(row, ghr, &b_hn[j0..j0 + u]);
                        let hp = &hprev_r[b * h + j0..b * h + j0 + u];
                        gru::forward_lbr(row, &ghr[2 * u..], hp, hr);
                    }
                    _ => {
                        rnn::forward(row, cell == CellKind::RnnRelu);
                        hr.copy_from_slice(row);
                    }
                }
            }
            std::mem::swap(&mut p.c_prev, &mut p.c);
        });
        let work_r = &work;
        // Not recording, the hoisted gates are left as they are (nothing reads them).
        let tape_gates: &mut [f32] = if record { gates } else { &mut [] };
        let rows: Vec<_> = pieces(&mut hprev, h, batch)
            .into_iter()
            .zip(pieces(hs, t * h, batch))
            .zip(pieces(tape_gates, t * gh, batch))
            .zip(pieces(cs, t * h, batch))
            .zip(pieces(extra, t * h, batch))
            .enumerate()
            .collect();
        each(rows, |(b, ((((hp, out), tg), tc), te))| {
            for p in work_r {
                let u = p.j1 - p.j0;
                let r = b * u..(b + 1) * u;
                hp[p.j0..p.j1].copy_from_slice(&p.h[r.clone()]);
                if record {
                    let gu = g * u;
                    for q in 0..g {
                        tg[s * gh + q * h + p.j0..s * gh + q * h + p.j1]
                            .copy_from_slice(&p.gates[b * gu + q * u..b * gu + (q + 1) * u]);
                    }
                    if lstm {
                        // After the swap `c_prev` holds this step's c.
                        tc[s * h + p.j0..s * h + p.j1].copy_from_slice(&p.c_prev[r.clone()]);
                    }
                    if lbr {
                        te[s * h + p.j0..s * h + p.j1]
                            .copy_from_slice(&p.ghb[b * gu + 2 * u..b * gu + 3 * u]);
                    }
                }
            }
            out[s * h..(s + 1) * h].copy_from_slice(hp);
        });
    }
    fh.copy_from_slice(&hprev);
    if lstm {
        for p in &work {
            let u = p.j1 - p.j0;
            for b in 0..batch {
                // After the last swap `c_prev` holds the final cell state.
                fc[b * h + p.j0..b * h + p.j1].copy_from_slice(&p.c_prev[b * u..(b + 1) * u]);
            }
        }
    }
    Ok(())
}

/// The recurrence of one batch chunk (`h0.len() / H` rows) over all `t` timesteps, one
/// [`recurrent_step`] per timestep.
#[allow(clippy::too_many_arguments)]
fn recur_chunk(
    model: &Model,
    k: usize,
    t: usize,
    gates: &mut [f32],
    hs: &mut [f32],
    cs: &mut [f32],
    extra: &mut [f32],
    h0: &[f32],
    c0: &[f32],
    fh: &mut [f32],
    fc: &mut [f32],
    scratch: &mut ChunkScratch,
    hoist: Option<Hoist<'_>>,
) {
    let cfg = model.config();
    let cell = cfg.cell;
    let h = cfg.hidden_size;
    let gh = cell.gates() * h;
    let cb = h0.len() / h;
    // Sized by `layer_forward`: `ghb` is fully written by each step's product, `gblk`
    // by each block's input product.
    let ChunkScratch {
        ghb,
        hprev,
        cprev,
        gblk,
        xblk,
        cnext,
    } = scratch;
    // Recording keeps `c_t` at its place in `cs`; otherwise it goes to `cnext`.
    let keep_c = hoist.is_none();
    let lstm = cell == CellKind::Lstm;
    if lstm && !keep_c {
        cprev.copy_from_slice(c0);
    }
    let mut tb = 0;
    for s in 0..t {
        let (g, ldg) = match &hoist {
            None => (&mut gates[s * gh..], t * gh),
            Some(hb) => {
                if s % hb.tb == 0 {
                    // This block's rows `[cb][tb][in]`, then `bias + x · W_ihᵀ` for all
                    // of them in one product.
                    tb = hb.tb.min(t - s);
                    let inp = model.layer(k).input_size;
                    for i in 0..cb {
                        xblk[i * tb * inp..(i + 1) * tb * inp]
                            .copy_from_slice(&hb.input[(i * t + s) * inp..][..tb * inp]);
                    }
                    let w = &model.packed[k].w_ih_t;
                    let (x, out) = (&xblk[..cb * tb * inp], &mut gblk[..cb * tb * gh]);
                    gemm_packed_bias(cb * tb, x, inp, w, out, gh, model.folded_bias(k));
                }
                (&mut gblk[(s % hb.tb) * gh..], tb * gh)
            }
        };
        // From the second step on, narrow rows of `h_{t-1}` (and a recorded `c_{t-1}`)
        // are read where the step before wrote them, one row before the step's own in
        // each sequence; wider ones are copied into `hprev` first (see `PREV_IN_RECORD`).
        let in_record = s > 0 && h <= PREV_IN_RECORD;
        let before = usize::from(in_record);
        let io = StepRows {
            gates: g,
            ldg,
            h: &mut hs[(s - before) * h..],
            ldh: t * h,
            prev_in_h: in_record,
            c: if keep_c {
                tail(cs, (s - before) * h)
            } else {
                &mut cnext[..]
            },
            ldc: if keep_c { t * h } else { h },
            prev_in_c: keep_c && in_record,
            extra: tail(extra, s * h),
            lde: t * h,
            gemv: false,
            reverse: s % 2 == 1,
        };
        // `h_{t-1}` and `c_{t-1}` where the step does not read them in the record.
        let (hp, cp): (&[f32], &[f32]) = match s {
            0 if keep_c => (h0, c0),
            0 => (h0, cprev),
            _ => (hprev, cprev),
        };
        recurrent_step(model, k, cb, hp, cp, io, ghb);
        if h > PREV_IN_RECORD && s + 1 < t {
            let at = |i: usize| (i * t + s) * h;
            for i in 0..cb {
                hprev[i * h..(i + 1) * h].copy_from_slice(&hs[at(i)..at(i) + h]);
                if lstm && keep_c {
                    cprev[i * h..(i + 1) * h].copy_from_slice(&cs[at(i)..at(i) + h]);
                }
            }
        }
        if lstm && !keep_c {
            std::mem::swap(cprev, cnext);
        }
    }
    // The last step's rows.
    let last = |i: usize| (i * t + t - 1) * h..(i * t + t) * h;
    for i in 0..cb {
        fh[i * h..(i + 1) * h].copy_from_slice(&hs[last(i)]);
        if lstm {
            let c = if keep_c {
                &cs[last(i)]
            } else {
                &cprev[i * h..(i + 1) * h]
            };
            fc[i * h..(i + 1) * h].copy_from_slice(c);
        }
    }
}
