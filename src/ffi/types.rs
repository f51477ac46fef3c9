//! The C ABI's value types: status, enums and the two config structs. Their names,
//! numbers and field types are fixed by `shared/API.md`; numbers are never reused.

use crate::config::{CellKind, ModelConfig, OutputActivation};
use crate::ffi::boundary::{Failure, FfiResult};
use crate::train::{Optimizer, TrainConfig};

/// What every fallible function returns. Results come back through out-pointers; on
/// failure nothing the caller owns has changed and `rnn_last_error()` says why.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum rnn_status {
    /// Success.
    RNN_OK = 0,
    /// A required pointer was NULL.
    RNN_ERR_NULL = 1,
    /// A size, enum value or option is out of range or does not match the model.
    RNN_ERR_INVALID = 2,
    /// A file could not be opened, read or written.
    RNN_ERR_IO = 3,
    /// Not a valid model file: corrupt, truncated, wrong dtype/shape, missing tensor.
    RNN_ERR_FORMAT = 4,
    /// NaN/Inf in inputs or targets, or produced by a training step (weights left unchanged).
    RNN_ERR_NONFINITE = 5,
    /// Memory could not be allocated.
    RNN_ERR_ALLOC = 6,
    /// Internal error caught at the boundary: a bug, please report it.
    RNN_ERR_PANIC = 7,
}

/// An `rnn_status` passed in from C, read as a plain integer so that any value the caller
/// passes (even one outside the enum) is defined behaviour. The header calls it
/// `rnn_status` (see `cbindgen.toml`: renamed, and its own typedef excluded).
pub type rnn_status_value = u32;

/// The recurrent cell of every layer (`rnn_config.cell`).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum rnn_cell {
    /// `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    RNN_CELL_RNN_TANH = 0,
    /// As RNN_CELL_RNN_TANH with relu.
    RNN_CELL_RNN_RELU = 1,
    /// LSTM, gate order i, f, g, o (PyTorch).
    RNN_CELL_LSTM = 2,
    /// GRU with the reset applied before the product, as in the notes (Cho et al. 2014).
    RNN_CELL_GRU = 3,
    /// GRU, linear before reset: PyTorch / cuDNN / ONNX linear_before_reset=1.
    RNN_CELL_GRU_LBR = 4,
}

/// What forward and step apply to the head's outputs (`rnn_config.output_activation`).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum rnn_output {
    /// Outputs are the head's pre-activation.
    RNN_OUTPUT_IDENTITY = 0,
    /// Softmax over each timestep's outputs (needs a head: output_size > 0).
    RNN_OUTPUT_SOFTMAX = 1,
}

/// The shape of a model.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct rnn_config {
    /// An rnn_cell.
    pub cell: u32,
    /// I >= 1: features per timestep.
    pub input_size: u32,
    /// H >= 1.
    pub hidden_size: u32,
    /// >= 1.
    pub num_layers: u32,
    /// 0: no head, outputs are the top layer's h_t; else a dense head H -> output_size.
    pub output_size: u32,
    /// An rnn_output, applied by forward/step; training losses use the pre-activation.
    pub output_activation: u32,
}

/// The update rule (`rnn_train_config.optimizer`).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum rnn_optimizer {
    /// SGD with optional momentum.
    RNN_OPT_SGD = 0,
    /// Adam; weight decay is L2 added to the gradient.
    RNN_OPT_ADAM = 1,
    /// AdamW; weight decay is decoupled.
    RNN_OPT_ADAMW = 2,
}

/// Training hyperparameters.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct rnn_train_config {
    /// An rnn_optimizer.
    pub optimizer: u32,
    /// >= 0, finite.
    pub learning_rate: f32,
    /// SGD only, in [0, 1); 0 = plain SGD (PyTorch semantics, no dampening, no nesterov).
    pub momentum: f32,
    /// Adam/AdamW, in [0, 1); PyTorch's default 0.9.
    pub beta1: f32,
    /// Adam/AdamW, in [0, 1); PyTorch's default 0.999.
    pub beta2: f32,
    /// Adam/AdamW, > 0; PyTorch's default 1e-8.
    pub eps: f32,
    /// >= 0. SGD/Adam: L2 added to the gradient; AdamW: decoupled.
    pub weight_decay: f32,
    /// > 0: scale gradients so their global L2 norm <= clip_norm (clip_grad_norm_); 0: off.
    pub clip_norm: f32,
}

/// The loss of a training step (rnn_trainer_step_mse or rnn_trainer_step_xent).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum rnn_loss {
    /// Mean squared error (torch.nn.MSELoss).
    RNN_LOSS_MSE = 0,
    /// Softmax cross-entropy on the logits (torch.nn.CrossEntropyLoss(ignore_index=-1)).
    RNN_LOSS_CROSS_ENTROPY = 1,
}

/// Which timesteps carry targets (the `targets` argument of the training steps).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum rnn_targets {
    /// A target at every timestep: [batch][seq_len][...].
    RNN_TARGETS_EVERY_STEP = 0,
    /// A target at the last timestep only: [batch][...].
    RNN_TARGETS_LAST_STEP = 1,
}

/// The ABI generation of this header. Bumped only by an incompatible change to the
/// contract (a new major version); additions keep it. Compare with rnn_abi_version().
pub const RNN_ABI_VERSION: u32 = 1;

impl rnn_config {
    /// The Rust config, or `RNN_ERR_INVALID` naming the field. Sizes are checked by
    /// `Model::new`.
    pub(crate) fn to_model_config(self) -> FfiResult<ModelConfig> {
        let cell = CellKind::from_u32(self.cell).ok_or_else(|| {
            Failure::invalid(format!(
                "config->cell is {}, expected 0..=4 (an rnn_cell)",
                self.cell
            ))
        })?;
        let output_activation =
            OutputActivation::from_u32(self.output_activation).ok_or_else(|| {
                Failure::invalid(format!(
                    "config->output_activation is {}, expected 0 or 1 (an rnn_output)",
                    self.output_activation
                ))
            })?;
        Ok(ModelConfig {
            cell,
            input_size: self.input_size as usize,
            hidden_size: self.hidden_size as usize,
            num_layers: self.num_layers as usize,
            output_size: self.output_size as usize,
            output_activation,
            // `rnn_config` has no such field: C callers get unidirectional models.
            bidirectional: false,
            proj_size: 0,
        })
    }

    /// The C view of a (validated) Rust config. Every size fits in `u32` because
    /// `ModelConfig::validate` bounds them by `MAX_DIM` and `MAX_LAYERS`.
    pub(crate) fn from_model_config(c: &ModelConfig) -> rnn_config {
        let narrow = |v: usize| u32::try_from(v).expect("validated sizes fit in u32");
        rnn_config {
            cell: c.cell as u32,
            input_size: narrow(c.input_size),
            hidden_size: narrow(c.hidden_size),
            num_layers: narrow(c.num_layers),
            output_size: narrow(c.output_size),
            output_activation: c.output_activation as u32,
        }
    }
}

impl rnn_train_config {
    /// The Rust config, or `RNN_ERR_INVALID` naming the field. Ranges are checked by
    /// `Trainer::new`.
    pub(crate) fn to_train_config(self) -> FfiResult<TrainConfig> {
        let optimizer = Optimizer::from_u32(self.optimizer).ok_or_else(|| {
            Failure::invalid(format!(
                "config->optimizer is {}, expected 0..=2 (an rnn_optimizer)",
                self.optimizer
            ))
        })?;
        Ok(TrainConfig {
            optimizer,
            learning_rate: self.learning_rate,
            momentum: self.momentum,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            clip_norm: self.clip_norm,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_numbers_match_the_rust_api() {
        for c in CellKind::ALL {
            assert_eq!(
                rnn_config::from_model_config(&ModelConfig::new(c, 1, 1, 1)).cell,
                c as u32
            );
        }
        assert_eq!(rnn_cell::RNN_CELL_GRU_LBR as u32, CellKind::GruLbr as u32);
        assert_eq!(rnn_cell::RNN_CELL_LSTM as u32, CellKind::Lstm as u32);
        assert_eq!(
            rnn_output::RNN_OUTPUT_SOFTMAX as u32,
            OutputActivation::Softmax as u32
        );
        assert_eq!(rnn_optimizer::RNN_OPT_ADAMW as u32, Optimizer::AdamW as u32);
        assert_eq!(
            rnn_targets::RNN_TARGETS_LAST_STEP as u32,
            crate::Targets::LastStep as u32
        );
        for e in [
            Error::Invalid(String::new()),
            Error::Io(String::new()),
            Error::Format(String::new()),
            Error::NonFinite(String::new()),
            Error::Alloc(String::new()),
        ] {
            let code = e.status_code();
            assert_eq!(Failure::from(e).status as u32, code);
        }
    }

    use crate::Error;
}
