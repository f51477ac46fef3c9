#![forbid(unsafe_code)]
//! How rnncore learns: a recorded forward ([`crate::Tape`]), BPTT ([`Model::backward`]),
//! losses, optimizers and clipping, and a [`Trainer`] that runs one optimizer step per
//! batch. A step whose inputs, targets, gradients or update are not finite is refused
//! and leaves the weights and the optimizer state unchanged.

pub(crate) mod bptt;
pub mod loss;
pub(crate) mod optim;

use crate::buffers::fit;
use crate::error::{check_finite, check_len, invalid, Error, Result};
use crate::forward::{ForwardScratch, Tape};
use crate::model::Model;
use crate::state::State;
use crate::ModelConfig;
pub use bptt::Gradients;
use bptt::{BackwardWork, OutputGrad};
pub use loss::Targets;
use optim::OptimState;
pub use optim::{clip_grad_norm, global_norm, Optimizer, TrainConfig};

/// Optimizer state for one model, and the step that trains it.
///
/// ```
/// use rnncore::{CellKind, Model, ModelConfig, Targets, TrainConfig, Trainer};
/// let mut model = Model::new(ModelConfig::new(CellKind::Lstm, 1, 8, 1).with_head(1, Default::default()), 3)?;
/// let mut trainer = Trainer::new(&model, TrainConfig::adam(0.01))?;
/// let x = [0.0f32, 1.0, 0.0, 0.0]; // batch 1, 4 steps
/// let target = [0.0f32, 0.0, 1.0, 0.0]; // the input delayed by one step
/// let first = trainer.step_mse(&mut model, None, &x, 1, 4, &target, Targets::EveryStep)?;
/// let mut last = first;
/// for _ in 0..50 {
///     last = trainer.step_mse(&mut model, None, &x, 1, 4, &target, Targets::EveryStep)?;
/// }
/// assert!(last < first);
/// # Ok::<(), rnncore::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Trainer {
    config: TrainConfig,
    model_config: ModelConfig,
    optim: OptimState,
    last_grad_norm: f64,
    /// Seeds the dropout masks between layers (see [`Trainer::set_dropout_seed`]).
    dropout_seed: u64,
    work: Work,
}

/// The buffers of a step (tape, scratch, loss gradient, gradients), kept from one step to
/// the next so that steps after the first allocate nothing large: fresh buffers cost
/// page faults and zeroing (about 15% of a small step). They hold no state between
/// steps: every element is written before it is read, so results are those of fresh
/// buffers, bit for bit. A clone starts with empty buffers.
#[derive(Default)]
struct Work {
    tape: Option<Tape>,
    forward: ForwardScratch,
    backward: BackwardWork,
    d_outputs: Vec<f32>,
}

impl Clone for Work {
    fn clone(&self) -> Work {
        Work::default()
    }
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Work").finish_non_exhaustive()
    }
}

impl Trainer {
    /// A trainer for `model` (checked against the model's config at every step).
    pub fn new(model: &Model, config: TrainConfig) -> Result<Trainer> {
        config.validate()?;
        Ok(Trainer {
            config,
            model_config: *model.config(),
            optim: OptimState::default(),
            last_grad_norm: 0.0,
            dropout_seed: 0,
            work: Work::default(),
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Optimizer steps taken so far.
    pub fn steps(&self) -> u64 {
        self.optim.step
    }

    /// Seeds the dropout masks of a model with dropout between layers
    /// ([`crate::Model::with_dropout`]); 0 for a new trainer. Step `n` (counted by
    /// [`Trainer::steps`], before the step) uses masks seeded by a hash of `(seed, n)`
    /// ([`crate::Model::forward_train_dropout`] with that seed), so a run is reproducible
    /// from its seed, and the masks do not depend on the number of threads. A step that
    /// fails leaves the counter, so it is retried with the same masks.
    pub fn set_dropout_seed(&mut self, seed: u64) {
        self.dropout_seed = seed;
    }

    /// The dropout seed (see [`Trainer::set_dropout_seed`]).
    pub fn dropout_seed(&self) -> u64 {
        self.dropout_seed
    }

    /// Global L2 norm of the last step's gradient, before clipping.
    pub fn last_grad_norm(&self) -> f64 {
        self.last_grad_norm
    }

    /// One step on an MSE loss. `target`: `[B][T][O]` (every step) or `[B][O]` (last step).
    /// `state`: `None` starts from zeros; `Some` starts from it and, on success, leaves the
    /// final state in it (truncated BPTT: gradients stop at the chunk boundary).
    /// Returns the loss before the update.
    #[allow(clippy::too_many_arguments)]
    pub fn step_mse(
        &mut self,
        model: &mut Model,
        state: Option<&mut State>,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        target: &[f32],
        targets: Targets,
    ) -> Result<f32> {
        self.step_mse_lengths(model, state, x, batch, seq_len, None, target, targets)
    }

    /// [`Trainer::step_mse`] on a padded batch of sequences of different lengths
    /// (`None`: every sequence is `seq_len` long, exactly `step_mse`). Sequence `b` has
    /// `lengths[b]` valid steps (`1..=seq_len`, see [`Model::forward_with_state_lengths`]);
    /// the loss is [`loss::mse_lengths`]: the mean over the valid steps' elements only
    /// (targets past a length are ignored; with [`Targets::LastStep`] each sequence's
    /// target is compared with its output at its own last step), and padded steps get
    /// no gradient. With `state`, each sequence's state after its own last step is left
    /// in it. Errors (nothing changes): lengths not of `batch` entries, a length of 0 or
    /// over `seq_len`, and everything `step_mse` refuses.
    #[allow(clippy::too_many_arguments)]
    pub fn step_mse_lengths(
        &mut self,
        model: &mut Model,
        state: Option<&mut State>,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        lengths: Option<&[usize]>,
        target: &[f32],
        targets: Targets,
    ) -> Result<f32> {
        let w = model.output_size();
        self.step_with(
            model,
            state,
            x,
            batch,
            seq_len,
            lengths,
            |out, d| match lengths {
                None => loss::mse(out, batch, seq_len, w, target, targets, d),
                Some(ls) => loss::mse_lengths(out, batch, seq_len, w, ls, target, targets, d),
            },
        )
    }

    /// One step on the softmax cross-entropy of the outputs (logits). `labels`: `[B][T]`
    /// or `[B]`, class indices, `-1` ignored. Otherwise as [`Trainer::step_mse`].
    #[allow(clippy::too_many_arguments)]
    pub fn step_cross_entropy(
        &mut self,
        model: &mut Model,
        state: Option<&mut State>,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        labels: &[i32],
        targets: Targets,
    ) -> Result<f32> {
        self.step_cross_entropy_lengths(model, state, x, batch, seq_len, None, labels, targets)
    }

    /// [`Trainer::step_cross_entropy`] on a padded batch of sequences of different
    /// lengths (`None`: exactly `step_cross_entropy`); the loss is
    /// [`loss::cross_entropy_lengths`]: labels past a length are ignored (as `-1`), the
    /// mean is over the counted labels of valid steps. Otherwise as
    /// [`Trainer::step_mse_lengths`].
    #[allow(clippy::too_many_arguments)]
    pub fn step_cross_entropy_lengths(
        &mut self,
        model: &mut Model,
        state: Option<&mut State>,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        lengths: Option<&[usize]>,
        labels: &[i32],
        targets: Targets,
    ) -> Result<f32> {
        let w = model.output_size();
        self.step_with(
            model,
            state,
            x,
            batch,
            seq_len,
            lengths,
            |out, d| match lengths {
                None => loss::cross_entropy(out, batch, seq_len, w, labels, targets, d),
                Some(ls) => {
                    loss::cross_entropy_lengths(out, batch, seq_len, w, ls, labels, targets, d)
                }
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn step_with(
        &mut self,
        model: &mut Model,
        state: Option<&mut State>,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        lengths: Option<&[usize]>,
        loss_fn: impl FnOnce(&[f32], &mut [f32]) -> Result<f32> + Send,
    ) -> Result<f32> {
        let macs = model
            .macs_per_row()
            .saturating_mul(3)
            .saturating_mul(batch.saturating_mul(seq_len));
        crate::parallel::install_work(macs, || {
            self.step_in_pool(model, state, x, batch, seq_len, lengths, loss_fn)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn step_in_pool(
        &mut self,
        model: &mut Model,
        state: Option<&mut State>,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        lengths: Option<&[usize]>,
        loss_fn: impl FnOnce(&[f32], &mut [f32]) -> Result<f32>,
    ) -> Result<f32> {
        self.check_model(model)?;
        if let Some(s) = &state {
            s.check_model(model.config())?;
            if s.batch() != batch {
                return Err(invalid!(
                    "batch is {batch}, but the state holds {} streams",
                    s.batch()
                ));
            }
        }
        let init = state.as_ref().map(|s| s.as_slice());
        if model.layers().is_some()
            || model.config().is_composed()
            || lengths.is_some()
            || model.dropout_active()
        {
            // Dense layers around the stack, a composed stack (bidirectional, projections),
            // lengths or dropout: the public pieces, with fresh buffers.
            let seed = crate::dropout::step_seed(self.dropout_seed, self.steps());
            let tape = model.forward_train_dropout(x, batch, seq_len, lengths, init, seed)?;
            let out = tape.outputs();
            let mut d = vec![0.0f32; out.len()];
            let loss = loss_fn(out, &mut d)?;
            if !loss.is_finite() {
                return Err(Error::NonFinite(format!(
                    "the loss is {loss}; weights left unchanged"
                )));
            }
            if state.is_some() {
                check_finite("final state", tape.final_state())?;
            }
            let mut g = model.backward(&tape, &d, None, false)?;
            self.last_grad_norm = apply(&self.config, &mut self.optim, model, &mut g.params)?;
            if let Some(s) = state {
                s.set(tape.final_state())?;
            }
            return Ok(loss);
        }
        let Work {
            tape,
            forward,
            backward,
            d_outputs: d,
        } = &mut self.work;
        let tape = tape.get_or_insert_with(|| Tape::empty(*model.config()));
        model.forward_train_into(x, batch, seq_len, init, tape, forward)?;
        let out = tape.outputs();
        // The losses write every element (zeros where no target).
        fit(d, out.len())?;
        let loss = loss_fn(out, d)?;
        if !loss.is_finite() {
            return Err(Error::NonFinite(format!(
                "the loss is {loss}; weights left unchanged"
            )));
        }
        // Checked before anything changes: a state that cannot be handed back must not
        // leave the weights updated behind an error.
        if state.is_some() {
            check_finite("final state", tape.final_state())?;
        }
        // The trainer has no use for ∂L/∂x: the first layer skips that product.
        // The loss is finite, so is every element of `d` (see `OutputGrad::FromLoss`).
        model.backward_into(tape, OutputGrad::FromLoss(d), None, false, false, backward)?;
        self.last_grad_norm = apply(&self.config, &mut self.optim, model, &mut backward.grads)?;
        if let Some(s) = state {
            s.set(tape.final_state())?;
        }
        Ok(loss)
    }

    /// Clips (when configured) and applies parameter gradients computed elsewhere, e.g.
    /// by [`Model::backward`] in an encoder-decoder. Refuses non-finite gradients or
    /// updates, leaving the model and the optimizer state unchanged.
    pub fn apply_gradients(&mut self, model: &mut Model, mut grads: Vec<f32>) -> Result<()> {
        self.check_model(model)?;
        self.last_grad_norm = apply(&self.config, &mut self.optim, model, &mut grads)?;
        Ok(())
    }

    fn check_model(&self, model: &Model) -> Result<()> {
        if *model.config() != self.model_config {
            return Err(invalid!(
                "trainer was made for a model with config {}, not {}",
                self.model_config,
                model.config()
            ));
        }
        Ok(())
    }
}

/// Clips (when configured) and applies `grads` (clipped in place); returns the norm
/// before clipping. Refuses non-finite gradients or updates, leaving the model and
/// `optim` unchanged.
fn apply(
    config: &TrainConfig,
    optim: &mut OptimState,
    model: &mut Model,
    grads: &mut [f32],
) -> Result<f64> {
    check_len("gradients", grads.len(), model.parameters().len())?;
    crate::parallel::check_finite_par("gradients", grads)
        .map_err(|e| Error::NonFinite(format!("{}; weights left unchanged", e.message())))?;
    let norm = if config.clip_norm > 0.0 {
        clip_grad_norm(grads, config.clip_norm)
    } else {
        global_norm(grads)
    };
    optim::update(config, optim, model.parameters_mut(), grads)?;
    model.refresh_derived();
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CellKind, OutputActivation};

    fn vals(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i + 31 * seed) * 7919) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// A trainer reuses its buffers across steps. Filled with NaN before every step, with
    /// shapes that grow and shrink and a thread count that changes the batch chunking,
    /// they must still give exactly the bits of the public pieces (`forward_train`,
    /// `backward`, `apply_gradients`) on fresh buffers and one thread: nothing is read
    /// before it is written, and skipping `∂L/∂x` changes nothing else.
    #[test]
    fn reused_buffers_give_the_bits_of_fresh_ones() {
        let cells = [
            CellKind::Lstm,
            CellKind::Gru,
            CellKind::GruLbr,
            CellKind::RnnTanh,
            CellKind::RnnRelu,
        ];
        let pools: Vec<rayon::ThreadPool> = [1, 3, 2]
            .iter()
            .map(|&n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .unwrap()
            })
            .collect();
        let one = &pools[0];
        // Narrow layers, and wide ones (their weight gradients by GEMM, not outer sums).
        for (cell, (i, hs)) in cells.into_iter().flat_map(|c| [(c, (3, 5)), (c, (40, 60))]) {
            for (layers, head) in [(1, false), (2, true), (3, false)] {
                let mut cfg = ModelConfig::new(cell, i, hs, layers);
                if head {
                    cfg = cfg.with_head(2, OutputActivation::Identity);
                }
                let o = cfg.output_dim();
                let mut reused = Model::new(cfg, 11).unwrap();
                let mut fresh = reused.clone();
                let tc = TrainConfig::adam(0.05).with_clip(0.5);
                let mut tr = Trainer::new(&reused, tc).unwrap();
                let mut tf = Trainer::new(&fresh, tc).unwrap();
                for (step, (b, t)) in [(4, 6), (3, 5), (5, 7), (2, 3)].into_iter().enumerate() {
                    let x = vals(b * t * i, step);
                    let y = vals(b * t * o, step + 7);
                    let pool = &pools[step % pools.len()];
                    if let Some(tape) = &mut tr.work.tape {
                        tape.poison();
                    }
                    tr.work.forward.poison();
                    tr.work.backward.poison();
                    tr.work.d_outputs.fill(f32::NAN);
                    // These shapes are far below the size at which a call splits.
                    let lr = pool.install(|| {
                        crate::parallel::with_small_work(0, || {
                            tr.step_mse(&mut reused, None, &x, b, t, &y, Targets::EveryStep)
                        })
                    });
                    // The public pieces, each with fresh buffers, on one thread.
                    let lf = one.install(|| -> Result<f32> {
                        let tape = fresh.forward_train(&x, b, t, None)?;
                        let mut d = vec![0.0; tape.outputs().len()];
                        let loss =
                            loss::mse(tape.outputs(), b, t, o, &y, Targets::EveryStep, &mut d)?;
                        let g = fresh.backward(&tape, &d, None, false)?;
                        tf.apply_gradients(&mut fresh, g.params)?;
                        Ok(loss)
                    });
                    let what = format!("{cell:?} layers {layers} head {head} step {step}");
                    assert_eq!(lr.unwrap().to_bits(), lf.unwrap().to_bits(), "{what}");
                    assert_eq!(
                        tr.last_grad_norm().to_bits(),
                        tf.last_grad_norm().to_bits(),
                        "{what}"
                    );
                    assert_eq!(
                        bits(reused.parameters()),
                        bits(fresh.parameters()),
                        "{what}"
                    );
                }
            }
        }
    }
}
