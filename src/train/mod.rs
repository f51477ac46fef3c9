#![forbid(unsafe_code)]
//! How rnncore learns: a recorded forward ([`crate::Tape`]), BPTT ([`Model::backward`]),
//! losses, optimizers and clipping, and a [`Trainer`] that runs one optimizer step per
//! batch. A step whose inputs, targets, gradients or update are not finite is refused
//! and leaves the weights and the optimizer state unchanged.

pub mod bptt;
pub mod loss;
pub mod optim;

use crate::error::{check_finite, check_len, invalid, Error, Result};
use crate::forward::try_zeroed;
use crate::model::Model;
use crate::state::State;
use crate::ModelConfig;
pub use bptt::Gradients;
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
        let w = model.output_size();
        self.step_with(model, state, x, batch, seq_len, |out, d| {
            loss::mse(out, batch, seq_len, w, target, targets, d)
        })
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
        let w = model.output_size();
        self.step_with(model, state, x, batch, seq_len, |out, d| {
            loss::cross_entropy(out, batch, seq_len, w, labels, targets, d)
        })
    }

    fn step_with(
        &mut self,
        model: &mut Model,
        state: Option<&mut State>,
        x: &[f32],
        batch: usize,
        seq_len: usize,
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
        let tape = model.forward_train(x, batch, seq_len, init)?;
        let out = tape.outputs();
        let mut d = try_zeroed(out.len())?;
        let loss = loss_fn(out, &mut d)?;
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
        let grads = model.backward(&tape, &d, None, false)?;
        self.apply_gradients(model, grads.params)?;
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
        check_len("gradients", grads.len(), model.parameters().len())?;
        check_finite("gradients", &grads)
            .map_err(|e| Error::NonFinite(format!("{}; weights left unchanged", e.message())))?;
        let norm = if self.config.clip_norm > 0.0 {
            clip_grad_norm(&mut grads, self.config.clip_norm)
        } else {
            global_norm(&grads)
        };
        optim::update(
            &self.config,
            &mut self.optim,
            model.parameters_mut(),
            &grads,
        )?;
        self.last_grad_norm = norm;
        model.refresh_derived();
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
