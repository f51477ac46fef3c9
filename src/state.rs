#![forbid(unsafe_code)]
//! Streaming: a [`State`] carries `h` (and `c`) of `batch` independent streams across
//! calls, plus every scratch buffer a step needs, so [`Model::step`] and
//! [`Model::forward_state`] allocate nothing, take no lock and run in time bounded by
//! the block length: safe on an audio thread.

use crate::buffers::{tail, try_zeroed};
use crate::cell::rnn;
use crate::config::{CellKind, ModelConfig, OutputActivation};
use crate::error::{check_finite, check_len, checked_size, invalid, Result};
use crate::kernels::activation;
use crate::kernels::packed::{
    dense_rows, gemm_packed_bias, gemm_packed_sweep, gemv2_packed, gemv_packed_bias,
    gemv_packed_sweep, PackedB, StreamLayer,
};
use crate::kernels::reference::flush_ref;
use crate::model::{Model, PackedLayer};
use crate::step::{recurrent_step, softmax_in_place, StepRows};

/// The carried state of `batch` streams of one model, with its scratch space.
///
/// Snapshot layout (as PyTorch returns state): `h` as `[num_layers][batch][H]`, then for
/// LSTM `c` as `[num_layers][batch][H]`; with LSTM projections `h` is `P` wide
/// (`[num_layers][batch][P]`) and `c` stays `H` wide (see [`ModelConfig::state_len`]).
#[derive(Clone, Debug)]
pub struct State {
    config: ModelConfig,
    batch: usize,
    max_block: usize,
    data: Vec<f32>,
    /// Direction of the next single-stream step's sweep over the recurrent weights
    /// (see [`gemv_packed_sweep`]); it alternates, and never changes a result.
    reverse: bool,
    /// The identity ([`crate::model::ModelId`]) of the model whose per-sample step last
    /// ran the fused path on this state, its checks passed ([`State::note_audio`]; the
    /// lowest bit set for a model with dense layers); 0 for none. While it is the
    /// model's, a step of the right lengths goes straight to the fused kernels
    /// ([`Model::audio_ready`], [`Model::audio_ready_layered`]).
    audio_for: u64,
    scratch: Scratch,
    /// The rows of the dense layers around the stack; `None` for a plain model.
    pub(crate) layer_scratch: Option<Box<crate::layers::LayerScratch>>,
    /// A model with LSTM projections: its scratch (`crate::proj`); `None` otherwise.
    proj: Option<Box<crate::proj::StreamScratch>>,
}

/// The per-step scratch rows [`Model::state_step`] borrows from [`Scratch`].
struct StepWork<'a> {
    ghb: &'a mut [f32],
    rh: &'a mut [f32],
    hnew: &'a mut [f32],
}

/// Everything a block of up to `max_block` steps needs, allocated once.
#[derive(Clone, Debug)]
struct Scratch {
    /// Gate rows of the block, `[B][max_block][G*H]`.
    gates: Vec<f32>,
    /// The block's layer outputs, `[B][max_block][H]`, alternating between layers.
    blk_a: Vec<f32>,
    blk_b: Vec<f32>,
    /// Linear-before-reset GRU: `h · W_hhᵀ` of one step, `[B][G*H]`.
    ghb: Vec<f32>,
    /// Notes' GRU: `r ⊙ h` of one step, `[B][H]`.
    rh: Vec<f32>,
    /// The notes' GRU: the new `h` rows of one step before the flush, `[B][H]`.
    hnew: Vec<f32>,
    /// The block's input with subnormals flushed, `[B][max_block][I]`.
    x: Vec<f32>,
}

impl State {
    /// A zero state for `batch` streams, for single steps (`max_block = 1`).
    pub fn new(model: &Model, batch: usize) -> Result<State> {
        State::with_block(model, batch, 1)
    }

    /// A zero state for `batch` streams and blocks of up to `max_block` timesteps.
    pub fn with_block(model: &Model, batch: usize, max_block: usize) -> Result<State> {
        let cfg = *model.config();
        if cfg.bidirectional {
            return Err(streaming_bidirectional());
        }
        if batch == 0 {
            return Err(invalid!("batch is 0, expected >= 1"));
        }
        if max_block == 0 {
            return Err(invalid!("max_block is 0, expected >= 1"));
        }
        let per = checked_size("state", &[cfg.num_layers, batch, cfg.hidden_size])?;
        let len = per
            .checked_mul(if cfg.cell.has_cell_state() { 2 } else { 1 })
            .ok_or_else(|| invalid!("state size overflows"))?;
        checked_size(
            "block",
            &[batch, max_block, cfg.input_size.max(cfg.output_dim())],
        )?;
        let h = cfg.hidden_size;
        let gh = cfg.cell.gates() * h;
        checked_size("block", &[batch, max_block, gh])?;
        if cfg.proj_size > 0 {
            // Projections run through `crate::proj`, with their own scratch; `len` above
            // bounds the (smaller) snapshot.
            return Ok(State {
                layer_scratch: None,
                config: cfg,
                batch,
                max_block,
                data: try_zeroed(cfg.state_len(batch))?,
                reverse: false,
                audio_for: 0,
                scratch: Scratch {
                    gates: Vec::new(),
                    blk_a: Vec::new(),
                    blk_b: Vec::new(),
                    ghb: Vec::new(),
                    rh: Vec::new(),
                    hnew: Vec::new(),
                    x: try_zeroed(batch * max_block * cfg.input_size)?,
                },
                proj: Some(Box::new(crate::proj::StreamScratch::new(
                    model, batch, max_block,
                )?)),
            });
        }
        let data = try_zeroed(len)?;
        let layer_scratch = crate::layers::LayerScratch::new(model, batch, max_block)?;
        Ok(State {
            proj: None,
            layer_scratch,
            config: cfg,
            batch,
            max_block,
            data,
            reverse: false,
            audio_for: 0,
            scratch: Scratch {
                // A block runs in chunks of at most this many steps (`stream_block`).
                gates: try_zeroed(batch * stream_chunk(batch, gh, max_block) * gh)?,
                // Without a head the top layer writes `y` itself.
                blk_a: if cfg.num_layers > 1 || cfg.has_head() {
                    try_zeroed(batch * max_block * h)?
                } else {
                    Vec::new()
                },
                blk_b: if cfg.num_layers > 1 {
                    try_zeroed(batch * max_block * h)?
                } else {
                    Vec::new()
                },
                ghb: if cfg.cell == CellKind::GruLbr {
                    try_zeroed(batch * gh)?
                } else {
                    Vec::new()
                },
                rh: if cfg.cell == CellKind::Gru {
                    try_zeroed(batch * h)?
                } else {
                    Vec::new()
                },
                hnew: if cfg.cell == CellKind::Gru {
                    try_zeroed(batch * h)?
                } else {
                    Vec::new()
                },
                x: try_zeroed(batch * max_block * cfg.input_size)?,
            },
        })
    }

    /// Number of streams.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Longest block [`Model::forward_state`] accepts.
    pub fn max_block(&self) -> usize {
        self.max_block
    }

    /// The config of the model this state was made for.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Elements of a snapshot.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Always false: a state holds at least one layer, stream and unit.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The snapshot itself (see the type's doc for the layout).
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Copies the snapshot into `out` (`len()` elements).
    pub fn get(&self, out: &mut [f32]) -> Result<()> {
        check_len("out", out.len(), self.data.len())?;
        out.copy_from_slice(&self.data);
        Ok(())
    }

    /// Replaces the snapshot; refuses NaN/Inf (`Error::NonFinite`), leaving it unchanged.
    pub fn set(&mut self, values: &[f32]) -> Result<()> {
        check_len("in", values.len(), self.data.len())?;
        check_finite("in", values)?;
        self.data.copy_from_slice(values);
        Ok(())
    }

    /// Every stream back to zeros.
    pub fn reset(&mut self) {
        self.data.fill(0.0);
    }

    /// Stream `stream` back to zeros (every layer, `h` and `c`).
    pub fn reset_stream(&mut self, stream: usize) -> Result<()> {
        if stream >= self.batch {
            return Err(invalid!(
                "stream is {stream}, expected 0..{} (the state's batch)",
                self.batch
            ));
        }
        // `h` planes (`P` wide with a projection), then `c` planes (`H` wide): no
        // allocation (a step's caller may reset a stream on the audio thread).
        let cfg = &self.config;
        let planes = cfg.num_layers * cfg.num_directions();
        let (p, h) = (cfg.real_hidden_size(), cfg.hidden_size);
        let c0 = cfg.state_c_offset(self.batch);
        for i in 0..planes {
            let o = (i * self.batch + stream) * p;
            self.data[o..o + p].fill(0.0);
            if cfg.cell.has_cell_state() {
                let o = c0 + (i * self.batch + stream) * h;
                self.data[o..o + h].fill(0.0);
            }
        }
        Ok(())
    }

    /// Bytes held (state and scratch).
    pub(crate) fn bytes(&self) -> usize {
        let sc = &self.scratch;
        let f32s = [
            &self.data, &sc.gates, &sc.blk_a, &sc.blk_b, &sc.ghb, &sc.rh, &sc.hnew, &sc.x,
        ]
        .iter()
        .map(|v| v.capacity())
        .sum::<usize>();
        f32s * 4
            + self.layer_scratch.as_ref().map_or(0, |l| l.bytes())
            + self.proj.as_ref().map_or(0, |p| p.bytes())
    }

    /// The sweep direction of a call's first step over the recurrent weights (see
    /// `gemv_packed_sweep`), the flag advanced past the call's `steps` steps: it
    /// alternates step by step across calls.
    #[inline(always)]
    fn sweep(&mut self, steps: usize) -> bool {
        let first = self.reverse;
        self.reverse ^= steps % 2 == 1;
        first
    }

    /// Marks this state as having passed a per-sample step's checks against `model` and
    /// run its fused path (see `audio_for`): the model's identity, its lowest bit set
    /// where the model has dense layers (identities are even).
    #[inline]
    pub(crate) fn note_audio(&mut self, model: &Model) {
        self.audio_for = model.id.get() | u64::from(model.layers.is_some());
    }

    /// Errors unless this state was made for a model of `cfg`.
    pub(crate) fn check_model(&self, cfg: &ModelConfig) -> Result<()> {
        if self.config != *cfg {
            return Err(wrong_model(&self.config, cfg));
        }
        Ok(())
    }
}

/// Inputs of a single step checked and flushed on the stack rather than in the scratch.
pub(crate) const STEP_INPUTS_ON_STACK: usize = 16;

// The failures of the checks a step makes on every call, out of line (`#[cold]`, by
// value; see `error::check_len`).

#[cold]
#[inline(never)]
fn wrong_model(state: &ModelConfig, model: &ModelConfig) -> crate::error::Error {
    invalid!("state was made for a model with config {state}, not {model}")
}

#[cold]
#[inline(never)]
fn streaming_bidirectional() -> crate::error::Error {
    invalid!(
        "a bidirectional model cannot run step by step (its reverse direction starts at \
         the end of the sequence): use forward or forward_with_state on whole sequences"
    )
}

#[cold]
#[inline(never)]
fn block_too_long(seq_len: usize, max_block: usize) -> crate::error::Error {
    invalid!("seq_len is {seq_len}, but the state was made for blocks of at most {max_block}")
}

/// Bytes of gate rows per chunk of a streaming block: about two thirds of a 48 KB L1.
const STREAM_CHUNK_BYTES: usize = 32 << 10;

/// Stream `i`'s rows of one layer's state (`h`, and `c` where the cell has one: `ck`
/// empty otherwise), rows of `h` floats.
fn stream_rows<'a>(
    hk: &'a mut [f32],
    ck: &'a mut [f32],
    i: usize,
    h: usize,
) -> (&'a mut [f32], &'a mut [f32]) {
    let ci = if ck.is_empty() {
        ck
    } else {
        &mut ck[i * h..(i + 1) * h]
    };
    (&mut hk[i * h..(i + 1) * h], ci)
}

/// Timesteps per chunk of a streaming block of `t` steps for `b` streams, `1..=t`.
fn stream_chunk(b: usize, gh: usize, t: usize) -> usize {
    (STREAM_CHUNK_BYTES / (b * gh * 4).max(1)).clamp(1, t.max(1))
}

/// [`flush_into`], and whether every value was finite: one pass over a step's inputs
/// (`check_finite` then `flush_into` measured 1-2 ns slower on a 40 ns step).
fn flush_finite_into(dst: &mut [f32], src: &[f32]) -> bool {
    let mut finite = true;
    for (d, &v) in dst.iter_mut().zip(src) {
        finite &= v.is_finite();
        *d = flush_ref(v);
    }
    finite
}

/// `dst = src` with values smaller in magnitude than [`FLUSH_BELOW`](crate::kernels::reference::FLUSH_BELOW) set to zero (NaN
/// stays). A select, not a branch, so the loop vectorizes.
fn flush_into(dst: &mut [f32], src: &[f32]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = flush_ref(v);
    }
}

impl Model {
    /// Advances every stream of `state` one timestep. `x` is `[batch][input_size]`, `y`
    /// receives `[batch][output_size]`. No allocation, no lock. On error nothing changes.
    ///
    /// ```
    /// use rnncore::{CellKind, Model, ModelConfig, State};
    /// let model = Model::new(ModelConfig::new(CellKind::Gru, 1, 16, 1), 1)?;
    /// let mut state = State::new(&model, 1)?;
    /// let mut y = [0.0f32; 16];
    /// for sample in [0.1f32, 0.2, -0.3] {
    ///     model.step(&mut state, &[sample], &mut y)?;
    /// }
    /// # Ok::<(), rnncore::Error>(())
    /// ```
    pub fn step(&self, state: &mut State, x: &[f32], y: &mut [f32]) -> Result<()> {
        if self.audio_ready(state, x.len(), y.len()) {
            return self.audio_step(state, x, y);
        }
        if let Some(ls) = self.layers.as_deref() {
            if self.audio_ready_layered(state, x.len(), y.len()) {
                return crate::layers::audio_step_again(self, ls, state, x, y);
            }
        }
        self.forward_state(state, x, 1, y)
    }

    /// Runs a block of `seq_len` timesteps (`<= state.max_block()`) from `state` and leaves
    /// the final state in it. `x` is `[batch][seq_len][input_size]`, `y` receives
    /// `[batch][seq_len][output_size]`. No allocation, no lock. On error nothing changes.
    #[inline]
    pub fn forward_state(
        &self,
        state: &mut State,
        x: &[f32],
        seq_len: usize,
        y: &mut [f32],
    ) -> Result<()> {
        let cfg = self.config();
        if cfg.bidirectional {
            return Err(streaming_bidirectional());
        }
        state.check_model(cfg)?;
        if seq_len > state.max_block {
            return Err(block_too_long(seq_len, state.max_block));
        }
        let b = state.batch;
        let (i_sz, o_sz) = (self.input_size(), self.output_size());
        check_len("x", x.len(), b * seq_len * i_sz)?;
        check_len("y", y.len(), b * seq_len * o_sz)?;
        self.forward_state_shaped(state, x, seq_len, y)
    }

    /// [`Model::forward_state`] for streams that advance different numbers of steps:
    /// stream `b` runs the first `lengths[b]` (`1..=seq_len`) of its `seq_len` steps in
    /// `x` (`[batch][seq_len][input_size]`, padded), its outputs past that are zero
    /// (`y`: `[batch][seq_len][output_size]`), and the state it keeps is the one after
    /// its own last step (as [`Model::forward_with_state_lengths`] gives, from the
    /// state's current values; the snapshot layout is that function's state layout).
    ///
    /// Unlike `forward_state` this allocates working memory (it runs the whole-sequence
    /// pass) and `seq_len` is not limited by the state's `max_block`: not for a
    /// real-time thread. With every length `seq_len` (and `seq_len <= max_block`) it is
    /// `forward_state` itself, with its bits. Errors (nothing changes, neither `y` nor
    /// the state): lengths not one per stream, a length of 0 or over `seq_len`, a
    /// bidirectional model, a state of another model, wrong sizes, non-finite `x`.
    pub fn forward_state_lengths(
        &self,
        state: &mut State,
        x: &[f32],
        seq_len: usize,
        lengths: &[usize],
        y: &mut [f32],
    ) -> Result<()> {
        let cfg = self.config();
        if cfg.bidirectional {
            return Err(streaming_bidirectional());
        }
        state.check_model(cfg)?;
        let b = state.batch;
        crate::bidir::check_lengths(lengths, b, seq_len)?;
        check_len(
            "x",
            x.len(),
            checked_size("x", &[b, seq_len, self.input_size()])?,
        )?;
        check_len(
            "y",
            y.len(),
            checked_size("y", &[b, seq_len, self.output_size()])?,
        )?;
        if seq_len <= state.max_block && lengths.iter().all(|&n| n == seq_len) {
            return self.forward_state_shaped(state, x, seq_len, y);
        }
        // `forward_with_state_lengths` writes `y` only on success; the final state goes
        // to a buffer first, so a failure leaves the state as it was.
        let mut fin = try_zeroed(state.data.len())?;
        self.forward_with_state_lengths(
            x,
            b,
            seq_len,
            Some(lengths),
            Some(&state.data),
            y,
            Some(&mut fin),
        )?;
        state.data.copy_from_slice(&fin);
        Ok(())
    }

    /// [`Model::forward_state`] after its shape checks (the state's model, `seq_len`
    /// against its block, the lengths of `x` and `y`), which the caller has made: the C
    /// ABI checks the same things once, with its own messages, and a per-sample call
    /// should not pay for them twice. Refuses non-finite input; nothing changes on error.
    #[inline(always)]
    pub(crate) fn forward_state_shaped(
        &self,
        state: &mut State,
        x: &[f32],
        seq_len: usize,
        y: &mut [f32],
    ) -> Result<()> {
        if self.config().bidirectional {
            return Err(streaming_bidirectional());
        }
        if self.layers.is_none() && self.is_audio_step(state, x, seq_len) {
            // Here rather than behind the calls below: a per-sample call pays for every
            // level it goes through. The state remembers that this model's checks
            // passed and that its steps take the fused path (`audio_ready`).
            state.note_audio(self);
            return self.audio_step(state, x, y);
        }
        match self.layers() {
            Some(ls) => crate::layers::forward_state(self, ls, state, x, seq_len, y),
            None => self.core_forward_state_shaped(state, x, seq_len, y),
        }
    }

    /// [`Model::forward_state_shaped`] of the recurrent stack and its head alone.
    pub(crate) fn core_forward_state_shaped(
        &self,
        state: &mut State,
        x: &[f32],
        seq_len: usize,
        y: &mut [f32],
    ) -> Result<()> {
        if self.is_audio_step(state, x, seq_len) {
            return self.audio_step(state, x, y);
        }
        if seq_len == 1
            && self.all_streams_fused
            && x.len() <= STEP_INPUTS_ON_STACK
            && self.per_stream_fused(state.batch)
        {
            // A few streams (stereo, a handful of voices): the audio case per stream.
            let mut buf = [0.0f32; STEP_INPUTS_ON_STACK];
            let xf = &mut buf[..x.len()];
            if !flush_finite_into(xf, x) {
                check_finite("x", x)?;
            }
            self.fused_steps(state, xf, y);
            return Ok(());
        }
        check_finite("x", x)?;
        if seq_len == 0 {
            return Ok(());
        }
        // Subnormal inputs (a fading tail of audio) would make every product with them
        // slow; they are flushed like the state.
        let mut xin = std::mem::take(&mut state.scratch.x);
        let xf = &mut xin[..x.len()];
        flush_into(xf, x);
        if let Some(ps) = state.proj.as_deref_mut() {
            crate::proj::stream_block(self, &mut state.data, ps, state.batch, xf, seq_len, y);
        } else if state.batch == 1 && seq_len == 1 {
            self.step_single(state, xf, y);
        } else {
            self.stream_block(state, xf, seq_len, y);
        }
        state.scratch.x = xin;
        Ok(())
    }

    /// Whether a per-sample step of `x_len` inputs and `y_len` outputs on `state` may go
    /// straight to [`Model::audio_step`]: the state has run one on this model, which has
    /// no dense layers, before (`audio_for`), so what that step's checks established (the
    /// state's config is the model's, one stream, the fused path with few inputs) still
    /// holds, and the lengths are the model's. Where not, the caller takes the whole path
    /// (or [`Model::audio_ready_layered`]), with its checks and messages; the bits are the
    /// same either way.
    #[inline(always)]
    pub(crate) fn audio_ready(&self, state: &State, x_len: usize, y_len: usize) -> bool {
        state.audio_for == self.id.get()
            && x_len == self.config().input_size
            && y_len == self.config().output_dim()
    }

    /// [`Model::audio_ready`] for a model with dense layers, whose step goes straight to
    /// [`crate::layers::audio_step_again`].
    #[inline(always)]
    pub(crate) fn audio_ready_layered(&self, state: &State, x_len: usize, y_len: usize) -> bool {
        state.audio_for == self.id.get() | 1
            && self.layers.as_deref().is_some_and(|ls| {
                x_len == ls.input_size(self.config()) && y_len == ls.output_size(self.config())
            })
    }

    /// Whether a call is the audio case: one timestep of one stream, few inputs, and
    /// every layer with a fused kernel (chosen for its shape when the weights were
    /// packed: the LSTM and linear-before-reset GRU at the audio sizes).
    #[inline(always)]
    pub(crate) fn is_audio_step(&self, state: &State, x: &[f32], seq_len: usize) -> bool {
        state.batch == 1
            && seq_len == 1
            && x.len() <= STEP_INPUTS_ON_STACK
            && self.all_streams_fused
    }

    /// The audio case ([`Model::is_audio_step`]): one pass checks and flushes the step's
    /// few inputs on the stack, then the fused kernels run without the general path's
    /// dispatch.
    #[inline(always)]
    pub(crate) fn audio_step(&self, state: &mut State, x: &[f32], y: &mut [f32]) -> Result<()> {
        let mut buf = [0.0f32; STEP_INPUTS_ON_STACK];
        let xf = &mut buf[..x.len()];
        if !flush_finite_into(xf, x) {
            check_finite("x", x)?;
        }
        self.fused_step(state, xf, y);
        Ok(())
    }

    /// One timestep of one stream where [`Model::is_audio_step`]: each layer's fused
    /// kernel ([`Model::fused_stream`]). The bits of [`Model::step_single`] (the same
    /// kernels); this path leaves out its general dispatch, which cost a quarter of an
    /// 8-unit step.
    #[inline(always)]
    fn fused_step(&self, state: &mut State, x: &[f32], y: &mut [f32]) {
        let cfg = self.config();
        let rev = state.sweep(1);
        if let Some(top) = self.kernel_makes_output() {
            // The state is the one layer's `h`, then (LSTM) its `c`.
            let (hk, ck) = state.data.split_at_mut(cfg.hidden_size);
            self.step_one_layer(top, x, rev, hk, ck, y);
            return;
        }
        let State { data, scratch, .. } = state;
        let (hst, cst) = data.split_at_mut(cfg.num_layers * cfg.hidden_size);
        self.fused_stream(hst, cst, &mut scratch.gates, (0, 1), rev, x, y);
    }

    /// [`Model::fused_step`] for each of a few streams (`per_stream_fused`): one
    /// timestep, `x` `[B][I]`, `y` `[B][O]`, each stream through the fused kernels alone
    /// (the bits it has alone), without the block path's dispatch, which cost about a
    /// third of a two-stream step at H = 16.
    fn fused_steps(&self, state: &mut State, x: &[f32], y: &mut [f32]) {
        let cfg = self.config();
        let (l, b) = (cfg.num_layers, state.batch);
        let (inp, o) = (cfg.input_size, cfg.output_dim());
        let rev = state.sweep(1);
        let State { data, scratch, .. } = state;
        let h = cfg.hidden_size;
        let (hst, cst) = data.split_at_mut(l * b * h);
        if let Some(top) = self.kernel_makes_output() {
            // Two streams stepped in 0.90-0.97 of the time at H = 8-32 this way (AMD EPYC
            // Zen 4, `AB_STREAMS=2`, 11 rounds, both orders).
            let lstm = !cst.is_empty();
            for (i, hk) in hst.chunks_exact_mut(h).enumerate() {
                let ck: &mut [f32] = if lstm {
                    &mut cst[i * h..(i + 1) * h]
                } else {
                    &mut []
                };
                let (xi, yi) = (&x[i * inp..(i + 1) * inp], &mut y[i * o..(i + 1) * o]);
                self.step_one_layer(top, xi, rev, hk, ck, yi);
            }
            return;
        }
        for i in 0..b {
            let (xi, yi) = (&x[i * inp..(i + 1) * inp], &mut y[i * o..(i + 1) * o]);
            self.fused_stream(hst, cst, &mut scratch.gates, (i, b), rev, xi, yi);
        }
    }

    /// The stack's one fused layer where it holds the model's one dense layer after the
    /// stack ([`crate::kernels::packed::StreamLayer::set_post`], given where that layer
    /// runs the dense layers' `dot`): a per-sample step of such a model
    /// ([`Model::audio_step_post`]) computes that layer's outputs from the new `h`
    /// straight after the kernel.
    #[inline(always)]
    pub(crate) fn post_fused(&self) -> Option<&StreamLayer> {
        match self.packed.as_slice() {
            [PackedLayer {
                stream: Some(top), ..
            }] if top.post_outputs().is_some() => Some(top),
            _ => None,
        }
    }

    /// The stack's one fused layer where the model has no head (a model with dense
    /// layers around such a stack steps it with [`Model::audio_step_state`]).
    #[inline(always)]
    pub(crate) fn stack_fused_bare(&self) -> Option<&StreamLayer> {
        match self.packed.as_slice() {
            [PackedLayer {
                stream: Some(top), ..
            }] if !self.config().has_head() => Some(top),
            _ => None,
        }
    }

    /// [`Model::audio_step`] for a model whose stack is one fused layer `top` without a
    /// head ([`Model::stack_fused_bare`]): `x` the stack's inputs (checked and flushed
    /// here, as the stack's step does; as few as [`Model::audio_step`] takes); the new
    /// `h` is the state's first `hidden_size` floats. The bits of the stack's step.
    #[inline(always)]
    pub(crate) fn audio_step_state(
        &self,
        state: &mut State,
        top: &StreamLayer,
        x: &[f32],
    ) -> Result<()> {
        let mut buf = [0.0f32; STEP_INPUTS_ON_STACK];
        let xf = &mut buf[..x.len()];
        if !flush_finite_into(xf, x) {
            check_finite("x", x)?;
        }
        let rev = state.sweep(1);
        // The state is the one layer's `h`, then (LSTM) its `c`.
        let (hk, ck) = state.data.split_at_mut(self.config().hidden_size);
        top.step_state(xf, rev, hk, ck);
        Ok(())
    }

    /// [`Model::audio_step_state`], then the dense layer after the stack that `top` holds
    /// ([`Model::post_fused`]) from the new `h` into `y` (before its activation): the
    /// layer's `dot` on the state.
    #[inline(always)]
    pub(crate) fn audio_step_post(
        &self,
        state: &mut State,
        top: &StreamLayer,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<()> {
        self.audio_step_state(state, top, x)?;
        top.post_dot(&state.data[..self.config().hidden_size], y);
        Ok(())
    }

    /// A one-layer model's fused kernel where it makes the model's output itself (the
    /// head inside it, or no head): the usual audio model, whose per-sample steps
    /// ([`Model::fused_step`], [`Model::fused_steps`]) then call it directly
    /// ([`Model::step_one_layer`]) instead of through [`Model::fused_stream`]'s layer
    /// loop. Without the loop's slicing and lookups a step through the C ABI took 0.87
    /// (LSTM, H = 8) to 0.93-0.98 (H = 16-64) of the time on AVX-512 and 0.80-0.94 on
    /// AVX2 at H = 8-32 (AMD EPYC Zen 4, `benches/c/ab.c`, 7 rounds, against 6c40b64);
    /// the same kernel call, so the same bits.
    #[inline(always)]
    fn kernel_makes_output(&self) -> Option<&StreamLayer> {
        match self.packed.as_slice() {
            [PackedLayer {
                stream: Some(top), ..
            }] if top.has_head() || !self.config().has_head() => Some(top),
            _ => None,
        }
    }

    /// One timestep of one stream through [`Model::kernel_makes_output`]'s kernel `top`:
    /// `hk` (and for the LSTM `ck`) its state, `y` the stream's outputs.
    #[inline(always)]
    fn step_one_layer(
        &self,
        top: &StreamLayer,
        x: &[f32],
        rev: bool,
        hk: &mut [f32],
        ck: &mut [f32],
        y: &mut [f32],
    ) {
        if top.has_head() {
            top.run_head(x, 1, rev, hk, ck, y);
            if self.config().output_activation == OutputActivation::Softmax {
                softmax_in_place(y);
            }
        } else {
            top.run(x, 1, rev, hk, ck, y);
        }
    }

    /// Stream `i` of `b` one timestep through each layer's fused kernel: `hst` and `cst`
    /// the state's `h` and `c` (`[L][B][H]`, `cst` empty for a cell without `c`), `x`
    /// the stream's inputs, `y` its outputs, `gates` room for a layer's `h` on its way to
    /// a head. The top layer writes `y` itself when there is no head, and runs a head of
    /// few outputs itself, on `h` in registers.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn fused_stream(
        &self,
        hst: &mut [f32],
        cst: &mut [f32],
        gates: &mut [f32],
        (i, b): (usize, usize),
        rev: bool,
        x: &[f32],
        y: &mut [f32],
    ) {
        let cfg = self.config();
        let (h, l) = (cfg.hidden_size, cfg.num_layers);
        let direct = !cfg.has_head();
        let head_in_kernel = self.head_in_kernel();
        for k in 0..l {
            // Stream i's rows of layer k, below them layer k - 1's.
            let at = (k * b + i) * h;
            let (below, here) = hst.split_at_mut(at);
            let input: &[f32] = if k == 0 {
                x
            } else if b == 1 {
                // One stream: the rest of `below` is layer k - 1's row itself. Sliced as a
                // bounded range here, the 8-16-unit steps took 2-5 % longer (Zen 4).
                &below[at - h..]
            } else {
                &below[at - b * h..][..h]
            };
            let (hk, ck) = (&mut here[..h], tail(cst, at));
            if k + 1 == l {
                if let Some(top) = head_in_kernel {
                    let ck = if ck.is_empty() { ck } else { &mut ck[..h] };
                    top.run_head(input, 1, rev, hk, ck, y);
                    if cfg.output_activation == OutputActivation::Softmax {
                        softmax_in_place(y);
                    }
                    return;
                }
            }
            let out = if direct && k + 1 == l {
                &mut *y
            } else {
                &mut gates[..h]
            };
            let ran = self.fused_layer(k, input, 1, rev, hk, ck, out);
            assert!(ran, "fused_stream: layer {k} has no fused kernel");
        }
        if !direct {
            self.stream_head(&hst[((l - 1) * b + i) * h..][..h], y, 1);
        }
    }

    /// One timestep of one stream: the real-time audio case, where the per-call overhead
    /// is a large part of the cost, so the block loops are left out. Same arithmetic as
    /// [`Model::stream_block`] with `B = T = 1`.
    fn step_single(&self, state: &mut State, x: &[f32], y: &mut [f32]) {
        let cfg = self.config();
        let (h, l) = (cfg.hidden_size, cfg.num_layers);
        let gh = cfg.cell.gates() * h;
        let rev = state.sweep(1);
        let State { data, scratch, .. } = state;
        let (hst, cst) = data.split_at_mut(l * h);
        let Scratch {
            gates,
            ghb,
            rh,
            hnew,
            ..
        } = scratch;
        let g = &mut gates[..gh];
        for k in 0..l {
            let pk = &self.packed[k];
            let (below, here) = hst.split_at_mut(k * h);
            let input: &[f32] = if k == 0 {
                x
            } else {
                &below[(k - 1) * h..k * h]
            };
            let hk = &mut here[..h];
            // The audio sizes: products and update in one fused kernel where the tier
            // has one (as a block of one step).
            let ck = tail(cst, k * h);
            if self.fused_layer(k, input, 1, rev, hk, ck, &mut g[..h]) {
                continue;
            }
            // Where the cell allows, bias and both products in one pass.
            let fused = matches!(
                cfg.cell,
                CellKind::Lstm | CellKind::RnnTanh | CellKind::RnnRelu
            );
            if fused {
                gemv2_packed(
                    self.folded_bias(k),
                    input,
                    &pk.w_ih_t,
                    hk,
                    &pk.w_hh_t,
                    g,
                    rev,
                );
            } else {
                // Summed as the block path sums it (the packed GEMM's order): the GEMV's
                // even/odd partial sums would make a step differ from a block of one.
                gemv_packed_bias(self.folded_bias(k), input, &pk.w_ih_t, g);
            }
            let work = StepWork { ghb, rh, hnew };
            self.state_step(k, 1, hk, ck, g, gh, work, !fused, rev);
        }
        self.stream_head(&hst[(l - 1) * h..], y, 1);
    }

    /// The block in chunks of timesteps ([`stream_chunk`]), and each chunk layer by
    /// layer: for each layer the input product of the chunk's rows of each stream is one
    /// packed GEMM (`bias + x · W_ihᵀ`), then per timestep one [`Model::state_step`] for
    /// all streams, whose new `h` rows are copied out as the next layer's input. The
    /// chunk's gate rows stay in L1 between the product and the steps that read them
    /// (one product for a whole 4096-sample block wrote 2 MB that every step then read
    /// back from L2). Rows are independent in the packed product, so the chunking changes
    /// no bit.
    fn stream_block(&self, state: &mut State, x: &[f32], t: usize, y: &mut [f32]) {
        let cfg = self.config();
        let (h, l, b) = (cfg.hidden_size, cfg.num_layers, state.batch);
        let gh = cfg.cell.gates() * h;
        let lbh = l * b * h;
        let rows = b * t;
        let rev0 = state.sweep(t);
        let State { data, scratch, .. } = state;
        let Scratch {
            gates,
            blk_a,
            blk_b,
            ghb,
            rh,
            hnew,
            ..
        } = scratch;
        let tc = stream_chunk(b, gh, t);
        let direct = self.head().is_none();
        // Streams that each run the fused kernels alone (`per_stream_fused`), the head
        // inside the top layer's kernel where it has one.
        let per_stream = self.per_stream_fused(b);
        let head_in_kernel = if per_stream {
            self.head_in_kernel()
        } else {
            None
        };
        for s0 in (0..t).step_by(tc) {
            let n = tc.min(t - s0);
            let gates = &mut gates[..b * n * gh];
            for k in 0..l {
                let pk = &self.packed[k];
                let (bias, inp) = (self.folded_bias(k), pk.w_ih_t.k());
                // Input of this layer and where its outputs go: x -> a -> b -> a ...,
                // and the top layer straight into `y` when there is no head.
                let (input, out): (&[f32], &mut [f32]) = if k + 1 == l && direct {
                    let input: &[f32] = match k {
                        0 => x,
                        k if k % 2 == 1 => &blk_a[..rows * h],
                        _ => &blk_b[..rows * h],
                    };
                    (input, &mut y[..rows * h])
                } else if k == 0 {
                    (x, &mut blk_a[..rows * h])
                } else if k % 2 == 1 {
                    (&blk_a[..rows * h], &mut blk_b[..rows * h])
                } else {
                    (&blk_b[..rows * h], &mut blk_a[..rows * h])
                };
                let (hst, cst) = data.split_at_mut(lbh);
                let hk = &mut hst[k * b * h..(k + 1) * b * h];
                let ck = tail(cst, k * b * h);
                // Streams of the audio sizes, one at a time: the chunk's steps, input
                // product included, in one fused kernel where the tier has one (for one
                // stream the same bits as the product and the loop below).
                let rev = rev0 ^ (s0 % 2 == 1);
                if k + 1 == l {
                    if let Some(top) = head_in_kernel {
                        let o = cfg.output_size;
                        for i in 0..b {
                            let x1 = &input[(i * t + s0) * inp..][..n * inp];
                            let ys = &mut y[(i * t + s0) * o..][..n * o];
                            let (hi, ci) = stream_rows(hk, ck, i, h);
                            top.run_head(x1, n, rev, hi, ci, ys);
                        }
                        continue;
                    }
                }
                if per_stream && self.packed[k].stream.is_some() {
                    for i in 0..b {
                        let x1 = &input[(i * t + s0) * inp..][..n * inp];
                        let oi = &mut out[(i * t + s0) * h..][..n * h];
                        let (hi, ci) = stream_rows(hk, ck, i, h);
                        self.fused_layer(k, x1, n, rev, hi, ci, oi);
                    }
                    continue;
                }
                if n == t {
                    // One chunk: every stream's rows, contiguous, in one product.
                    gemm_packed_bias(rows, input, inp, &pk.w_ih_t, gates, gh, bias);
                } else {
                    for i in 0..b {
                        let xi = &input[(i * t + s0) * inp..];
                        let gi = &mut gates[i * n * gh..(i + 1) * n * gh];
                        gemm_packed_bias(n, xi, inp, &pk.w_ih_t, gi, gh, bias);
                    }
                }
                for j in 0..n {
                    let s = s0 + j;
                    let work = StepWork { ghb, rh, hnew };
                    let rev = rev0 ^ (s % 2 == 1);
                    self.state_step(k, b, hk, ck, &mut gates[j * gh..], n * gh, work, true, rev);
                    for i in 0..b {
                        out[(i * t + s) * h..][..h].copy_from_slice(&hk[i * h..(i + 1) * h]);
                    }
                }
            }
        }
        if head_in_kernel.is_some() {
            if cfg.output_activation == OutputActivation::Softmax {
                for row in y[..rows * cfg.output_size].chunks_mut(cfg.output_size) {
                    softmax_in_place(row);
                }
            }
        } else if !direct {
            let top: &[f32] = if (l - 1) % 2 == 0 {
                &blk_a[..rows * h]
            } else {
                &blk_b[..rows * h]
            };
            self.stream_head(top, y, rows);
        }
    }

    /// Whether a block of `b` streams runs the fused single-stream kernels one stream at
    /// a time (in layers that have one) rather than the general path's products over
    /// all of them. For one stream always. For a few (stereo, a handful of voices) the
    /// batched products were slower per stream than the fused kernel run once per
    /// stream: a matrix of `b` rows is too small to pay for itself, while the fused
    /// kernel keeps its gates in registers. With many streams the batched products win
    /// (they read `W_hh` once for all of them), the sooner the larger `W_hh` is. Intel
    /// Xeon Emerald Rapids, `rnn_model_step` with `b` streams, this choice against the
    /// general path alternated in one process, time per stream (LSTM and GRU, `avx512`
    /// and `avx2`): H = 8-32, 2 streams 0.49-0.65, 4: 0.57-0.74, 8: 0.53-0.83, 16:
    /// 0.73-0.93; H = 40 (26 KiB of LSTM weights) 0.61-0.92 up to 4 streams but 1.00-1.07
    /// from 8 on `avx512`; H = 16 with 32-64 streams the general path was faster (57-60
    /// ns per stream against 69), and from H = 64 (64 KiB) from 2 streams on. Each
    /// stream's results are then the bits it has alone.
    #[inline]
    fn per_stream_fused(&self, b: usize) -> bool {
        let cfg = self.config();
        let w_hh = cfg.cell.gates() * cfg.hidden_size * cfg.hidden_size * 4;
        b == 1 || (b <= 16 && w_hh <= 16 << 10) || (b <= 4 && w_hh <= 32 << 10)
    }

    /// The top layer's fused kernel and the head, where a single stream's head runs
    /// inside that kernel ([`StreamLayer::run_head`]): a head of few outputs (the dot
    /// products of `stream_head`, so the same bits; see `run_head`).
    #[inline]
    fn head_in_kernel(&self) -> Option<&StreamLayer> {
        self.packed.last()?.stream.as_ref().filter(|s| s.has_head())
    }

    /// Steps of one stream through layer `k` in the fused kernels where they run (LSTM and
    /// linear-before-reset GRU where `stream_fused` (`kernels/packed/stream.rs`)): `input` holds one row per step
    /// (`steps` rows), `hk` (and for the LSTM `ck`) the state, updated; `out` receives
    /// each step's `h`. False, with nothing changed, elsewhere.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn fused_layer(
        &self,
        k: usize,
        input: &[f32],
        steps: usize,
        reverse: bool,
        hk: &mut [f32],
        ck: &mut [f32],
        out: &mut [f32],
    ) -> bool {
        let Some(stream) = &self.packed[k].stream else {
            return false;
        };
        let h = hk.len();
        let c = if ck.is_empty() { ck } else { &mut ck[..h] };
        stream.run(input, steps, reverse, hk, c, out);
        true
    }

    /// One timestep of layer `k` for `m` streams, in place on the state rows `hk`
    /// (`[m][H]`) and, for LSTM, `ck`: adds `h · W_hhᵀ` to the gate rows (`gates`, at
    /// stride `ldg`, which hold the bias and input parts) unless `product` is false (the
    /// caller added it; LSTM and RNN only), applies the cell, and stores
    /// the new state with values below [`FLUSH_BELOW`](crate::kernels::reference::FLUSH_BELOW) set to zero. One fused kernel
    /// per row for LSTM and the linear-before-reset GRU; the other cells go through
    /// [`recurrent_step`] and a flushing copy.
    #[allow(clippy::too_many_arguments)]
    fn state_step(
        &self,
        k: usize,
        m: usize,
        hk: &mut [f32],
        ck: &mut [f32],
        gates: &mut [f32],
        ldg: usize,
        work: StepWork<'_>,
        product: bool,
        reverse: bool,
    ) {
        let cfg = self.config();
        let h = cfg.hidden_size;
        let gh = cfg.cell.gates() * h;
        let pk = &self.packed[k];
        let hidden = |b: &PackedB, hk: &[f32], c: &mut [f32], ldc: usize, acc: bool| {
            if m == 1 {
                gemv_packed_sweep(hk, b, c, acc, reverse);
            } else {
                gemm_packed_sweep(m, hk, h, b, c, ldc, acc, reverse);
            }
        };
        match cfg.cell {
            CellKind::Lstm => {
                if product {
                    hidden(&pk.w_hh_t, hk, gates, ldg, true);
                }
                for i in 0..m {
                    let row = &gates[i * ldg..i * ldg + gh];
                    let (c, hr) = (&mut ck[i * h..(i + 1) * h], &mut hk[i * h..(i + 1) * h]);
                    activation::lstm_state(row, c, hr);
                }
            }
            CellKind::GruLbr => {
                let b_hn = &self.bias_hh(k)[2 * h..];
                let ghb = &mut work.ghb[..m * gh];
                hidden(&pk.w_hh_t, hk, ghb, gh, false);
                for i in 0..m {
                    let row = &gates[i * ldg..i * ldg + gh];
                    let ghr = &ghb[i * gh..(i + 1) * gh];
                    activation::gru_lbr_state(row, ghr, b_hn, &mut hk[i * h..(i + 1) * h]);
                }
            }
            CellKind::RnnTanh | CellKind::RnnRelu => {
                if product {
                    hidden(&pk.w_hh_t, hk, gates, ldg, true);
                }
                for i in 0..m {
                    let row = &mut gates[i * ldg..i * ldg + h];
                    rnn::forward(row, cfg.cell == CellKind::RnnRelu);
                    flush_into(&mut hk[i * h..(i + 1) * h], row);
                }
            }
            CellKind::Gru => {
                let out = &mut work.hnew[..m * h];
                let io = StepRows {
                    gates,
                    ldg,
                    h: out,
                    ldh: h,
                    prev_in_h: false,
                    c: &mut [],
                    ldc: h,
                    prev_in_c: false,
                    extra: tail(work.rh, 0),
                    lde: h,
                    gemv: m == 1,
                    reverse,
                };
                recurrent_step(self, k, m, hk, &[], io, work.ghb);
                flush_into(hk, out);
            }
        }
    }

    /// Outputs of `rows` top-layer rows: the head (and softmax) or `h` itself.
    fn stream_head(&self, top: &[f32], y: &mut [f32], rows: usize) {
        let cfg = self.config();
        let h = cfg.hidden_size;
        match self.head() {
            Some(hw) => {
                let o = cfg.output_size;
                dense_rows(
                    self.head_narrow,
                    top,
                    rows,
                    h,
                    hw.weight,
                    &self.head_t,
                    hw.bias,
                    &mut y[..rows * o],
                );
                if cfg.output_activation == OutputActivation::Softmax {
                    for row in y.chunks_mut(o) {
                        softmax_in_place(row);
                    }
                }
            }
            None => y.copy_from_slice(&top[..rows * h]),
        }
    }
}
