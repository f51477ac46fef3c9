#![forbid(unsafe_code)]
//! Streaming: a [`State`] carries `h` (and `c`) of `batch` independent streams across
//! calls, plus every scratch buffer a step needs, so [`Model::step`] and
//! [`Model::forward_state`] allocate nothing, take no lock and run in time bounded by
//! the block length: safe on an audio thread.

use crate::cell::{gru, lstm, rnn};
use crate::config::{CellKind, ModelConfig, OutputActivation};
use crate::error::{check_finite, check_len, checked_size, invalid, Error, Result};
use crate::forward::softmax_in_place;
use crate::kernels::gemv::matvec_t_acc;
use crate::model::Model;

/// The carried state of `batch` streams of one model, with its scratch space.
///
/// Snapshot layout (as PyTorch returns state): `h` as `[num_layers][batch][H]`, then for
/// LSTM `c` as `[num_layers][batch][H]`.
#[derive(Clone, Debug)]
pub struct State {
    config: ModelConfig,
    batch: usize,
    max_block: usize,
    data: Vec<f32>,
    scratch: Scratch,
}

#[derive(Clone, Debug)]
struct Scratch {
    gates: Vec<f32>,
    h: Vec<f32>,
    c: Vec<f32>,
    rh: Vec<f32>,
    cur: Vec<f32>,
}

impl State {
    /// A zero state for `batch` streams, for single steps (`max_block = 1`).
    pub fn new(model: &Model, batch: usize) -> Result<State> {
        State::with_block(model, batch, 1)
    }

    /// A zero state for `batch` streams and blocks of up to `max_block` timesteps.
    pub fn with_block(model: &Model, batch: usize, max_block: usize) -> Result<State> {
        let cfg = *model.config();
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
        let mut data = Vec::new();
        data.try_reserve_exact(len)
            .map_err(|_| Error::Alloc(format!("state of {len} floats")))?;
        data.resize(len, 0.0);
        Ok(State {
            config: cfg,
            batch,
            max_block,
            data,
            scratch: Scratch {
                gates: vec![0.0; cfg.cell.gates() * h],
                h: vec![0.0; h],
                c: vec![0.0; h],
                rh: vec![0.0; h],
                cur: vec![0.0; h],
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
        let h = self.config.hidden_size;
        let planes = self.data.len() / (self.batch * h);
        for p in 0..planes {
            let o = (p * self.batch + stream) * h;
            self.data[o..o + h].fill(0.0);
        }
        Ok(())
    }

    /// Errors unless this state was made for a model of `cfg`.
    pub(crate) fn check_model(&self, cfg: &ModelConfig) -> Result<()> {
        if self.config != *cfg {
            return Err(invalid!(
                "state was made for a model with config {:?}, not {:?}",
                self.config,
                cfg
            ));
        }
        Ok(())
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
        self.forward_state(state, x, 1, y)
    }

    /// Runs a block of `seq_len` timesteps (`<= state.max_block()`) from `state` and leaves
    /// the final state in it. `x` is `[batch][seq_len][input_size]`, `y` receives
    /// `[batch][seq_len][output_size]`. No allocation, no lock. On error nothing changes.
    pub fn forward_state(
        &self,
        state: &mut State,
        x: &[f32],
        seq_len: usize,
        y: &mut [f32],
    ) -> Result<()> {
        let cfg = *self.config();
        state.check_model(&cfg)?;
        if seq_len > state.max_block {
            return Err(invalid!(
                "seq_len is {seq_len}, but the state was made for blocks of at most {}",
                state.max_block
            ));
        }
        let b = state.batch;
        let (i_sz, o_sz) = (cfg.input_size, cfg.output_dim());
        check_len("x", x.len(), b * seq_len * i_sz)?;
        check_len("y", y.len(), b * seq_len * o_sz)?;
        check_finite("x", x)?;
        for s in 0..b {
            for t in 0..seq_len {
                let xt = &x[(s * seq_len + t) * i_sz..(s * seq_len + t + 1) * i_sz];
                let yt = &mut y[(s * seq_len + t) * o_sz..(s * seq_len + t + 1) * o_sz];
                self.stream_step(state, s, xt, yt);
            }
        }
        Ok(())
    }

    /// One timestep of stream `s`, all layers and the head.
    fn stream_step(&self, state: &mut State, s: usize, x: &[f32], y: &mut [f32]) {
        let cfg = self.config();
        let (h, l, b) = (cfg.hidden_size, cfg.num_layers, state.batch);
        let gh = cfg.cell.gates() * h;
        let lbh = l * b * h;
        let State { data, scratch, .. } = state;
        let Scratch {
            gates,
            h: hnew,
            c: cnew,
            rh,
            cur,
        } = scratch;
        for k in 0..l {
            let packed = &self.packed[k];
            gates.copy_from_slice(self.folded_bias(k));
            let input: &[f32] = if k == 0 { x } else { cur };
            matvec_t_acc(&packed.w_ih_t, gh, 0, input, gates);
            let o = (k * b + s) * h;
            let hp = &data[o..o + h];
            match cfg.cell {
                CellKind::RnnTanh | CellKind::RnnRelu => {
                    matvec_t_acc(&packed.w_hh_t, gh, 0, hp, gates);
                    rnn::forward(gates, cfg.cell == CellKind::RnnRelu);
                    hnew.copy_from_slice(gates);
                }
                CellKind::Lstm => {
                    matvec_t_acc(&packed.w_hh_t, gh, 0, hp, gates);
                    lstm::forward(gates, &data[lbh + o..lbh + o + h], cnew, hnew);
                    data[lbh + o..lbh + o + h].copy_from_slice(cnew);
                }
                CellKind::GruLbr => {
                    matvec_t_acc(&packed.w_hh_t, gh, 0, hp, &mut gates[..2 * h]);
                    rh.copy_from_slice(&self.layer(k).b_hh[2 * h..]);
                    matvec_t_acc(&packed.w_hh_t, gh, 2 * h, hp, rh);
                    gru::forward_lbr(gates, rh, hp, hnew);
                }
                CellKind::Gru => {
                    matvec_t_acc(&packed.w_hh_t, gh, 0, hp, &mut gates[..2 * h]);
                    gru::forward_notes_rz(gates, hp, rh);
                    matvec_t_acc(&packed.w_hh_t, gh, 2 * h, rh, &mut gates[2 * h..]);
                    gru::forward_notes_n(gates, hp, hnew);
                }
            }
            data[o..o + h].copy_from_slice(hnew);
            cur.copy_from_slice(hnew);
        }
        match self.head() {
            Some(hw) => {
                for (q, yq) in y.iter_mut().enumerate() {
                    let row = &hw.weight[q * h..(q + 1) * h];
                    *yq = hw.bias[q] + row.iter().zip(cur.iter()).map(|(a, b)| a * b).sum::<f32>();
                }
                if cfg.output_activation == OutputActivation::Softmax {
                    softmax_in_place(y);
                }
            }
            None => y.copy_from_slice(cur),
        }
    }
}
